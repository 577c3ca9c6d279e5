r"""The injection point of synthetic gradients and the helpers its users share.

:func:`mix` is the custom VJP at a target :math:`u_t` (DNI, Jaderberg et al. 2017, update
unlocking): forward the identity; reverse, the cotangent sent upstream is
:math:`\lambda \bar u_t + (1-\lambda)\hat g_t` (:math:`\lambda = 1`: backprop only,
:math:`\lambda = 0`: the synthetic gradient only), and the cotangent returned for
:math:`\hat g_t` is :math:`\bar u_t`, the gradient that reached :math:`u_t` — the SG's training
target. :func:`cosine` is the diagnostic :math:`\cos(\hat g_t, \delta_t)` per step.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.controllers.injection import flatten, unflatten
    >>> tree = {"a": jnp.ones(2), "b": jnp.zeros((1, 3))}
    >>> v = flatten(tree)
    >>> v.shape, unflatten(v, tree)["b"].shape
    ((5,), (1, 3))
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "CARRY",
    "MODES",
    "SGOutput",
    "cosine",
    "flat_size",
    "flatten",
    "flatten_steps",
    "mix",
    "unflatten",
]

CARRY = "carry"
MODES = ("dni", "inner_loop")


@jax.custom_vjp
def mix(x, g, lam):
    """Identity forward; reverse: ``λ·ct + (1-λ)·g`` upstream, and ``ct`` as the cotangent of g.

    The cotangent returned for ``g`` is the one that reached ``x`` — the SG's training target.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.controllers.injection import mix
        >>> f = lambda x, g: jnp.sum(3.0 * mix(2.0 * x, g, 0.25))
        >>> gx, gg = jax.grad(f, argnums=(0, 1))(jnp.ones(2), jnp.array([1.0, 5.0]))
        >>> gx.tolist(), gg.tolist()        # 2·(0.25·3 + 0.75·g);  ct = 3
        ([3.0, 9.0], [3.0, 3.0])
    """
    return x


def _mix_fwd(x, g, lam):
    return x, (g, lam)


def _mix_bwd(res, ct):
    g, lam = res
    lam_ct = jnp.asarray(lam, ct.dtype)
    return lam_ct * ct + (1 - lam_ct) * g.astype(ct.dtype), ct.astype(g.dtype), jnp.zeros_like(lam)


mix.defvjp(_mix_fwd, _mix_bwd)


def cosine(a, b, eps: float = 1e-12) -> jax.Array:
    """Cosine similarity per (batch, step) over the trailing axes: ``(B, T, ...) -> (B, T)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.controllers.injection import cosine
        >>> cosine(jnp.array([[[1.0, 0.0]]]), jnp.array([[[2.0, 0.0]]])).tolist()
        [[1.0]]
    """
    a = a.reshape(*a.shape[:2], -1)
    b = b.reshape(*b.shape[:2], -1)
    num = jnp.sum(a * b, -1)
    return num / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1) + eps)


def _inexact(leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def flatten(tree) -> jax.Array:
    """The inexact leaves of ``tree`` flattened and concatenated (integer leaves dropped)."""
    leaves = [jnp.ravel(a) for a in jax.tree_util.tree_leaves(tree) if _inexact(a)]
    return jnp.concatenate(leaves) if leaves else jnp.zeros((0,))


def unflatten(vector: jax.Array, like):
    """Inverse of :func:`flatten` into the structure of ``like`` (integer leaves become 0)."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    out, start = [], 0
    for a in leaves:
        if _inexact(a):
            size = int(jnp.size(a))
            out.append(vector[start : start + size].reshape(jnp.shape(a)).astype(a.dtype))
            start += size
        else:
            out.append(jnp.zeros(jnp.shape(a), jnp.result_type(a)))
    return treedef.unflatten(out)


def flat_size(shapes) -> int:
    """Total size of the inexact leaves of a pytree of arrays or shape structs."""
    return sum(
        math.prod(s.shape)
        for s in jax.tree_util.tree_leaves(shapes)
        if jnp.issubdtype(s.dtype, jnp.inexact)
    )


class SGOutput(NamedTuple):
    """One call of :meth:`SyntheticGradients.gradients`."""

    loss: jax.Array
    theta_grads: Any
    phi_grads: Any
    metrics: dict


def flatten_steps(tree) -> jax.Array:
    """``(B, T, ...)`` leaves of ``tree`` → one ``(B, T, n)`` array (inexact leaves)."""
    leaves = [a.reshape(*a.shape[:2], -1) for a in jax.tree_util.tree_leaves(tree) if _inexact(a)]
    return jnp.concatenate(leaves, -1)
