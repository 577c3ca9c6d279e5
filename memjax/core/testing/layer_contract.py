"""The layer contract: checks every :class:`memjax.core.SequenceLayer` passes.

A layer is described by a :class:`LayerCase`: ``factory(dtype) -> layer``, where a streaming
layer may cut its input (``split``), and the finite-difference tolerance of its gradient check.
Inputs are ``(T, d_model)`` floats, or ``(T,)`` token ids for a layer with a ``vocab_size``.
Every check runs in float64, and the checks share one jitted ``apply`` (so a layer at one shape
compiles once for the streaming, jit, vmap and retrace checks); a streaming split at ``T/2``
makes both pieces share a compile too.
Each check raises ``AssertionError`` naming what broke::

    from memjax.core.testing.layer_contract import LayerCase, check_layer_contract
    check_layer_contract(LayerCase(lambda dtype: MyLayer(..., dtype=dtype), split=3))

Example:
    >>> from memjax.core.testing.layer_contract import LayerCase, check_layer_streams
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> case = LayerCase(lambda dtype: AssociativeLayer(4, 1, LinearMemory(2, 2, dtype=dtype),
    ...                                                 conv_width=2), split=3)
    >>> check_layer_streams(case)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.protocol import SequenceLayer
from memjax.core.testing.memory_contract import assert_trees_allclose, directional_fd, float64

__all__ = [
    "LAYER_CHECKS",
    "LayerCase",
    "check_layer_contract",
    "check_layer_gradients",
    "check_layer_jit_equals_eager",
    "check_layer_no_retrace",
    "check_layer_streams",
    "check_layer_unknown_control_raises",
    "check_layer_vmap_equals_stacked",
    "layer_inputs",
]


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """How to test one layer.

    Args:
        factory: ``dtype -> layer``.
        split: where the streaming check cuts the input (``None``: the layer does not stream,
            e.g. full attention, which carries no cache).
        length: sequence length of the checks.
        grad_rtol: relative tolerance of the gradient check (``1e-6``; looser only for layers
            that compute a part in float32 even in float64, such as a float32 softmax).
        fd_eps: the finite-difference step.
    """

    factory: Callable[[str], SequenceLayer]
    split: int | None = None
    length: int = 8
    grad_rtol: float = 1e-6
    fd_eps: float = 1e-6


def layer_inputs(layer, length: int, seed: int, dtype="float32"):
    """Random inputs: token ids ``(T,)`` for a layer with ``vocab_size``, else ``(T, d_model)``.

    Drawn by NumPy from ``seed`` (no per-shape compile of a JAX random kernel).
    """
    rng = np.random.default_rng(seed)
    if hasattr(layer, "vocab_size"):
        return jnp.asarray(rng.integers(0, layer.vocab_size, length), jnp.int32)
    return jnp.asarray(rng.standard_normal((length, layer.d_model)), dtype)


def _init_impl(layer, key):
    params = layer.init_params(key)
    return params, layer.init_state(params)


# Params and state come from one jitted init per layer spec and dtype (the seed is a traced key),
# not from op-by-op eager dispatch, which compiles every op of the init at every new shape.
_init = jax.jit(_init_impl, static_argnums=0)


def _setup(case: LayerCase, dtype: str, seed: int, length: int | None = None):
    layer = case.factory(dtype)
    params, state = _init(layer, jax.random.key(seed))
    xs = layer_inputs(layer, length or case.length, seed + 1, dtype)
    return layer, params, state, xs


_TRACES: list = []  # one entry per trace of _apply (the no-retrace check counts them)


def _apply_impl(layer, params, state, xs):
    _TRACES.append(layer)
    return layer.apply(params, state, xs)


# One jitted apply shared by the checks, keyed on the (static, hashable) spec, so checks that
# run the same layer at the same shapes share one compile.
_apply = jax.jit(_apply_impl, static_argnums=0)


def _concat(a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.concatenate([x, y]), a, b)


def check_layer_streams(case: LayerCase) -> None:
    """``apply`` over a sequence equals ``apply`` over two pieces with the state carried."""
    if case.split is None:
        return
    with float64():
        layer, params, state, xs = _setup(case, "float64", 1)
        ys, final = _apply(layer, params, state, xs)
        y1, mid = _apply(layer, params, state, xs[: case.split])
        y2, end = _apply(layer, params, mid, xs[case.split :])
        what = f"apply(whole) vs apply(xs[:{case.split}]) then apply(xs[{case.split}:])"
        assert_trees_allclose(_concat(y1, y2), ys, rtol=1e-9, atol=1e-9, what=what + " outputs")
        assert_trees_allclose(end, final, rtol=1e-9, atol=1e-9, what=what + " states")


def check_layer_jit_equals_eager(case: LayerCase) -> None:
    with float64():
        layer, params, state, xs = _setup(case, "float64", 2)
        eager = layer.apply(params, state, xs)
        jitted = _apply(layer, params, state, xs)
        assert_trees_allclose(jitted, eager, rtol=1e-6, atol=1e-6, what="jit vs eager apply")


def check_layer_vmap_equals_stacked(case: LayerCase, batch: int = 2) -> None:
    with float64():
        layer, params, state, _ = _setup(case, "float64", 3)
        xs = [layer_inputs(layer, case.length, 30 + b, "float64") for b in range(batch)]
        batched = jax.jit(jax.vmap(lambda x: layer.apply(params, state, x)))(jnp.stack(xs))
        singles = [_apply(layer, params, state, x) for x in xs]
        expected = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *singles)
        assert_trees_allclose(batched, expected, rtol=1e-6, atol=1e-6, what="vmap vs stacked")


def check_layer_gradients(case: LayerCase) -> None:
    """Gradients of a loss of the outputs w.r.t. the params equal finite differences (float64)."""
    with float64():
        layer, params, _, xs = _setup(case, "float64", 4)
        assert jax.tree_util.tree_leaves(params), "the layer has no params to differentiate"

        def loss(p):
            ys, _ = layer.apply(p, layer.init_state(p), xs)
            return jnp.sum(jnp.sin(ys))

        # one compile serves the gradient and the finite differences
        value_and_grad = jax.jit(jax.value_and_grad(loss))
        _, grads = value_and_grad(params)
        leaves = jax.tree_util.tree_leaves(grads)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves), "non-finite gradient"
        for i in range(2):
            direction = jax.tree_util.tree_map(
                lambda p, k=i: jnp.asarray(
                    np.random.default_rng(300 + k).standard_normal(p.shape), p.dtype
                ),
                params,
            )
            analytic = sum(
                jnp.vdot(g, d) for g, d in zip(leaves, jax.tree_util.tree_leaves(direction))
            )
            numeric = directional_fd(lambda p: value_and_grad(p)[0], params, direction, case.fd_eps)
            np.testing.assert_allclose(
                float(analytic),
                float(numeric),
                rtol=case.grad_rtol,
                atol=1e-8,
                err_msg="gradient through apply vs finite differences",
            )


def check_layer_no_retrace(case: LayerCase) -> None:
    """A second jitted call with an equal spec (a new object) and new values does not retrace."""
    with float64():
        layer, params, state, xs = _setup(case, "float64", 5)
        _apply(layer, params, state, xs)  # traces at most once (the jit check may have already)
        before = len(_TRACES)
        other = layer_inputs(layer, case.length, 99, "float64")
        _apply(case.factory("float64"), params, state, other)
        assert len(_TRACES) == before, f"second call retraced ({len(_TRACES) - before} traces)"


def check_layer_unknown_control_raises(case: LayerCase) -> None:
    """``apply`` rejects a control name no memjax component knows, naming it.

    The call is traced abstractly (``jax.eval_shape``): argument checks run in Python before any
    computation, so nothing is compiled or run.
    """
    layer = case.factory("float32")
    params, state = jax.eval_shape(functools.partial(_init_impl, layer), jax.random.key(6))
    xs = jax.eval_shape(lambda: layer_inputs(layer, 3, 6, "float32"))
    try:
        jax.eval_shape(lambda p, s, x: layer.apply(p, s, x, thetta=0.5), params, state, xs)
    except ValueError as exc:
        assert "'thetta'" in str(exc), f"error does not name the control: {exc}"
    else:
        raise AssertionError("apply(thetta=0.5) raised no ValueError")


LAYER_CHECKS = (
    check_layer_streams,
    check_layer_jit_equals_eager,
    check_layer_vmap_equals_stacked,
    check_layer_gradients,
    check_layer_no_retrace,
    check_layer_unknown_control_raises,
)


def check_layer_contract(case: LayerCase) -> None:
    """Run every layer contract check on ``case``."""
    for check in LAYER_CHECKS:
        check(case)
