"""WGSEF and group lasso on parameter pytrees: penalty, prox, group scores and counts.

With the groups of :func:`~memjax.sparsity.tree_groups` (``ν_j = ‖θ_{G_j}‖`` summed over every
leaf the group touches, coupled bias and BatchNorm included):

* :func:`wgsef_penalty` — ``WGSEF(θ) = S_k(z)``, ``z_j = √d_j ν_j`` (arXiv 2212.12921, the
  weighted group sparse envelope; reconstructed form [R]);
* :func:`prox_wgsef_tree` — ``argmin_w step·λ·WGSEF(w) + ½‖w − θ‖²``, the proximal step of
  proximal SGD ``θ ← prox_{α λ WGSEF}(θ − α ∇L)`` (the step size α multiplies λ);
* :func:`group_lasso_penalty`, :func:`prox_group_lasso_tree` — ``Σ_j √d_j ν_j`` and its prox
  (block soft thresholding; the Prox-SG baseline).

``k`` is an int — one envelope over all groups, a *global* k-level — or ``{layer: k_l}`` — one
envelope per layer, ``Σ_l λ_l WGSEF_{k_l}(θ_l)``, every layer named; ``lam`` is then a number or
``{layer: λ_l}``. ``weights`` is ``None``/``"one"``, ``"size"``, or a ``(m,)`` array (e.g.
:func:`~memjax.sparsity.group_weights` ``"flops"``). The prox rescales every group by one
factor, so leaves keep their dtypes, leaves in no group pass through, and ``jit``/``grad``
behave as for :func:`~memjax.sparsity.prox_wgsef`.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from memjax.nn import Dense
    >>> from memjax.sparsity import prox_wgsef, prox_wgsef_tree, tree_groups
    >>> layers = {"fc": Dense(3, 4)}
    >>> params = {"fc": layers["fc"].init_params(jax.random.key(0))}
    >>> params["fc"]["bias"] = jnp.arange(4.0) / 10
    >>> g = tree_groups(params, layers, "filter")                    # 4 neurons, bias coupled
    >>> out = prox_wgsef_tree(params, 0.5, g, 2, 2.0)                # λ_eff = 0.5 · 2
    >>> flat = jnp.concatenate([params["fc"]["kernel"], params["fc"]["bias"][None]])
    >>> ref = prox_wgsef(flat, jnp.broadcast_to(jnp.arange(4), (4, 4)), 4, 2, 1.0)
    >>> bool(jnp.allclose(out["fc"]["kernel"], ref[:3]) & jnp.allclose(out["fc"]["bias"], ref[3]))
    True
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_choice
from memjax.sparsity._arguments import check_k, check_lam, check_weights, guard, is_traced
from memjax.sparsity._envelope import _safe_sqrt, compute_dtype, sef_from_magnitudes
from memjax.sparsity._groups import TreeGroups, _layer_name, _name, group_weights
from memjax.sparsity._prox import METHODS, prox_scale

__all__ = [
    "count_nonzero_groups",
    "group_lasso_penalty",
    "group_norms_tree",
    "group_scores",
    "nonzero_groups_per_layer",
    "prox_group_lasso_tree",
    "prox_wgsef_tree",
    "scale_groups",
    "wgsef_penalty",
]


def _check_groups(groups):
    if not isinstance(groups, TreeGroups):
        raise TypeError(f"groups: expected TreeGroups (tree_groups), got {type(groups).__name__}")
    return groups


def _dtype(found, groups):
    return compute_dtype(jnp.result_type(*[found[e.path] for e in groups.leaves]))


def _sq_norms(found, groups, dtype, fn=lambda x: x * x):
    """``Σ_{i ∈ G_j} fn(θ_i)`` for every group (default ``θ_i²``): one reduction per leaf."""
    acc = jnp.zeros((groups.num_groups,), dtype)
    for e in groups.leaves:
        x = jnp.asarray(found[e.path]).astype(dtype)
        s = jnp.sum(fn(x), axis=e.reduce_axes).reshape(-1)
        acc = acc.at[e.offset : e.offset + e.count].add(s)
    return acc


@functools.partial(jax.jit, static_argnames=("groups",))
def _norms_core(found, groups):
    dtype = _dtype(found, groups)
    return _safe_sqrt(_sq_norms(found, groups, dtype))


def _grouped(params, groups, name="params"):
    """``{path: leaf}`` of the grouped leaves (checked), with a finiteness check: at once for
    concrete leaves, at run time (``eqx.error_if``) for traced ones."""
    found = _check_groups(groups).check(params, name)
    found = {e.path: found[e.path] for e in groups.leaves}
    message = f"{name}: expected finite values"
    for leaf in found.values():
        if not is_traced(leaf) and not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError(message)
    return found


def group_norms_tree(params, groups):
    """``ν_j = ‖θ_{G_j}‖₂`` over the pytree, shape ``(m,)`` (gradient 0 at zero groups).

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.nn import ChannelAxes
        >>> from memjax.sparsity import group_norms_tree, tree_groups
        >>> p = {"l": {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]])}}
        >>> g = tree_groups(p, {"l": {"w": ChannelAxes(out=1, in_=0)}})
        >>> group_norms_tree(p, g)
        Array([5., 1.], dtype=float32)
    """
    found = _grouped(params, groups)
    nu = _norms_core(found, groups)
    if is_traced(nu):
        return guard(nu, jnp.any(~jnp.isfinite(nu)), "params: expected finite values")
    return nu


@functools.partial(jax.jit, static_argnames=("groups",))
def _scale_core(found, groups, scale):
    out = {}
    for e in groups.leaves:
        leaf = found[e.path]
        s = scale[e.offset : e.offset + e.count].reshape(e.broadcast_shape())
        out[e.path] = (leaf * s).astype(jnp.result_type(leaf))
    return out


def scale_groups(params, groups, scale):
    """``params`` with every scalar of group ``j`` multiplied by ``scale[j]`` (``(m,)``);
    leaves in no group unchanged, dtypes kept."""
    found = _check_groups(groups).check(params)
    new = _scale_core({e.path: found[e.path] for e in groups.leaves}, groups, jnp.asarray(scale))
    return jax.tree_util.tree_map_with_path(lambda p, leaf: new.get(_name(p), leaf), params)


def _weights(groups, weights, dtype):
    """``d`` as a ``(m,)`` array and whether each layer's d is uniform (per block)."""
    if weights is None or isinstance(weights, str):
        kind = "one" if weights is None else weights
        check_choice("weights", kind, ("one", "size"))
        d = group_weights(groups, kind)
        return jnp.asarray(d, dtype), d
    check_weights(weights, groups.num_groups)
    w = jnp.broadcast_to(jnp.asarray(weights, dtype), (groups.num_groups,))
    concrete = None if is_traced(weights) else np.broadcast_to(np.asarray(weights), w.shape)
    return w, concrete


def _blocks(groups, k, lam):
    """``[(lo, hi, k, lam)]``: one global block, or one per layer for a mapping ``k``."""
    if isinstance(k, Mapping):
        ks = {_layer_name(n): v for n, v in k.items()}
        missing = [n for n in groups.layers if n not in ks]
        extra = sorted(set(ks) - set(groups.layers))
        if missing or extra:
            raise ValueError(
                f"k: a per-layer k must name every layer {groups.layers}; "
                f"missing {missing}, unknown {extra}"
            )
        if isinstance(lam, Mapping):
            lams = {_layer_name(n): v for n, v in lam.items()}
            if set(lams) != set(groups.layers):
                raise ValueError(f"lam: a per-layer lam must name every layer {groups.layers}")
        else:
            lams = dict.fromkeys(groups.layers, lam)
        out = []
        for name, (lo, hi) in zip(groups.layers, groups.slices):
            out.append((lo, hi, check_k(ks[name], hi - lo), check_lam(lams[name])))
        return out
    if isinstance(lam, Mapping):
        raise ValueError("lam: a per-layer lam needs a per-layer k ({layer: k})")
    return [(0, groups.num_groups, check_k(k, groups.num_groups), check_lam(lam))]


def _guard_k(x, k, m):
    if is_traced(k):
        return guard(x, (k < 1) | (k > m), f"k: expected 1 <= k <= {m}")
    return x


def _step(step):
    """``step`` is a finite number ``>= 0`` (errors name ``step``)."""
    try:
        return check_lam(step)
    except (ValueError, TypeError) as err:
        raise type(err)(str(err).replace("lam:", "step:", 1)) from None


def prox_wgsef_tree(params, step, groups, k, lam, weights=None, *, method="sort"):
    """``argmin_w step·λ·WGSEF(w) + ½‖w − θ‖²`` over the pytree (module doc).

    Args:
        params: the pytree θ (it must hold every grouped leaf with its shape).
        step: the step size α ≥ 0 of proximal SGD (a number or a traced scalar).
        groups: :class:`~memjax.sparsity.TreeGroups`.
        k: an int (global) or ``{layer: k_l}``; may be traced when an int.
        lam: λ ≥ 0, or ``{layer: λ_l}`` with a per-layer ``k``.
        weights: ``None``/``"one"``, ``"size"`` or ``(m,)`` values > 0.
        method: ``"sort"`` or ``"bisection"`` (:func:`~memjax.sparsity.prox_wgsef`).
    """
    check_choice("method", method, METHODS)
    step = _step(step)
    nu = group_norms_tree(params, groups)
    d, concrete = _weights(groups, weights, nu.dtype)
    blocks = _blocks(groups, k, lam)
    spans = tuple((lo, hi) for lo, hi, _, _ in blocks)
    uniform = tuple(
        concrete is not None and bool(np.all(concrete[lo:hi] == concrete[lo])) for lo, hi in spans
    )
    ks = tuple(_guard_k_value(kb, hi - lo) for lo, hi, kb, _ in blocks)
    lams = tuple(jnp.asarray(lb, nu.dtype) for _, _, _, lb in blocks)
    scale = _prox_scales(nu, jnp.asarray(step, nu.dtype), ks, lams, d, spans, method, uniform)
    return scale_groups(params, groups, scale)


def _guard_k_value(k, m):
    k = jnp.asarray(k, jnp.int32)
    return _guard_k(k, k, m)


@functools.partial(jax.jit, static_argnames=("spans", "method", "uniform"))
def _prox_scales(nu, step, ks, lams, d, spans, method, uniform):
    return block_prox_scales(nu, d, spans, ks, [step * lb for lb in lams], method, uniform)


def block_prox_scales(nu, d, spans, ks, lams, method, uniform):
    """The prox factors of every block ``[lo, hi)`` of ``ν`` and ``d`` with its own ``k`` and
    ``λ`` (a per-layer ``k``). The blocks that share a ``uniform`` flag run as **one** vmapped
    root finder on rows zero-padded to the widest block (``d`` padded with its edge value): a
    zero group is inactive — ``S_k`` of a vector with appended zeros is ``S_k`` of the vector,
    for ``k`` at most its length — so the real groups' factors are those of the block alone,
    and a deep network compiles one or two root finders instead of one per layer."""
    if len(spans) == 1:
        (lo, hi), k, lam = spans[0], ks[0], lams[0]
        return prox_scale(nu[lo:hi], k, lam, d[lo:hi], method, uniform[0])
    out = [None] * len(spans)
    for flag in sorted(set(uniform)):
        idx = [i for i, u in enumerate(uniform) if u == flag]
        width = max(spans[i][1] - spans[i][0] for i in idx)
        pad = lambda v, i, mode, width=width: jnp.pad(
            v[spans[i][0] : spans[i][1]], (0, width - spans[i][1] + spans[i][0]), mode=mode
        )
        rows_nu = jnp.stack([pad(nu, i, "constant") for i in idx])
        rows_d = jnp.stack([pad(d, i, "edge") for i in idx])
        rows_k = jnp.stack([jnp.asarray(ks[i], jnp.int32) for i in idx])
        rows_lam = jnp.stack([jnp.asarray(lams[i], nu.dtype) for i in idx])
        scales = jax.vmap(lambda a, k, lam, w, u=flag: prox_scale(a, k, lam, w, method, u))(
            rows_nu, rows_k, rows_lam, rows_d
        )
        for r, i in enumerate(idx):
            out[i] = scales[r, : spans[i][1] - spans[i][0]]
    return jnp.concatenate(out)


def wgsef_penalty(params, groups, k, weights=None):
    """``Σ_blocks S_{k_b}(z_b)``, ``z_j = √d_j ν_j``: the WGSEF of the pytree (one term for an
    int ``k``, one per layer for ``{layer: k_l}``). Differentiable (a subgradient at zero
    groups).

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.nn import ChannelAxes
        >>> from memjax.sparsity import tree_groups, wgsef_penalty
        >>> p = {"l": {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]])}}      # ν = (5, 1)
        >>> g = tree_groups(p, {"l": {"w": ChannelAxes(out=1, in_=0)}})
        >>> float(wgsef_penalty(p, g, 1)), float(wgsef_penalty(p, g, 2))  # ½(Σν)², ½Σν²
        (18.0, 13.0)
    """
    nu = group_norms_tree(params, groups)
    d, _ = _weights(groups, weights, nu.dtype)
    blocks = _blocks(groups, k, 0.0)
    spans = tuple((lo, hi) for lo, hi, _, _ in blocks)
    ks = tuple(_guard_k_value(kb, hi - lo) for lo, hi, kb, _ in blocks)
    return _penalty_core(jnp.sqrt(d) * nu, ks, spans)


@functools.partial(jax.jit, static_argnames=("spans",))
def _penalty_core(z, ks, spans):
    total = jnp.zeros((), z.dtype)
    for (lo, hi), kb in zip(spans, ks):
        total = total + sef_from_magnitudes(z[lo:hi], kb)
    return total


def group_lasso_penalty(params, groups, weights=None):
    """``Σ_j √d_j ‖θ_{G_j}‖`` (the weighted group lasso; ``d_j = |G_j|`` with ``"size"``)."""
    nu = group_norms_tree(params, groups)
    d, _ = _weights(groups, weights, nu.dtype)
    return jnp.sum(jnp.sqrt(d) * nu)


def prox_group_lasso_tree(params, step, groups, lam, weights=None):
    """``argmin_w step·λ Σ_j √d_j ‖w_{G_j}‖ + ½‖w − θ‖²``: every group scaled by
    ``max(0, 1 − step·λ√d_j/ν_j)``; ``lam`` a number or ``{layer: λ_l}``.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.nn import ChannelAxes
        >>> from memjax.sparsity import prox_group_lasso_tree, tree_groups
        >>> p = {"l": {"w": jnp.array([[3.0, 0.0], [4.0, 1.0]])}}      # ν = (5, 1)
        >>> g = tree_groups(p, {"l": {"w": ChannelAxes(out=1, in_=0)}})
        >>> out = prox_group_lasso_tree(p, 1.0, g, 2.0)["l"]["w"]        # factors (0.6, 0)
        >>> [[round(float(v), 4) for v in row] for row in out]
        [[1.8, 0.0], [2.4, 0.0]]
    """
    step = _step(step)
    nu = group_norms_tree(params, groups)
    d, _ = _weights(groups, weights, nu.dtype)
    if isinstance(lam, Mapping):
        lams = {_layer_name(n): v for n, v in lam.items()}
        if set(lams) != set(groups.layers):
            raise ValueError(f"lam: a per-layer lam must name every layer {groups.layers}")
        lam_vec = jnp.concatenate(
            [
                jnp.full((hi - lo,), check_lam(lams[n]), nu.dtype)
                for n, (lo, hi) in zip(groups.layers, groups.slices)
            ]
        )
    else:
        lam_vec = jnp.asarray(check_lam(lam), nu.dtype)
    threshold = jnp.asarray(step, nu.dtype) * lam_vec * jnp.sqrt(d)
    keep = nu > threshold
    scale = jnp.where(keep, 1 - threshold / jnp.where(keep, nu, 1), 0)
    return scale_groups(params, groups, scale)


def group_scores(params, groups, weights=None):
    """``z_j = √d_j ‖θ_{G_j}‖``, the magnitudes the envelope and the top-k selection use."""
    nu = group_norms_tree(params, groups)
    d, _ = _weights(groups, weights, nu.dtype)
    return jnp.sqrt(d) * nu


def count_nonzero_groups(params, groups):
    """The number of groups with a non-zero entry (``int32``; ``jit``-able)."""
    return jnp.sum(group_norms_tree(params, groups) > 0).astype(jnp.int32)


def nonzero_groups_per_layer(params, groups) -> dict:
    """``{layer: number of non-zero groups}`` (``int32`` scalars; ``jit``-able).

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.nn import ChannelAxes
        >>> from memjax.sparsity import nonzero_groups_per_layer, tree_groups
        >>> p = {"a": {"w": jnp.array([[1.0, 0.0]])}, "b": {"w": jnp.ones((2, 3))}}
        >>> axes = {"w": ChannelAxes(out=1, in_=0)}
        >>> counts = nonzero_groups_per_layer(p, tree_groups(p, {"a": axes, "b": axes}))
        >>> {n: int(c) for n, c in counts.items()}
        {'a': 1, 'b': 3}
    """
    on = group_norms_tree(params, groups) > 0
    return {
        n: jnp.sum(on[lo:hi]).astype(jnp.int32) for n, (lo, hi) in zip(groups.layers, groups.slices)
    }
