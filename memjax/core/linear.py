r"""The weight product of a cell's step, :func:`linear`, and the recording behind
``unroll(weight_grads="after_loop")``.

A cell applies each weight matrix to an activation as :math:`y = x W` through :func:`linear`.
Outside :func:`memjax.core.unroll.unroll`'s after-loop mode that is ``x @ W`` and nothing else.
Inside it, :func:`recording` runs the step with each product on a leaf :math:`W` of the step's
params formed with :math:`W` detached, plus a zero *probe* whose cotangent is
:math:`\delta_t = \partial L/\partial y_t`, and keeps the input :math:`x_t`; the driver then
forms :math:`\partial L/\partial W = \sum_t x_t^\top \delta_t` after the loop as one matmul.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core.linear import linear
    >>> x, w = jnp.ones((5, 2)), jnp.ones((2, 3))
    >>> bool(jnp.all(linear(x, w) == x @ w))
    True
"""

from __future__ import annotations

import threading

import jax

__all__ = ["linear"]


class _Linears(threading.local):
    def __init__(self):
        self.items: list[_Recorder] = []


_LINEARS = _Linears()


def _product(x, w):
    return x @ w if w.ndim == 2 else x @ w.reshape(w.shape[0], -1)


def linear(x: jax.Array, w: jax.Array) -> jax.Array:
    r""":math:`x W` over ``w``'s first axis: ``x (..., d)``, ``w (d, ...)`` → ``(..., e)``,
    ``e = prod(w.shape[1:])``.

    The product a cell's ``step`` writes for a weight matrix applied to an activation. In
    :func:`memjax.core.unroll.unroll` with ``weight_grads="after_loop"``, where ``w`` is a leaf
    of the step's params, its gradient :math:`\sum_t x_t^\top \delta_t` is formed after the
    loop as one matmul (module doc); elsewhere it is ``x @ w.reshape(d, -1)``, nothing else.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.core.linear import linear
        >>> linear(jnp.ones(2), jnp.ones((2, 3, 4))).shape
        (12,)
    """
    if _LINEARS.items:
        return _LINEARS.items[-1](x, w)
    return _product(x, w)


class _Recorder:
    r"""One step's :func:`linear` calls on the leaves ``ids`` (``id(leaf) -> index``): the
    product with the weight detached, plus the step's probe (whose cotangent is
    :math:`\delta_t`); the inputs :math:`x_t` kept in call order."""

    def __init__(self, ids: dict[int, int], probes):
        self.ids, self.probes = ids, probes
        self.leaves: list[int] = []
        self.inputs: list[jax.Array] = []

    def __call__(self, x, w):
        index = self.ids.get(id(w))
        if index is None:  # not a leaf of the step's params: an ordinary product
            return _product(x, w)
        y = _product(x, jax.lax.stop_gradient(w))
        if self.probes is not None:
            y = y + self.probes[len(self.inputs)]
        self.leaves.append(index)
        self.inputs.append(jax.lax.stop_gradient(x))
        return y


def recording(step, step_params, probes, found=None):
    r"""``one(carry, x, c, p, shared) -> ((y, inputs), carry)``: ``step`` with its :func:`linear`
    calls on ``step_params``' leaves recorded (their leaf indices appended to ``found``), each
    product plus its probe ``p[i]`` (whose cotangent is :math:`\delta_t`; ``p=None``: none)."""
    ids = {id(leaf): i for i, leaf in enumerate(jax.tree_util.tree_leaves(step_params))}

    def one(carry, x, c, p, shared):
        recorder = _Recorder(ids, p)
        _LINEARS.items.append(recorder)
        try:
            y, carry = step(step_params, carry, x, **c, **shared)
        finally:
            _LINEARS.items.pop()
        if found is not None:
            found.append(recorder.leaves)
        return (y, recorder.inputs), carry

    return one


def linear_calls(step, step_params, carry, xs, per_step, shared):
    """``(leaves, shapes)`` of one step's :func:`linear` calls on ``step_params``' leaves, in
    call order: the leaf index of each weight and the ``ShapeDtypeStruct`` of its output."""
    found: list[list[int]] = []

    def first(step_params, carry, xs, per_step, shared):
        one = recording(step, step_params, None, found)
        x, c = jax.tree_util.tree_map(lambda a: a[0], (xs, per_step))
        (_, inputs), _ = one(carry, x, c, None, shared)
        return [_product(x, w) for x, w in zip(inputs, _weights(step_params, found[0]))]

    shapes = jax.eval_shape(first, step_params, carry, xs, per_step, shared)
    return tuple(found[0]), shapes


def _weights(step_params, leaves):
    flat = jax.tree_util.tree_leaves(step_params)
    return [flat[i] for i in leaves]
