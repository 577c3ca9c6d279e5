r"""Taps: a declared, pure way to expose intermediate activations, free when not asked for.

A component marks an activation with ``u = tap("controller_out", u)``. ``tap`` is the identity —
the same jaxpr as a function without it — unless a caller asks for that name with
:func:`collect_taps`, which returns the tapped values beside the outputs::

    out, taps = collect_taps(fn, ("controller_out",))(*args)

This is Flax's ``sow`` / NNX ``Intermediate`` idea, written as a function transformation over pure
code (like Equinox's auxiliary outputs, but without threading them by hand): the values are
recorded while ``fn`` is traced and returned as ordinary outputs, so it works eagerly and under
``jax.jit``, ``jax.grad`` and ``jax.vmap`` applied *outside* :func:`collect_taps`.

**Inside transformations.** A tap inside ``lax.scan``, ``jax.vmap`` or ``jax.checkpoint`` must be
carried out of that transformation; the tap-aware versions here, :func:`scan`, :func:`vmap` and
:func:`checkpoint`, do that and stack the values (``(T, ...)`` from a scan, ``(B, ...)`` from a
vmap). memjax's drivers use them (:func:`memjax.core.scan`, :func:`memjax.core.step`'s scan,
:class:`memjax.core.MultiHead`, :func:`memjax.core.unroll`), so a tap in a cell's ``step`` comes out
of ``unroll`` as ``(T, ...)``. A requested tap met inside a plain JAX transformation started
after :func:`collect_taps` raises an error naming it (instead of leaking a tracer); with nothing
requested the plain transformations run unchanged. Put :func:`collect_taps` *inside*
``jax.jit``: a function jitted and traced before keeps its cached trace, whose taps are gone
(collecting from it reports the names as not tapped).

**For driver authors.** A driver that runs one sequence in pieces (whole chunks by ``lax.scan``,
then a shorter last chunk) collects each piece unrecorded (:func:`scan_collect`,
:func:`vmap_collect`, :func:`collect_pieces`), concatenates the stacked values and records them
once (:func:`record_all`); a tap's name is then recorded once with the whole sequence's values.

**Declared.** Asking for a name that ``fn`` never taps is an error listing the taps it has, and
each name may be recorded once per collection (two taps of one name are a bug; give them
distinct names).

**Gradients with respect to a tap.** Synthetic gradients (Jaderberg et al. 2017; Fast & Slow
Learning) need :math:`\partial L / \partial u_t` for a tapped :math:`u_t`. With
``perturb=True`` the collected function takes a first argument ``perturbations`` (a dict, name →
array shaped like the collected value), and each requested tap returns :math:`u + \delta`. At
:math:`\delta = 0` the outputs are unchanged and :math:`\partial L / \partial \delta =
\partial L / \partial u` (per step for a tap inside a scan). :func:`tap_gradients` does this for a
scalar function.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import taps
    >>> def f(x):
    ...     h = taps.tap("hidden", jnp.tanh(x))
    ...     return jnp.sum(h**2)
    >>> x = jnp.array([0.5, -1.0])
    >>> y, found = taps.collect_taps(f, ("hidden",))(x)
    >>> bool(jnp.allclose(found["hidden"], jnp.tanh(x)))
    True
    >>> str(jax.make_jaxpr(f)(x)) == str(jax.make_jaxpr(lambda x: jnp.sum(jnp.tanh(x)**2))(x))
    True
    >>> value, found, grads = taps.tap_gradients(f, ("hidden",))(x)   # dL/dh = 2 h
    >>> bool(jnp.allclose(grads["hidden"], 2 * jnp.tanh(x)))
    True
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp

__all__ = [
    "checkpoint",
    "collect_pieces",
    "collect_taps",
    "record_all",
    "scan",
    "scan_collect",
    "tap",
    "tap_gradients",
    "tapping",
    "vmap",
    "vmap_collect",
]

Lookup = Callable[[str], Any]


def _trace_state():
    return jex_core.get_opaque_trace_state(convention="nnx")


class _Collector:
    """One level of collection: the requested names, where perturbations come from, the values."""

    def __init__(
        self, names: frozenset[str], lookup: Lookup | None, seen: set[str], combine=jnp.add
    ):
        self.names = names
        self.lookup = lookup  # name -> perturbation for this level, or None (no perturbation)
        self.combine = combine  # (value, perturbation) -> tapped value (default: the sum)
        self.trace = _trace_state()
        self.values: dict[str, Any] = {}
        self.seen = seen  # every tap name met, requested or not (shared by the levels)


class _Stack(threading.local):
    def __init__(self):
        self.items: list[_Collector] = []


_STACK = _Stack()


def _current() -> _Collector | None:
    return _STACK.items[-1] if _STACK.items else None


def tapping() -> bool:
    """Whether a :func:`collect_taps` is active (a component may skip work nobody asked for)."""
    return _current() is not None


def _record(collector: _Collector, name: str, value) -> None:
    if name in collector.values:
        raise ValueError(
            f"tap {name!r}: recorded twice in one collection; give the taps distinct names"
        )
    collector.values[name] = value


def tap(name: str, x):
    """Mark ``x`` (an array or pytree) as the activation ``name``; returns ``x`` (module doc)."""
    collector = _current()
    if collector is None:
        return x
    if not isinstance(name, str):
        raise TypeError(f"name: expected a tap name (str), got {name!r}")
    collector.seen.add(name)
    if name not in collector.names:
        return x
    if _trace_state() != collector.trace:
        raise RuntimeError(
            f"tap {name!r}: requested inside a JAX transformation (lax.scan, jax.vmap, "
            "jax.checkpoint, jax.jit, ...) that began after collect_taps; use memjax.core.taps."
            "scan / vmap / checkpoint for it, or call collect_taps inside the jitted function"
        )
    if collector.lookup is not None:
        delta = collector.lookup(name)
        if delta is not None:
            want = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), x)
            got = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), delta)
            if want != got:
                raise ValueError(f"perturbations[{name!r}]: expected {want}, got {got}")
            x = jax.tree_util.tree_map(collector.combine, x, delta)
    _record(collector, name, x)
    return x


def _run_child(fn: Callable[[], Any], select: Callable[[Any], Any] | None, sliced=None):
    """Run ``fn()`` under a child collector (in the current trace); return ``(out, values)``.

    ``select(name, a)`` maps the parent's perturbation of ``name`` to the child's (``a[i]``);
    ``sliced`` (name -> the child's perturbation, already sliced) takes precedence over it.
    """
    parent = _current()
    lookup = None
    if parent.lookup is not None and (select is not None or sliced):
        outer = parent.lookup

        def lookup(name):
            if sliced and name in sliced:
                return sliced[name]
            delta = outer(name) if select is not None else None
            if delta is None:
                return None
            return jax.tree_util.tree_map(functools.partial(select, name), delta)

    child = _Collector(parent.names, lookup, parent.seen, parent.combine)
    _STACK.items.append(child)
    try:
        out = fn()
    finally:
        _STACK.items.pop()
    return out, child.values


def _perturbing() -> bool:
    collector = _current()
    return collector is not None and collector.lookup is not None


def _item(name, a, i):
    return a[i]


def record_all(values: dict) -> None:
    """Record already-collected ``values`` (name → value) in the active collection (drivers)."""
    collector = _current()
    for name, value in values.items():
        _record(collector, name, value)


def collect_pieces(fn: Callable[[], Any], select: Callable[[Any], Any] | None = None):
    """Run ``fn()`` (no new transformation) and return ``(out, taps)`` without recording them.

    For drivers that run one sequence in pieces and merge the pieces' stacked taps before
    :func:`record_all`; ``select(name, a)`` maps a perturbation of the whole to this piece's.
    With no collection active it returns ``(fn(), {})``.
    """
    if _current() is None:
        return fn(), {}
    return _run_child(fn, select)


def scan_collect(f, init, xs=None, length=None, *, reverse=False, unroll=1, select=_item):
    """``lax.scan`` returning ``(carry, ys, taps)`` unrecorded, taps stacked over the scan axis.

    For drivers (module doc). ``select(name, a, i)`` maps a perturbation of the whole scan to
    item ``i``'s (default ``a[i]``). With no collection active it is ``lax.scan``, ``taps = {}``.
    """
    if _current() is None:
        carry, ys = jax.lax.scan(f, init, xs, length=length, reverse=reverse, unroll=unroll)
        return carry, ys, {}
    perturb = _perturbing()
    n = length if length is not None else jax.tree_util.tree_leaves(xs)[0].shape[0]
    # the perturbations stacked along the scan axis go in as scanned inputs: their cotangents
    # are then stacked outputs, not a scatter-add into a whole-sequence buffer at every step
    stacked = _stacked(n) if perturb and select is _item else {}

    def body(carry, inputs):
        x, i, d = inputs if perturb else (inputs, None, None)
        pick = functools.partial(_pick, select, i) if perturb else None
        (carry, y), values = _run_child(lambda: f(carry, x), pick, d if perturb else None)
        return carry, (y, values)

    inputs = (xs, jnp.arange(n), stacked) if perturb else xs
    carry, (ys, values) = jax.lax.scan(
        body, init, inputs, length=length, reverse=reverse, unroll=unroll
    )
    return carry, ys, values


def _stacked(n: int) -> dict:
    """The current level's perturbations whose every leaf has leading axis ``n``."""
    collector = _current()
    out = {}
    for name in collector.names:
        delta = collector.lookup(name)
        leaves = jax.tree_util.tree_leaves(delta)
        if delta is not None and leaves and all(a.ndim and a.shape[0] == n for a in leaves):
            out[name] = delta
    return out


def _pick(select, i, name, a):
    return select(name, a, i)


def scan(f, init, xs=None, length=None, *, reverse=False, unroll=1):
    """``jax.lax.scan`` that carries the taps of ``f`` out, stacked over the scan axis.

    With no :func:`collect_taps` active it *is* ``jax.lax.scan`` (same jaxpr).
    """
    if _current() is None:
        return jax.lax.scan(f, init, xs, length=length, reverse=reverse, unroll=unroll)
    carry, ys, values = scan_collect(f, init, xs, length, reverse=reverse, unroll=unroll)
    record_all(values)
    return carry, ys


def _axis_size(args, in_axes) -> int:
    axes = in_axes if isinstance(in_axes, tuple | list) else (in_axes,) * len(args)
    if len(axes) != len(args):
        raise ValueError(f"in_axes: expected {len(args)} entries, got {len(axes)}")
    for arg, axis in zip(args, axes):
        if axis is None:
            continue
        if not isinstance(axis, int):
            break
        leaves = jax.tree_util.tree_leaves(arg)
        if leaves:
            return leaves[0].shape[axis]
    raise ValueError(
        "axis_size: pass axis_size to taps.vmap when perturbing taps with in_axes other than "
        "one int or None per argument"
    )


def vmap_collect(f, in_axes=0, out_axes=0, *, axis_size=None, select=_item):
    """``jax.vmap`` returning ``(out, taps)`` unrecorded, taps stacked along a leading axis.

    For drivers (module doc). ``select(name, a, i)`` maps a perturbation of the whole batch to
    item ``i``'s (default ``a[i]``). With no collection active it is ``jax.vmap``, ``taps = {}``.
    """

    def wrapped(*args):
        if _current() is None:
            return jax.vmap(f, in_axes, out_axes, axis_size=axis_size)(*args), {}
        if not _perturbing():

            def one(*a):
                return _run_child(lambda: f(*a), None)

            return jax.vmap(one, in_axes, (out_axes, 0), axis_size=axis_size)(*args)
        n = axis_size if axis_size is not None else _axis_size(args, in_axes)
        axes = tuple(in_axes) if isinstance(in_axes, tuple | list) else (in_axes,) * len(args)

        stacked = _stacked(n) if select is _item else {}

        def one(i, d, *a):
            return _run_child(lambda: f(*a), functools.partial(_pick, select, i), d)

        return jax.vmap(one, (0, 0, *axes), (out_axes, 0), axis_size=n)(
            jnp.arange(n), stacked, *args
        )

    return wrapped


def vmap(f, in_axes=0, out_axes=0, *, axis_size=None):
    """``jax.vmap`` that carries the taps of ``f`` out, stacked along a leading axis.

    With no :func:`collect_taps` active it *is* ``jax.vmap``.
    """
    collecting = vmap_collect(f, in_axes, out_axes, axis_size=axis_size)

    @functools.wraps(f)
    def wrapped(*args):
        if _current() is None:
            return jax.vmap(f, in_axes, out_axes, axis_size=axis_size)(*args)
        out, values = collecting(*args)
        record_all(values)
        return out

    return wrapped


def checkpoint(f, **kwargs):
    """``jax.checkpoint`` (remat) that carries the taps of ``f`` out.

    With no :func:`collect_taps` active it *is* ``jax.checkpoint(f, **kwargs)``.
    """
    plain = jax.checkpoint(f, **kwargs)

    @functools.wraps(f)
    def wrapped(*args):
        if _current() is None:
            return plain(*args)

        # A new function per call: the child's perturbation lookup closes over tracers of the
        # current trace, which a cached trace of an earlier call must not reuse.
        def child(*a):
            return _run_child(lambda: f(*a), _identity)

        out, values = jax.checkpoint(child, **kwargs)(*args)
        record_all(values)
        return out

    return wrapped


def _identity(name, a):
    return a


def _check_names(names) -> frozenset[str]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"names: expected a tuple of tap names, got {names!r}")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"names: expected tap names (str), got {name!r}")
    return frozenset(names)


def collect_taps(fn: Callable, names: Sequence[str], *, perturb=False) -> Callable:
    """``fn`` that also returns the requested taps: ``(*args) -> (out, {name: value})``.

    With ``perturb=True`` the result takes ``(perturbations, *args)``, ``perturbations`` a dict
    (name → array shaped like the collected value; a missing name is not perturbed), and each
    requested tap returns its value plus the perturbation (module doc). ``perturb`` may also be
    a function ``combine(value, perturbation) -> value`` used instead of the sum, leaf by leaf
    (e.g. a ``custom_vjp`` that injects a synthetic gradient, :mod:`memjax.controllers`).

    Raises:
        ValueError: a requested name that ``fn`` never tapped (the message lists the taps it has).
    """
    requested = _check_names(names)

    if not (isinstance(perturb, bool) or callable(perturb)):
        raise TypeError(f"perturb: expected a bool or a combine function, got {perturb!r}")
    combine = perturb if callable(perturb) else jnp.add

    def run(lookup, args, kwargs):
        seen: set[str] = set()
        collector = _Collector(requested, lookup, seen, combine)
        _STACK.items.append(collector)
        try:
            out = fn(*args, **kwargs)
        finally:
            _STACK.items.pop()
        missing = sorted(requested - set(collector.values))
        if missing:
            where = getattr(fn, "__name__", repr(fn))
            raise ValueError(
                f"names: {', '.join(map(repr, missing))} not tapped by {where}; "
                f"its taps: {', '.join(sorted(seen)) or 'none'}"
            )
        return out, {name: collector.values[name] for name in names}

    if perturb is False:

        @functools.wraps(fn)
        def collected(*args, **kwargs):
            return run(None, args, kwargs)

        return collected

    @functools.wraps(fn)
    def perturbed(perturbations, *args, **kwargs):
        if not isinstance(perturbations, dict):
            raise TypeError(f"perturbations: expected a dict name -> array, got {perturbations!r}")
        unknown = sorted(set(perturbations) - requested)
        if unknown:
            raise ValueError(f"perturbations: {unknown} are not among the requested taps")
        return run(perturbations.get, args, kwargs)

    return perturbed


def tap_gradients(fn: Callable, names: Sequence[str]) -> Callable:
    """For scalar ``fn``: ``(*args) -> (value, taps, grads)``, ``grads[name] = ∂fn/∂tap``.

    The gradient of a tap inside a scan is stacked per step, ``∂L/∂u_t``.
    """
    collected = collect_taps(fn, names, perturb=True)

    def wrapped(*args, **kwargs):
        shapes = jax.eval_shape(lambda *a: collect_taps(fn, names)(*a, **kwargs)[1], *args)
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def value(deltas):
            out, found = collected(deltas, *args, **kwargs)
            return out, found

        (out, found), grads = jax.value_and_grad(value, has_aux=True)(zeros)
        return out, found, grads

    return wrapped
