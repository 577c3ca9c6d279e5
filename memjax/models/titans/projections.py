r"""The Titans LMM's input and output pieces around the memory (arXiv 2501.00663 §4.4).

Functions of a :class:`~memjax.models.titans.lmm.TitansLMM` spec and its params (the layer's
methods of the same names call them):

* :func:`normed_input` — ``pre_norm``: :math:`x^s = \mathrm{RMS}(x) \odot s_{store}` (feeds k, v
  and the gates) and :math:`x^r = \mathrm{RMS}(x) \odot s_{retrieve}` (feeds q and the output gate),
  :math:`\mathrm{RMS}(x) = x / \sqrt{\mathrm{mean}(x^2) + \epsilon}`
  (:func:`memjax.nn.norms.rms_norm`);
* :func:`project` — :math:`k_t = x_t W_K`, :math:`v_t = x_t W_V` (eq. 11), :math:`q_t = x_t W_Q`
  (eq. 15), each followed by a causal depthwise convolution (:mod:`memjax.nn.conv1d`), SiLU, and
  ℓ2-normalised q, k (:func:`memjax.nn.norms.l2_normalize`);
* :func:`output` — per-head RMSNorm with a learned scale, the sigmoid output gate
  (per feature or per head) and the output projection.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans import TitansLMM
    >>> from memjax.models.titans.projections import output, project
    >>> layer = TitansLMM(d_model=8, num_heads=2, num_persistent=0)
    >>> p = layer.init_params(jax.random.key(0))
    >>> xs = jnp.ones((5, 8))
    >>> k, v, q, tail = project(layer, p, layer.empty_state(p).conv_tail, xs)
    >>> k.shape, tail.shape, output(layer, p, xs, v).shape
    ((5, 2, 4), (3, 24), (5, 8))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from memjax.nn.conv1d import causal_depthwise_conv
from memjax.nn.norms import l2_normalize, rms_norm

if TYPE_CHECKING:
    from memjax.models.titans.lmm import TitansLMM

__all__ = ["normed_input", "normed_matmul", "output", "project"]


def _rms(layer: TitansLMM, xs):
    r""":math:`\mathrm{RMS}(x)` of ``pre_norm`` (no scale)."""
    eps = layer.pre_norm_eps
    if eps is None:
        eps = float(jnp.finfo(xs.dtype).eps)
    return rms_norm(xs, None, eps)


def normed_input(layer: TitansLMM, params: dict, xs, role: str):
    """``xs`` through the ``pre_norm`` of ``role`` (``"store"`` or ``"retrieve"``); ``xs``
    itself without ``pre_norm``. ``ε`` is ``pre_norm_eps``, or the machine epsilon of ``xs``."""
    if not layer.pre_norm:
        return xs
    return _rms(layer, xs) * params["pre_norm"][role][None, :]


def normed_matmul(layer: TitansLMM, params: dict, xs, role: str, w):
    r"""``normed_input(xs, role) @ w`` with ``pre_norm``'s scale folded into the weights:
    :math:`(\mathrm{RMS}(x) \odot s) W = \mathrm{RMS}(x)\,(\mathrm{diag}(s) W)`.

    The same map; its reverse mode forms the scale's cotangent from the weights' one
    (:math:`\bar s_i = \sum_j \bar W'_{ij} W_{ij}`, a ``(d, width)`` product) instead of a
    reduction over the ``T`` tokens, which XLA's CPU backend runs slowly."""
    if not layer.pre_norm:
        return xs @ w
    return _rms(layer, xs) @ (params["pre_norm"][role][:, None] * w)


def project(layer: TitansLMM, params: dict, conv_tail, xs):
    """``(k, v, q, new_tail)``, each of k, v, q ``(T, H, d_head)`` (module doc).

    With ``pre_norm``, k and v are projected from the store-normed input, q from the
    retrieve-normed one."""
    length, width = xs.shape[0], layer.num_heads * layer.head_size
    roles = ("store", "store", "retrieve")
    parts, tails = [], []
    # k, v and q are projected and convolved separately (the params stay concatenated): the
    # backward pass then needs no transposed copy of a (T, 3 H d) cotangent, which XLA's CPU
    # backend writes slowly.
    for i, role in enumerate(roles):
        cols = slice(i * width, (i + 1) * width)
        p = normed_matmul(layer, params, xs, role, params["qkv"]["w"][:, cols])
        if layer.conv_width:
            p, tail = causal_depthwise_conv(p, params["conv"]["w"][:, cols], conv_tail[:, cols])
            p = p + params["conv"]["b"][cols][None, :]
            tails.append(tail)
        if layer.qkv_silu:
            p = jax.nn.silu(p)
        parts.append(p.reshape(length, layer.num_heads, layer.head_size))
    k, v, q = parts
    if layer.conv_width:
        conv_tail = jnp.concatenate(tails, axis=-1)
    if layer.qk_l2norm:
        k, q = l2_normalize(k), l2_normalize(q)
    return k, v, q, conv_tail


def output(layer: TitansLMM, params: dict, xs, ys):
    """Output RMSNorm, gate and projection of the per-head reads ``ys`` ``(T, H, d_head)``;
    returns ``(T, d_model)``. The gate reads ``xs`` (retrieve-normed with ``pre_norm``)."""
    if layer.output_norm:
        ys = rms_norm(ys, params["out_norm"])
    gate = layer.output_gate_kind
    if gate != "none":
        g = jax.nn.sigmoid(normed_matmul(layer, params, xs, "retrieve", params["out_gate"]["w"]))
        if gate == "head":
            ys = ys * g[:, :, None]
    ys = ys.reshape(ys.shape[0], -1)
    if gate == "feature":
        ys = ys * g
    return ys @ params["out"]["w"]
