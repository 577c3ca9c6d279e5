r"""Keyword controls (``theta=``, ``eta=``, ``alpha=``, ``key=``, …): the registry, checks, splits.

**The rule** (optax's extra-args idea). Every memjax component accepts the
*known* controls and ignores those it does not use, so one driver can feed any memory. A name that
*no* memjax component knows is a typo, and :func:`check_controls` raises naming it::

    ValueError: scan: unknown control 'thetta'; accepted: alpha, eta, key, theta; did you mean
    'theta'?

**The registry.** A control is known when it is registered with :func:`register_control`, with an
optional value check. memjax registers the write gates of the gradient-trained memories (Titans
eqs. 13–14, the delta rule):

=========  ======================================================  ==========================
name       meaning                                                 check on concrete values
=========  ======================================================  ==========================
``theta``  step size :math:`\theta_t` of the inner gradient step    :math:`\theta \ge 0`
``eta``    momentum :math:`\eta_t` (Titans eq. 14)                  :math:`0 \le \eta \le 1`
``alpha``  decay / forget gate :math:`\alpha_t` (Titans eq. 13)     :math:`0 \le \alpha \le 1`
``key``    a typed PRNG key (``jax.random.key``)                    a typed key array
=========  ======================================================  ==========================

A new paper's control registers itself once, at import of its module::

    register_control("gamma", check=in_range("gamma", 0.0, 1.0))

Values are checked only when they are *concrete* (Python numbers, NumPy arrays, JAX arrays outside
a trace), so checks cost nothing under ``jax.jit`` and never force a tracer. ``None`` means "not
given" and is never checked. A NaN fails every range check.

Names a caller takes as explicit keyword arguments (``chunk_size=``, ``order=``, Sparsey's
``hs=``) are not controls; a caller passes them as ``also=`` so the error lists them and can
suggest them (``h=`` → "did you mean 'hs'?").

**Splitting.** A control is *per item* (per token for :func:`memjax.core.scan`, per head for
:class:`memjax.core.MultiHead`) when it is an array with ``ndim >= 1`` whose leading axis is the
number of items; it is *shared* when it is a scalar (a Python number or a 0-d array). A single
PRNG ``key=`` is split into one key per item; an array of keys with leading axis ``length`` is
already per item (:func:`split_controls`).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core.controls import check_controls, split_controls
    >>> check_controls({"theta": 0.5, "eta": jnp.full(3, 0.9)}, where="scan")
    >>> check_controls({"thetta": 0.5}, where="scan")
    Traceback (most recent call last):
    ...
    ValueError: scan: unknown control 'thetta'; accepted: alpha, eta, key, theta; did you ...
    >>> check_controls({"eta": 5.0}, where="scan")
    Traceback (most recent call last):
    ...
    ValueError: scan: eta: expected values in [0, 1], got 5.0
    >>> per_item, shared = split_controls({"theta": jnp.ones(3), "eta": 0.9}, 3, "token")
    >>> sorted(per_item), sorted(shared)
    (['theta'], ['eta'])
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_prng_key, is_scalar_like

__all__ = [
    "ControlCheck",
    "check_controls",
    "in_range",
    "is_concrete",
    "is_prng_key",
    "known_controls",
    "register_control",
    "split_controls",
]

ControlCheck = Callable[[object], None]
"""A value check: called with a concrete value, raises ``ValueError``/``TypeError`` if bad."""

_REGISTRY: dict[str, ControlCheck | None] = {}


def is_prng_key(x) -> bool:
    """Whether ``x`` is a typed PRNG key array (``jax.random.key``)."""
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def is_concrete(x) -> bool:
    """Whether ``x`` has a value now: not a tracer and no tracer among its leaves."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _describe(values: np.ndarray) -> str:
    if values.ndim == 0:
        return repr(values.item())
    bad = values.reshape(-1)
    return f"an array of shape {values.shape} (min {bad.min()!r}, max {bad.max()!r})"


def in_range(name: str, low: float | None = None, high: float | None = None) -> ControlCheck:
    """A check that every element lies in ``[low, high]`` (``None``: unbounded on that side).

    Example:
        >>> from memjax.core.controls import in_range
        >>> in_range("theta", 0.0)(-1.0)
        Traceback (most recent call last):
        ...
        ValueError: theta: expected values >= 0, got -1.0
    """
    if low is not None and high is not None:
        expected = f"in [{low:g}, {high:g}]"
    elif low is not None:
        expected = f">= {low:g}"
    elif high is not None:
        expected = f"<= {high:g}"
    else:
        raise ValueError("low: give low, high or both")

    def check(value) -> None:
        values = np.asarray(value)
        if values.dtype == object or not np.issubdtype(values.dtype, np.number):
            raise TypeError(f"{name}: expected a number or a numeric array, got {value!r}")
        ok = np.ones(values.shape, bool)
        if low is not None:
            ok &= values >= low
        if high is not None:
            ok &= values <= high
        if not bool(np.all(ok)):
            raise ValueError(f"{name}: expected values {expected}, got {_describe(values)}")

    return check


def _check_key(value) -> None:
    check_prng_key("key", value)


def register_control(name: str, check: ControlCheck | None = None) -> None:
    """Make ``name`` a known control, with an optional value ``check`` for concrete values.

    Registering a name again with the same check is a no-op; with a different one it raises, so
    two papers cannot silently give one name two meanings.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected a Python identifier, got {name!r}")
    if check is not None and not callable(check):
        raise TypeError(f"check: expected a callable or None, got {check!r}")
    if name in _REGISTRY and _REGISTRY[name] is not check:
        raise ValueError(f"name: control {name!r} is already registered with another check")
    _REGISTRY[name] = check


def known_controls() -> tuple[str, ...]:
    """The registered control names, sorted."""
    return tuple(sorted(_REGISTRY))


def check_controls(controls: Mapping, *, where: str, also: Iterable[str] = ()) -> None:
    """Raise unless every name in ``controls`` is known and every concrete value passes its check.

    Args:
        controls: the keyword controls a component received.
        where: the component, for the message (``"scan"``, ``"LinearMemory.write"``).
        also: names the caller accepts as explicit keywords; listed and suggested in the message.

    Raises:
        ValueError: naming an unknown control (with the accepted names and the closest match), or
            a control whose concrete value is out of range.
        TypeError: a control of the wrong kind (e.g. ``key=`` that is not a typed PRNG key).
    """
    for name, value in controls.items():
        if name not in _REGISTRY:
            accepted = sorted({*_REGISTRY, *also})
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{where}: unknown control {name!r}; accepted: {', '.join(accepted)}{hint}"
            )
        check = _REGISTRY[name]
        if check is None or value is None or not is_concrete(value):
            continue
        try:
            check(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None


def split_controls(controls: dict, length: int, axis_name: str) -> tuple[dict, dict]:
    """Split controls into (per-item arrays with leading axis ``length``, shared scalars)."""
    per_item, shared = {}, {}
    for name, value in controls.items():
        if is_prng_key(value) and value.ndim == 0:
            per_item[name] = jax.random.split(value, length)
        elif is_scalar_like(value) or value is None:
            shared[name] = value
        elif hasattr(value, "shape"):
            if value.shape[0] != length:
                raise ValueError(
                    f"{name}: array controls are per {axis_name}; expected leading axis "
                    f"{length}, got shape {tuple(value.shape)}"
                )
            per_item[name] = value
        else:
            shared[name] = value
    return per_item, shared


register_control("theta", in_range("theta", 0.0))
register_control("eta", in_range("eta", 0.0, 1.0))
register_control("alpha", in_range("alpha", 0.0, 1.0))
register_control("key", _check_key)
