"""The cell contract: checks every closed-loop :class:`memjax.core.Cell` passes under ``unroll``.

A cell is built by ``factory(dtype)``; its input is one vector of ``cell.d_input`` (or the shape
in ``cell.input_shape``) per step. Each check raises ``AssertionError`` naming what broke::

    from memjax.core.testing import check_cell_contract
    check_cell_contract(lambda dtype: MyCell(..., dtype=dtype))

Example:
    >>> from memjax.core.testing.cell_contract import check_unroll_equals_loop
    >>> from memjax.nn.lstm import LSTMCell
    >>> check_unroll_equals_loop(lambda dtype: LSTMCell(d_input=2, d_hidden=3, dtype=dtype))
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.protocol import Cell
from memjax.core.testing.memory_contract import assert_trees_allclose, directional_fd, float64
from memjax.core.unroll import unroll

__all__ = [
    "CELL_CHECKS",
    "check_boundary_injects_gradient",
    "check_cell_contract",
    "check_cell_gradients",
    "check_cell_jit_equals_eager",
    "check_cell_no_retrace",
    "check_cell_unknown_control_raises",
    "check_cell_vmap_equals_stacked",
    "check_truncation_cuts_gradients",
    "check_unroll_equals_loop",
    "loop_of_cell_steps",
]

CellFactory = Callable[[str], Cell]


def input_shape(cell: Cell) -> tuple[int, ...]:
    """The shape of one step's input: ``cell.input_shape`` if it has one, else ``(d_input,)``."""
    shape = getattr(cell, "input_shape", None)
    return tuple(shape) if shape is not None else (cell.d_input,)


def loop_of_cell_steps(cell: Cell, params, carry, xs, **controls):
    """The reference: a Python loop of ``cell.step``, per-step controls sliced by hand."""
    ys = []
    for t in range(jax.tree_util.tree_leaves(xs)[0].shape[0]):
        c = {n: (v[t] if hasattr(v, "ndim") and v.ndim >= 1 else v) for n, v in controls.items()}
        y, carry = cell.step(params, carry, jax.tree_util.tree_map(lambda a, t=t: a[t], xs), **c)
        ys.append(y)
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ys), carry


def _normal(seed: int, shape, dtype) -> jax.Array:
    """Standard normal draws from NumPy (no per-shape compile of a JAX random kernel)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _init_impl(cell, key, noise):
    params = jax.tree_util.tree_map(lambda p, n: p + 0.1 * n, cell.init_params(key), noise)
    return params, cell.init_carry(params)


# Params and carry come from one jitted init per cell spec and dtype (the seed is a traced key),
# not from op-by-op eager dispatch, which compiles every op of the init at every new shape.
_init = jax.jit(_init_impl, static_argnums=0)


def _setup(factory: CellFactory, dtype: str, length: int, seed: int):
    cell = factory(dtype)
    key = jax.random.key(seed)
    shapes = jax.eval_shape(cell.init_params, key)
    noise = jax.tree_util.tree_map(lambda p: _normal(seed + 1, p.shape, p.dtype), shapes)
    params, carry = _init(cell, key, noise)
    xs = _normal(seed + 2, (length, *input_shape(cell)), dtype)
    return cell, params, carry, xs


def check_unroll_equals_loop(factory: CellFactory, length: int = 7) -> None:
    """``unroll`` (plain, remat, truncated) equals a Python loop of ``step`` in the forward pass,
    with a per-step control (a PRNG key, which the cell may ignore)."""
    with float64():
        cell, params, carry, xs = _setup(factory, "float64", length, 1)
        key = jax.random.key(7)
        loop = jax.jit(lambda p, c, x, k: loop_of_cell_steps(cell, p, c, x, key=k))
        ref = loop(params, carry, xs, jax.random.split(key, length))
        for remat, truncate in ((False, None), (True, 3), (False, 1)):
            run = jax.jit(
                lambda p, c, x, k, r=remat, w=truncate: unroll(
                    cell, p, c, x, remat=r, truncate=w, key=k
                )
            )
            out = run(params, carry, xs, key)
            what = f"unroll(remat={remat}, truncate={truncate}) vs loop of step"
            assert_trees_allclose(out, ref, rtol=1e-12, atol=1e-12, what=what)


def check_cell_jit_equals_eager(factory: CellFactory, length: int = 6) -> None:
    cell, params, carry, xs = _setup(factory, "float32", length, 2)
    eager = unroll(cell, params, carry, xs, truncate=4)
    jitted = jax.jit(lambda c, p, s, x: unroll(c, p, s, x, truncate=4))(cell, params, carry, xs)
    assert_trees_allclose(jitted, eager, rtol=1e-5, atol=1e-5, what="jit vs eager unroll")


def check_cell_vmap_equals_stacked(factory: CellFactory, length: int = 5, batch: int = 3) -> None:
    cell, params, carry, _ = _setup(factory, "float32", length, 3)
    shape = (length, *input_shape(cell))
    xs = [_normal(20 + b, shape, "float32") for b in range(batch)]
    one = jax.jit(lambda x: unroll(cell, params, carry, x))
    batched = jax.jit(jax.vmap(one))(jnp.stack(xs))
    singles = [one(x) for x in xs]
    expected = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *singles)
    assert_trees_allclose(batched, expected, rtol=1e-5, atol=1e-5, what="vmap vs stacked unrolls")


def check_cell_gradients(factory: CellFactory, length: int = 6, eps: float = 1e-6) -> None:
    """Gradients through ``unroll`` (with remat) equal central finite differences in float64."""
    with float64():
        cell, params, _, xs = _setup(factory, "float64", length, 4)
        assert jax.tree_util.tree_leaves(params), "the cell has no params to differentiate"

        def loss(p):
            ys, last = unroll(cell, p, cell.init_carry(p), xs, remat=True)
            leaves = jax.tree_util.tree_leaves((ys, last))
            return sum(jnp.sum(jnp.sin(a)) for a in leaves if jnp.issubdtype(a.dtype, jnp.inexact))

        value_and_grad = jax.jit(jax.value_and_grad(loss))  # one compile for both
        _, grads = value_and_grad(params)
        for i in range(3):
            direction = jax.tree_util.tree_map(
                lambda p, k=i: _normal(200 + k, p.shape, p.dtype), params
            )
            analytic = sum(
                jnp.vdot(g, d)
                for g, d in zip(
                    jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction)
                )
            )
            numeric = directional_fd(lambda p: value_and_grad(p)[0], params, direction, eps)
            np.testing.assert_allclose(
                float(analytic),
                float(numeric),
                rtol=1e-6,
                atol=1e-8,
                err_msg="gradient through unroll vs finite differences",
            )


def check_cell_no_retrace(factory: CellFactory, length: int = 4) -> None:
    traces = []

    @jax.jit
    def run(cell, params, carry, xs):
        traces.append(1)
        return unroll(cell, params, carry, xs, truncate=2)

    cell, params, carry, xs = _setup(factory, "float32", length, 5)
    run(cell, params, carry, xs)
    run(factory("float32"), params, carry, xs * 2.0 + 1.0)  # an equal spec, a new object
    assert len(traces) == 1, f"second call retraced ({len(traces)} traces)"


def _input_jacobian(cell, params, carry, xs, truncate):
    """``J[t, :, s, :] = d y_t / d x_s`` (outputs and inputs flattened per step)."""

    def out(xs):
        ys, _ = unroll(cell, params, carry, xs, truncate=truncate)
        leaves = jax.tree_util.tree_leaves(ys)
        return jnp.concatenate([a.reshape(a.shape[0], -1) for a in leaves], axis=1)

    jac = np.asarray(jax.jit(jax.jacrev(out))(xs))  # (T, d_out, T, *input)
    return jac.reshape(*jac.shape[:3], -1)


def check_truncation_cuts_gradients(factory: CellFactory, length: int = 7, window: int = 3) -> None:
    """With ``truncate=W``, output ``t`` has exactly zero gradient w.r.t. every input before its
    window, and w.r.t. the inputs of its window up to ``t`` a non-zero one that equals the
    untruncated gradient; without truncation the earlier inputs are reached."""
    with float64():
        cell, params, carry, xs = _setup(factory, "float64", length, 6)
        cut_jac = _input_jacobian(cell, params, carry, xs, window)
        full_jac = _input_jacobian(cell, params, carry, xs, None)
        size = np.abs(cut_jac).max(axis=(1, 3))  # (T, T)
        for t in range(length):
            start = (t // window) * window
            before = size[t, :start].max(initial=0.0)
            assert before == 0.0, f"output {t}: gradient {before} crosses the cut at {start}"
            within = size[t, start : t + 1]
            assert np.all(within > 0), f"output {t}: zero gradient inside its window: {within}"
            after = size[t, t + 1 :].max(initial=0.0)
            assert after == 0.0, f"output {t}: gradient from future inputs ({after})"
            if start:
                reached = np.abs(full_jac[t, :, :start]).max()
                assert reached > 0, f"output {t}: untruncated gradient misses the early inputs"
            np.testing.assert_allclose(
                cut_jac[t, :, start:],
                full_jac[t, :, start:],
                rtol=1e-12,
                atol=1e-14,
                err_msg=f"output {t}: gradients inside its window differ from untruncated ones",
            )


def check_boundary_injects_gradient(factory: CellFactory, length: int = 5, window: int = 2) -> None:
    """A ``boundary`` hook's gradient enters the carry at the end of each cut window: the
    parameter gradient equals a hand-written window loop that adds ``<ĝ_j, c_end>`` per cut."""
    with float64():
        cell, params, _, xs = _setup(factory, "float64", length, 8)

        def hook(c, index):  # a synthetic gradient that depends on the window index
            return jax.tree_util.tree_map(lambda a: 0.1 * index * jnp.tanh(a), c)

        def loss(p):
            ys, _ = unroll(cell, p, cell.init_carry(p), xs, truncate=window, boundary=hook)
            return sum(jnp.sum(jnp.sin(a)) for a in jax.tree_util.tree_leaves(ys))

        def reference(p):
            c, total = cell.init_carry(p), 0.0
            for start in range(0, length, window):
                if start:
                    ghat = jax.lax.stop_gradient(hook(c, start // window))
                    total = total + sum(
                        jnp.vdot(g, a)
                        for g, a in zip(
                            jax.tree_util.tree_leaves(ghat), jax.tree_util.tree_leaves(c)
                        )
                        if jnp.issubdtype(a.dtype, jnp.inexact)
                    )
                    c = jax.lax.stop_gradient(c)
                ys, c = loop_of_cell_steps(cell, p, c, xs[start : start + window])
                total = total + sum(jnp.sum(jnp.sin(a)) for a in jax.tree_util.tree_leaves(ys))
            return total

        assert_trees_allclose(
            jax.jit(jax.grad(loss))(params),
            jax.jit(jax.grad(reference))(params),
            rtol=1e-10,
            atol=1e-12,
            what="boundary-injected gradient vs window loop",
        )


def check_cell_unknown_control_raises(factory: CellFactory, length: int = 3) -> None:
    """``unroll`` rejects a control name no memjax component knows, naming it.

    The call is traced abstractly (``jax.eval_shape``): argument checks run in Python before any
    computation, so nothing is compiled or run.
    """
    cell = factory("float32")
    key = jax.random.key(9)
    noise = jax.eval_shape(cell.init_params, key)
    params, carry = jax.eval_shape(functools.partial(_init_impl, cell), key, noise)
    xs = jax.ShapeDtypeStruct((length, *input_shape(cell)), jnp.float32)
    try:
        jax.eval_shape(lambda p, c, x: unroll(cell, p, c, x, thetta=0.5), params, carry, xs)
    except ValueError as exc:
        assert "'thetta'" in str(exc) and "'theta'" in str(exc), f"unhelpful error: {exc}"
    else:
        raise AssertionError("unroll(thetta=0.5) raised no ValueError")


CELL_CHECKS = (
    check_unroll_equals_loop,
    check_cell_jit_equals_eager,
    check_cell_vmap_equals_stacked,
    check_cell_gradients,
    check_cell_no_retrace,
    check_truncation_cuts_gradients,
    check_boundary_injects_gradient,
    check_cell_unknown_control_raises,
)


def check_cell_contract(factory: CellFactory) -> None:
    """Run every cell contract check on the cell built by ``factory(dtype)``."""
    for check in CELL_CHECKS:
        check(factory)
