r"""The :func:`unroll` driver for closed-loop cells; :func:`cut`, where synthetic gradients attach.

:func:`unroll` runs a :class:`memjax.core.Cell` over a sequence: :math:`(y_t, c_t) =
\text{step}(\theta, c_{t-1}, x_t)` for :math:`t = 0 \dots T-1` by ``lax.scan``, and returns the
stacked :math:`y` and the last carry.

* ``remat=True`` wraps each step in ``jax.checkpoint``: reverse mode stores one carry per step and
  recomputes the step's internals.
  ``remat="dots"`` uses the policy ``dots_with_no_batch_dims_saveable``: reverse mode also keeps
  the step's products with a weight matrix (e.g. :math:`h_{t-1} W_h`) and recomputes only the
  elementwise ops and the batched products around them, so no stacked buffer is filled per
  intermediate activation (the gates, their nonlinearities, the clipped outputs, ...).
* ``checkpoint_every=k`` checkpoints *segments* of ``k`` steps instead (Griewank-style
  segment checkpointing; Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"):
  reverse mode stores only the carry entering each segment (``T/k`` carries, e.g. ``T/k``
  memories instead of ``T``) and re-runs the segment's forward before its backward, where the
  segment's per-step residuals live in one ``k``-step buffer. With ``remat="dots"`` the
  segment keeps the steps' weight products (same policy), so the re-run is the elementwise
  work only; with ``remat=False`` (or ``True``) nothing but the carries is kept. Exact: the
  same values and gradients as without it (the re-run repeats the same operations). Not with
  ``truncate``, nor under :func:`memjax.core.taps.collect_taps`.
* ``precompute=True`` hoists the part of every step that depends on the input alone out of the
  loop, for a cell with the optional input-projection hook (:class:`memjax.core.Cell`:
  ``project_inputs(params, xs) -> (step_params, ps)`` and ``step_projected(step_params, carry,
  ps[t])``; e.g. an LSTM controller's :math:`x_t W_x + b` for all :math:`t` is one matmul).
  Same values up to float rounding; a cell without the hook runs ``step`` as before.
* ``weight_grads="after_loop"`` forms the gradient of every weight that the step applies through
  :func:`~memjax.core.linear.linear` (:math:`y_t = x_t W`, :math:`W` a leaf of the step's params)
  *after* the loop, :math:`\partial L/\partial W = \sum_t x_t^\top \delta_t = X^\top \Delta` with
  :math:`X`, :math:`\Delta` the stacked inputs and output cotangents :math:`\delta_t = \partial
  L/\partial y_t`, instead of adding one small outer product per step inside the reverse loop (the
  default, ``"in_loop"``). It is a ``jax.custom_vjp`` around the loop, whose reverse loop carries
  only the activations' cotangents and emits :math:`\delta_t` per step. With ``batched=True`` (the
  batch axis inside the loop) :math:`X^\top \Delta` is one matmul over batch × time; under an outer
  ``jax.vmap`` it stays one per sequence (XLA:CPU forms those as a batched matmul and a sum — slower
  than the default). Same values and gradients up to float rounding. **Memory**: :math:`X` (``T ×
  d_in`` per matmul and sequence, the residuals the default stores for the same gradients), and
  :math:`\Delta` (``T × d_out``) during the backward pass. Not with ``boundary``, ``boundary_tap``
  or inside :func:`memjax.core.taps.collect_taps` (the taps would leave the custom VJP).
* ``truncate=W`` cuts the sequence into windows of ``W`` steps (the last may be shorter). At each
  window boundary the carry is **cut**: no gradient flows from window :math:`j` back into window
  :math:`j-1` (truncated BPTT), while the forward values are unchanged.
* ``boundary=fn(carry, index) -> gradient`` is where a **synthetic gradient** attaches (DNI,
  Jaderberg et al. 2017, §3.2 "Recurrent models"; Fast & Slow Learning). At the cut before window
  ``index`` (``1 ≤ index < number of windows``) it is called with the carry leaving window
  ``index − 1`` and returns :math:`\hat\delta \approx \partial L_{>}/\partial c` (a pytree like the
  carry, or ``None`` for zero). :func:`cut` then *injects* it: in reverse mode the carry's
  cotangent at the end of window ``index − 1`` is :math:`\hat\delta` instead of the true gradient
  from the future, so window ``index − 1``'s parameters are trained with the synthetic gradient
  without waiting for the later windows. :math:`\hat\delta` itself gets no gradient (train the
  synthetic-gradient model on its own loss).
* ``boundary_tap="name"`` exposes the carry that *starts* each cut window as the tap ``name``
  (stacked over windows ``1 …``, see :mod:`memjax.core.taps`). Its tap gradient
  (:func:`memjax.core.taps.tap_gradients`) is :math:`\partial L/\partial c` at the start of window
  ``index``: the true gradient of that window's loss plus the synthetic gradient injected at its
  end flowing back — DNI's bootstrapped target for :math:`\hat\delta`.

Controls: arrays with ``ndim >= 1`` are per step (leading axis ``T``), scalars are shared, a
single PRNG ``key=`` is split into one key per step (:mod:`memjax.core.controls`). Taps in the
cell's ``step`` come out stacked ``(T, ...)``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import unroll
    >>> from memjax.nn.lstm import LSTMCell
    >>> cell = LSTMCell(d_input=2, d_hidden=3)
    >>> p = cell.init_params(jax.random.key(0))
    >>> xs = jnp.ones((7, 2))
    >>> ys, carry = unroll(cell, p, cell.init_carry(p), xs, truncate=3, remat=True)
    >>> ys.shape
    (7, 3)
    >>> grad = jax.grad(lambda xs: unroll(cell, p, cell.init_carry(p), xs, truncate=3)[0][-1].sum())
    >>> [bool(jnp.any(g != 0)) for g in grad(xs)]   # only the last window (steps 6..) is reached
    [False, False, False, False, False, False, True]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_choice, check_positive_int, is_scalar_like
from memjax.core.controls import check_controls, split_controls
from memjax.core.linear import linear as linear, linear_calls, recording

if TYPE_CHECKING:
    from memjax.core.protocol import Cell

__all__ = ["WEIGHT_GRADS", "Boundary", "cut", "unroll"]

Params = Any
Carry = Any
Boundary = Callable[[Carry, jax.Array], Any]
"""``boundary(carry, index) -> gradient`` (a pytree like ``carry``, or ``None``); module doc."""

WEIGHT_GRADS = ("in_loop", "after_loop")
"""Where :func:`unroll` forms the gradients of the weights a step applies by
:func:`~memjax.core.linear.linear`."""


@jax.custom_vjp
def _inject(xs, gradients):
    # One custom_vjp over all the leaves: reverse mode skips an equation whose cotangents are all
    # symbolic zeros, so a per-leaf version would drop the gradient injected into a leaf that
    # nothing later differentiates (e.g. MANN's usage, which only feeds an argmin).
    return xs


def _inject_fwd(xs, gradients):
    return xs, gradients


def _inject_bwd(gradients, cotangents):
    injected = tuple(g.astype(c.dtype) for g, c in zip(gradients, cotangents))
    return injected, tuple(jnp.zeros_like(g) for g in gradients)


_inject.defvjp(_inject_fwd, _inject_bwd)


def cut(carry: Carry, gradient: Carry | None = None) -> Carry:
    """Detach ``carry`` from the graph before it; inject ``gradient`` there in reverse mode.

    Forward: the identity. Reverse: the cotangent that reaches ``carry`` from later computation is
    dropped and ``gradient`` (a pytree like ``carry``; ``None`` = zeros, i.e. ``stop_gradient``)
    is sent back instead. Integer leaves pass through (they have no gradient).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.core.unroll import cut
        >>> f = lambda x: jnp.sum(cut(x * 3.0, jnp.array([1.0, 2.0])) ** 2)
        >>> jax.grad(f)(jnp.array([5.0, 7.0]))     # 3 * injected, not 3 * 2 * (3x)
        Array([3., 6.], dtype=float32)
    """
    if gradient is None:
        return jax.tree_util.tree_map(jax.lax.stop_gradient, carry)
    leaves, treedef = jax.tree_util.tree_flatten(carry)
    grads = treedef.flatten_up_to(gradient)
    out, where, xs, gs = [], [], [], []
    for i, (x, g) in enumerate(zip(leaves, grads)):
        out.append(jax.lax.stop_gradient(x))
        if not jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            continue
        if jnp.shape(g) != jnp.shape(x):
            raise ValueError(
                f"gradient: leaf {i} expected shape {jnp.shape(x)}, got {jnp.shape(g)}"
            )
        where.append(i)
        xs.append(x)
        gs.append(jax.lax.stop_gradient(jnp.asarray(g, jnp.result_type(x))))
    if xs:
        for i, x in zip(where, _inject(tuple(xs), tuple(gs))):
            out[i] = x
    return treedef.unflatten(out)


def _length(xs) -> int:
    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves:
        raise ValueError("xs: expected arrays with a leading time axis, got no arrays")
    length = leaves[0].shape[0] if leaves[0].ndim else None
    for leaf in leaves:
        if leaf.ndim == 0 or leaf.shape[0] != length:
            shapes = [tuple(a.shape) for a in leaves]
            raise ValueError(f"xs: expected one leading time axis on every array, got {shapes}")
    if length == 0:
        raise ValueError("xs: expected at least one step, got a time axis of length 0")
    return length


def unroll(
    cell: Cell,
    params: Params,
    carry: Carry,
    xs,
    /,
    *,
    remat: bool | str = False,
    precompute: bool = False,
    truncate: int | None = None,
    boundary: Boundary | None = None,
    boundary_tap: str | None = None,
    weight_grads: str = "in_loop",
    batched: bool = False,
    checkpoint_every: int | None = None,
    **controls,
) -> tuple[Any, Carry]:
    """Run ``cell.step`` over the leading axis of ``xs``; return ``(ys, carry)`` (module doc).

    Args:
        cell: a :class:`memjax.core.Cell`.
        params: the cell's params.
        carry: the carry before step 0 (e.g. ``cell.init_carry(params)``).
        xs: the inputs, an array or pytree with leading time axis ``T``.
        remat: ``jax.checkpoint`` each step (``True``), or ``"dots"``: with the policy that keeps
            the products without batch dimensions (module doc).
        precompute: use the cell's input-projection hook, where it has one (module doc).
        truncate: window length ``W`` of truncated backpropagation (``None``: no cut).
        boundary: ``fn(carry, index) -> gradient`` called at each cut (synthetic gradients).
        boundary_tap: expose the carry starting each cut window as this tap.
        weight_grads: ``"in_loop"`` (default) or ``"after_loop"``: form the gradients of the
            weights applied by :func:`~memjax.core.linear.linear` after the loop, as one
            matmul (module doc).
        batched: ``xs`` ``(B, T, ...)`` and ``carry`` have a leading batch axis; the step runs
            ``jax.vmap``-ed over it inside the loop and ``ys`` is ``(B, T, ...)`` — the values of
            ``jax.vmap`` of the unbatched call, with ``"after_loop"``'s weight gradients one
            matmul over batch and time (module doc). Shared scalar controls only.
        checkpoint_every: checkpoint segments of this many steps: reverse mode stores the
            carry every ``k`` steps only and re-runs each segment forward (module doc).
        **controls: per-step arrays (leading axis ``T``) or shared scalars for ``cell.step``.
    """
    check_controls(
        controls,
        where="unroll",
        also=("batched", *_UNROLL_OPTIONS, "weight_grads", "checkpoint_every"),
    )
    if not (isinstance(remat, bool) or remat == "dots"):
        raise ValueError(f"remat: expected True, False or 'dots', got {remat!r}")
    if not isinstance(batched, bool):
        raise TypeError(f"batched: expected a bool, got {batched!r}")
    _check_options(truncate, boundary, boundary_tap, precompute, weight_grads)
    _check_segments(checkpoint_every, truncate)
    if batched:
        return _unroll_batched(
            cell,
            params,
            carry,
            xs,
            remat=remat,
            precompute=precompute,
            truncate=truncate,
            boundary=boundary,
            boundary_tap=boundary_tap,
            weight_grads=weight_grads,
            checkpoint_every=checkpoint_every,
            **controls,
        )
    length = _length(xs)
    per_step, shared = split_controls(controls, length, "step")
    step, step_params = cell.step, params
    if precompute and has_input_projection(cell):
        step_params, xs = cell.project_inputs(params, xs)
        if _length(xs) != length:
            raise ValueError(
                f"precompute: {type(cell).__name__}.project_inputs returned {_length(xs)} steps "
                f"for {length} inputs"
            )
        step = cell.step_projected
    if weight_grads == "after_loop":
        leaves, shapes = linear_calls(step, step_params, carry, xs, per_step, shared)
        run = _after_loop(step, remat, truncate, length, leaves, shapes, None, checkpoint_every)
        return run(step_params, carry, xs, per_step, shared)

    def one(carry, x, c):
        return step(step_params, carry, x, **c, **shared)

    if remat and checkpoint_every is None:
        one = taps.checkpoint(one, **_remat_options(remat))

    def body(carry, inputs):
        x, c = inputs
        y, carry = one(carry, x, c)
        return carry, y

    seq = (xs, per_step)
    if checkpoint_every is not None:
        carry, ys = _segmented(body, carry, seq, length, checkpoint_every, remat)
        return ys, carry
    if truncate is None or truncate >= length:
        carry, ys = taps.scan(body, carry, seq)
        return ys, carry
    return _truncated(body, carry, seq, length, truncate, boundary, boundary_tap)


def _unroll_batched(cell, params, carry, xs, *, weight_grads, checkpoint_every, **options):
    """:func:`unroll` with ``batched=True``: the step ``jax.vmap``-ed inside the loop."""
    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves or any(a.ndim < 2 for a in leaves):
        raise ValueError("xs: batched=True expects arrays with leading axes (batch, time)")
    size = leaves[0].shape[0]
    for name, tree in (("xs", xs), ("carry", carry)):
        for a in jax.tree_util.tree_leaves(tree):
            if a.ndim == 0 or a.shape[0] != size:
                raise ValueError(f"{name}: batched=True expects a leading batch axis {size}")
    controls = {k: options.pop(k) for k in list(options) if k not in _UNROLL_OPTIONS}
    for name, value in controls.items():
        if not (is_scalar_like(value) or value is None):
            raise ValueError(f"{name}: batched=True takes shared scalar controls only")
    if weight_grads == "in_loop":
        run = jax.vmap(
            lambda c, x: unroll(
                cell, params, c, x, checkpoint_every=checkpoint_every, **options, **controls
            )
        )
        return run(carry, xs)
    truncate, precompute = options["truncate"], options["precompute"]
    step, step_params = cell.step, params
    length = _length(jax.tree_util.tree_map(lambda a: a[0], xs))
    # time-major before the projection: its (T, B, ...) output then needs no transpose
    time_major = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), xs)
    if precompute and has_input_projection(cell):
        project = jax.vmap(cell.project_inputs, (None, 1), (None, 1))
        step_params, time_major = project(params, time_major)
        step = cell.step_projected
    example = (  # one sequence's carry and inputs (T, ...)
        jax.tree_util.tree_map(lambda a: a[0], carry),
        jax.tree_util.tree_map(lambda a: a[:, 0], time_major),
    )
    found, shapes = linear_calls(step, step_params, *example, {}, controls)
    run = _after_loop(
        step, options["remat"], truncate, length, found, shapes, size, checkpoint_every
    )
    ys, carry = run(step_params, carry, time_major, {}, controls)
    return jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), ys), carry


_UNROLL_OPTIONS = ("boundary", "boundary_tap", "precompute", "remat", "truncate")


def _check_options(truncate, boundary, boundary_tap, precompute, weight_grads) -> None:
    """:func:`unroll`'s option errors, each naming its argument (both the plain and the batched
    path)."""
    if truncate is not None:
        check_positive_int("truncate", truncate)
    if boundary is not None and not callable(boundary):
        raise TypeError(
            f"boundary: expected a callable (carry, index) -> gradient, got {boundary!r}"
        )
    if (boundary is not None or boundary_tap is not None) and truncate is None:
        raise ValueError(
            "truncate: boundary and boundary_tap need truncation windows; pass truncate"
        )
    if boundary_tap is not None and not isinstance(boundary_tap, str):
        raise TypeError(f"boundary_tap: expected a tap name (str), got {boundary_tap!r}")
    if not isinstance(precompute, bool):
        raise TypeError(f"precompute: expected a bool, got {precompute!r}")
    check_choice("weight_grads", weight_grads, WEIGHT_GRADS)
    if weight_grads == "after_loop":
        if boundary is not None or boundary_tap is not None:
            raise ValueError(
                "weight_grads: 'after_loop' does not take boundary or boundary_tap (synthetic "
                "gradients); use 'in_loop'"
            )
        if taps.tapping():
            raise ValueError(
                "weight_grads: 'after_loop' cannot run under collect_taps (the taps would leave "
                "its custom VJP); use 'in_loop'"
            )


def _check_segments(checkpoint_every, truncate) -> None:
    """The ``checkpoint_every`` errors, naming the argument."""
    if checkpoint_every is None:
        return
    check_positive_int("checkpoint_every", checkpoint_every)
    if truncate is not None:
        raise ValueError(
            "checkpoint_every: not with truncate (a window already bounds what reverse mode "
            "keeps); pass one of them"
        )
    if taps.tapping():
        raise ValueError(
            "checkpoint_every: cannot run under collect_taps (the taps would leave the "
            "checkpointed segments)"
        )


def _segmented(body, carry, seq, length, every, remat):
    """``lax.scan(body, carry, seq)`` as segments of ``every`` steps, each a ``jax.checkpoint``
    (``remat``'s policy): ``(carry, ys)`` (module doc, ``checkpoint_every``)."""
    segment = jax.checkpoint(
        lambda carry, part: jax.lax.scan(body, carry, part), **_remat_options(remat)
    )
    n_full, rest = divmod(length, every)
    ys_parts = []
    if n_full:
        main = jax.tree_util.tree_map(
            lambda a: a[: n_full * every].reshape(n_full, every, *a.shape[1:]), seq
        )
        carry, ys = jax.lax.scan(segment, carry, main)
        ys_parts.append(_merge_windows(ys))
    if rest:
        carry, ys = segment(carry, _slice(seq, n_full * every, length))
        ys_parts.append(ys)
    if len(ys_parts) == 1:
        return carry, ys_parts[0]
    return carry, jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *ys_parts)


def _remat_options(remat) -> dict:
    """``jax.checkpoint``'s keywords for ``remat`` (``True`` or ``"dots"``)."""
    if remat == "dots":
        return {"policy": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}
    return {}


def _after_loop(step, remat, truncate, length, leaves, shapes, batch, every=None):
    """``run(step_params, carry, xs, per_step, shared) -> (ys, carry)`` with the gradients of
    the weights that ``step`` applies by :func:`~memjax.core.linear.linear` (``leaves``,
    outputs ``shapes``) formed after the loop (module doc); ``batch``: the batch size (``xs``
    ``(T, B, ...)``, the step vmapped inside) or ``None``; ``every``: ``checkpoint_every``."""

    def loop(step_params, carry, xs, per_step, shared, probes):
        one = recording(step, step_params, probes)
        if remat and every is None:
            one = jax.checkpoint(one, **_remat_options(remat))
        if batch is not None:
            one = jax.vmap(one, in_axes=(0, 0, 0, 0, None))

        def body(carry, inputs):
            x, c, p = inputs
            (y, inputs), carry = one(carry, x, c, p, shared)
            return carry, (y, inputs)

        seq = (xs, per_step, probes)
        if every is not None:
            carry, (ys, inputs) = _segmented(body, carry, seq, length, every, remat)
        elif truncate is None or truncate >= length:
            carry, (ys, inputs) = jax.lax.scan(body, carry, seq)
        else:
            (ys, inputs), carry = _truncated(body, carry, seq, length, truncate, None, None)
        return (ys, carry), inputs

    def zeros():
        lead = (length,) if batch is None else (length, batch)
        return [jnp.zeros((*lead, *s.shape), s.dtype) for s in shapes]

    @jax.custom_vjp
    def run(step_params, carry, xs, per_step, shared):
        return loop(step_params, carry, xs, per_step, shared, zeros())[0]

    def run_fwd(step_params, carry, xs, per_step, shared):
        out, vjp, inputs = jax.vjp(
            loop, step_params, carry, xs, per_step, shared, zeros(), has_aux=True
        )
        return out, (vjp, inputs)

    def run_bwd(residuals, cotangents):
        vjp, inputs = residuals
        d_params, d_carry, d_xs, d_per_step, d_shared, d_probes = vjp(cotangents)
        flat, treedef = jax.tree_util.tree_flatten(d_params)
        for index, x, delta in zip(leaves, inputs, d_probes):
            # sum_t x_t^T delta_t over the time axis and any leading axes of x: one matmul
            d = x.shape[-1]
            grad = x.reshape(-1, d).T @ delta.reshape(-1, delta.shape[-1])
            flat[index] = flat[index] + grad.reshape(flat[index].shape).astype(flat[index].dtype)
        return treedef.unflatten(flat), d_carry, d_xs, d_per_step, d_shared

    run.defvjp(run_fwd, run_bwd)
    return run


def has_input_projection(cell) -> bool:
    """Whether ``cell`` has the optional input-projection hook (``project_inputs`` and
    ``step_projected``, :class:`memjax.core.Cell`) that ``unroll(precompute=True)`` uses."""
    return callable(getattr(cell, "project_inputs", None)) and callable(
        getattr(cell, "step_projected", None)
    )


def _slice(tree, start, stop):
    return jax.tree_util.tree_map(lambda a: a[start:stop], tree)


def _truncated(body, carry, seq, length, window, boundary, boundary_tap):
    """Window 0, then windows ``1 … n-1`` by an outer ``lax.scan``, then the shorter last one."""
    n_full, rest = divmod(length, window)

    def enter(carry, index):
        gradient = None if boundary is None else boundary(carry, index)
        carry = cut(carry, gradient)
        if boundary_tap is not None:
            carry = taps.tap(boundary_tap, carry)
        return carry

    pieces = []  # each piece's taps, in time order
    carry, ys0, values = taps.scan_collect(body, carry, _slice(seq, 0, window))
    pieces.append(values)
    ys_parts = [ys0]

    if n_full > 1:
        middle = jax.tree_util.tree_map(
            lambda a: a[window : n_full * window].reshape(n_full - 1, window, *a.shape[1:]), seq
        )

        def window_body(carry, inputs):
            j, xs_w = inputs
            carry = enter(carry, j + 1)
            carry, ys, values = taps.scan_collect(body, carry, xs_w)
            taps.record_all(values)
            return carry, ys

        def middle_select(name, a, j):
            if name == boundary_tap:
                return a[j]
            return jax.lax.dynamic_slice_in_dim(a, (j + 1) * window, window, axis=0)

        indices = jnp.arange(n_full - 1, dtype=jnp.int32)
        carry, ys_mid, values = taps.scan_collect(
            window_body, carry, (indices, middle), select=middle_select
        )
        flat = {
            name: v if name == boundary_tap else _merge_windows(v) for name, v in values.items()
        }
        pieces.append(flat)
        ys_parts.append(_merge_windows(ys_mid))

    if rest:
        start = n_full * window

        def last():
            c = enter(carry, jnp.asarray(n_full, jnp.int32))
            c, ys, values = taps.scan_collect(body, c, _slice(seq, start, length))
            taps.record_all(values)
            return c, ys

        def last_select(name, a):
            return a[n_full - 1] if name == boundary_tap else a[start:]

        (carry, ys_last), values = taps.collect_pieces(last, last_select)
        if boundary_tap in values:
            values = {**values, boundary_tap: _add_axis(values[boundary_tap])}
        pieces.append(values)
        ys_parts.append(ys_last)

    ys = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *ys_parts)
    taps.record_all(_concatenate(pieces))
    return ys, carry


def _merge_windows(tree):
    return jax.tree_util.tree_map(lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), tree)


def _add_axis(tree):
    return jax.tree_util.tree_map(lambda a: a[None], tree)


def _concatenate(pieces: list[dict]) -> dict:
    names = [name for piece in pieces for name in piece]
    merged = {}
    for name in dict.fromkeys(names):
        parts = [piece[name] for piece in pieces if name in piece]
        merged[name] = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *parts)
    return merged
