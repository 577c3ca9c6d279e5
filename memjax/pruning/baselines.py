r"""Baseline filter scores beside Beta-Rank: L1, HRank, random, BatchNorm scale, first-order Taylor.

All return one score per output channel ``(C_out,)``, larger = more important, with the same
``normalize`` option as :func:`memjax.pruning.beta_rank_scores` (``None`` here by default:
the baselines as their papers define them).

* :func:`l1_scores` — :math:`\operatorname{mean}|W_k|` over the filter (Li et al. 2017; the
  released Beta-Rank code's ``l1_filters``, mohofar/Beta-Rank ``rank_generation.py``, is this
  times :math:`H'W'`: the same ranking).
* :func:`hrank_scores` — HRank (Lin et al., CVPR 2020, arXiv 2002.10179): the average over the
  batch of the matrix rank of each post-ReLU :math:`H \times W` feature map,
  :math:`\frac1N \sum_n \operatorname{rank} A_{n,k}`, with PyTorch's ``matrix_rank`` tolerance
  :math:`\sigma_{max} \cdot \max(H, W) \cdot \varepsilon` (the released code calls
  ``torch.linalg.matrix_rank`` per map).
* :func:`random_scores` — i.i.d. uniform scores (the random baseline).
* :func:`bn_scale_scores` — :math:`|\gamma_k|`, the BatchNorm scale (network slimming, Liu et
  al., ICCV 2017).
* :func:`taylor_scores` — first-order Taylor (Molchanov et al., ICLR 2017, eq. 8):
  :math:`\frac1N \sum_n \bigl|\frac1M \sum_m z_{n,m,k}\, \partial L / \partial z_{n,m,k}\bigr|`
  over the :math:`M = H'W'` positions of the conv output :math:`z`; the gradient comes from
  :func:`memjax.core.taps.tap_gradients`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.pruning import hrank_scores, l1_scores
    >>> kernel = jnp.stack([jnp.full((3, 3, 2), 1.0), jnp.full((3, 3, 2), -2.0)], axis=-1)
    >>> l1_scores(kernel).tolist()
    [1.0, 2.0]
    >>> maps = jnp.zeros((2, 4, 4, 2)).at[:, 0, 0, 1].set(1.0).at[:, 1, 1, 1].set(1.0)
    >>> hrank_scores(maps).tolist()                 # channel 0 all zero, channel 1 rank 2
    [0.0, 2.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int, check_prng_key
from memjax.pruning.scores import kernel_hwio, minmax, to_nhwc

__all__ = ["bn_scale_scores", "hrank_scores", "l1_scores", "random_scores", "taylor_scores"]


def _normalize(scores, normalize):
    check_choice("normalize", normalize, ("minmax", None))
    return minmax(scores) if normalize == "minmax" else scores


def l1_scores(kernel, *, layout: str = "NHWC", normalize=None) -> jax.Array:
    """``mean|W_k|`` per filter: a conv kernel (HWIO for NHWC, OIHW for NCHW) or a Dense kernel
    ``(d_in, d_out)`` (module doc)."""
    if hasattr(kernel, "ndim") and kernel.ndim == 2:
        check_array("kernel", kernel, floating=True)
        return _normalize(jnp.mean(jnp.abs(kernel), axis=0), normalize)
    k = kernel_hwio(kernel, layout)
    return _normalize(jnp.mean(jnp.abs(k), axis=(0, 1, 2)), normalize)


@jax.jit
def _mean_rank(maps):
    _, h, w, _ = maps.shape
    stacked = jnp.transpose(maps, (0, 3, 1, 2))
    s = jnp.linalg.svd(stacked, compute_uv=False)  # (N, C, min(H, W))
    tol = jnp.max(s, axis=-1, keepdims=True) * (max(h, w) * jnp.finfo(s.dtype).eps)
    return jnp.mean(jnp.sum(s > tol, axis=-1).astype(jnp.float32), axis=0)


def hrank_scores(feature_maps, *, layout: str = "NHWC", normalize=None) -> jax.Array:
    """HRank: the batch mean of each channel's feature-map rank (module doc).

    Args:
        feature_maps: post-activation maps ``(N, H, W, C)`` (NHWC) or ``(N, C, H, W)``.
    """
    check_array("feature_maps", feature_maps, ndim=4, floating=True)
    return _normalize(_mean_rank(to_nhwc(feature_maps, layout)), normalize)


def random_scores(key, num_channels: int, *, normalize=None) -> jax.Array:
    """I.i.d. ``U[0, 1)`` scores for ``num_channels`` channels."""
    check_prng_key("key", key)
    check_positive_int("num_channels", num_channels)
    return _normalize(jax.random.uniform(key, (num_channels,)), normalize)


def bn_scale_scores(scale, *, normalize=None) -> jax.Array:
    """``|γ_k|`` of a BatchNorm's scale vector ``(C,)``."""
    check_array("scale", scale, ndim=1, floating=True)
    return _normalize(jnp.abs(scale), normalize)


def taylor_scores(conv_output, output_grad, *, layout: str = "NHWC", normalize=None):
    """First-order Taylor importance from a conv output and ``∂L/∂output`` (module doc)."""
    check_array("conv_output", conv_output, ndim=4, floating=True)
    check_array("output_grad", output_grad, shape=conv_output.shape, floating=True)
    z, g = to_nhwc(conv_output, layout), to_nhwc(output_grad, layout)
    return _normalize(jnp.mean(jnp.abs(jnp.mean(z * g, axis=(1, 2))), axis=0), normalize)
