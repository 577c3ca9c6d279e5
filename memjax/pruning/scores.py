r"""Beta-Rank filter scores (Homayounfar et al. 2023, arXiv 2304.07461; code mohofar/Beta-Rank).

Beta-Rank ranks the filters :math:`f_k` of a convolution by their weight magnitude times a ratio
of activation spreads (the formula image ``images/Equation5.png`` of the mohofar/Beta-Rank
README, which memjax takes to be the paper's eq. 5)

.. math::

    R^\beta_k = R^{L1}_k \cdot \beta, \qquad
    \beta = \frac{\sigma^p_i}{\sigma^p_{i+1}}
          = \sqrt{\frac{\sum_j (x_i^j - \mu_i)^2}{\sum_j (x_{i+1}^j - \mu_{i+1})^2}} ,

the filter re-expressed between a standardised input patch :math:`x_i^j` and its standardised
output value :math:`x_{i+1}^j`. :func:`beta_rank_scores` computes it in two readings:

``mode="paper"`` (default; memjax's reading of the README formula): for output position
:math:`p` of filter :math:`k`, :math:`\sigma_{out}(k, p)` is the (population) standard deviation
over the batch of the conv output, and :math:`\sigma_{in}(p)` that of the **true receptive
field** of :math:`p`: the :math:`k_h \times k_w \times C_{in}/G` input values the filter
multiplies, over the batch and the patch, with the layer's stride, dilation and padding (padded
zeros are values the filter sees, so they count; a grouped filter sees its group's channels
only). Then

.. math::

    \beta_k = \sum_p \frac{\sigma_{in}(p)}{\sigma_{out}(k, p)} \quad (\texttt{reduce="sum"}),
    \qquad
    \beta_k = \frac{\sigma_{in}}{\sigma_{out}(k)} \quad (\texttt{reduce="pooled"}),

the pooled form taking both deviations over all positions and samples at once (the README's
single sum over :math:`j`); a position where either deviation is zero adds nothing. The score is
:math:`R_k = \operatorname{mean}|W_k| \cdot \beta_k` (mean rather than sum, as in the released
code: the same ranking within a layer).

``mode="code_compat"``: the arithmetic of mohofar/Beta-Rank's ``rank_generation.py::std_filters``,
quirks included, on NCHW tensors (NHWC input is transposed first):

1. stride :math:`s = \lfloor W_{in} / W_{out} \rfloor`; ``stride``, ``padding`` and
   ``dilation`` are ignored;
2. :math:`a_{k,ij} = \operatorname{std}_n\, \mathrm{out}[n, k, i, j]`,
   :math:`b_{ij} = \operatorname{std}\, \mathrm{inp}[:,\, i s : i s + k_h,\, j s : j s + k_w,\, :]`
   — the row window slices the **channel** axis and the column window the row axis, all columns
   kept (quirk 1); an empty slice is NaN and its position is skipped (for :math:`C_{in} = 3` and
   a 3×3 stride-1 conv only output rows 0–2 count: 96 of 1,024 positions at 32×32);
3. :math:`R_k = \operatorname{mean}|W_k| \sum_{ij\ \mathrm{valid}} a_{k,ij} / b_{ij}` —
   :math:`\sigma_{out}/\sigma_{in}`, the **inverse** of the README's ratio (quirk 2).

Both end with per-layer min-max normalisation, :math:`R \leftarrow (R - \min R)/(\max R -
\min R)` (``normalize="minmax"``; ``None`` skips it). When all scores are equal it returns zeros
(the released code divides 0 by 0), so ties are broken by index downstream.

**Which one made the published tables.** The paper's Tables 2 and 3 were presumably produced by
the released code (the abstract says all code and parameters are in the repository), so only
``"code_compat"`` is expected to reproduce their ranks; ``"paper"`` implements the formula as
written and its results are unvalidated against the paper's tables.

Statistics are sums over the batch, so :mod:`memjax.pruning.calibration` accumulates them over
chunks of a large calibration batch with the same functions (:func:`beta_rank_statistics`,
:func:`beta_rank_from_statistics`); :func:`beta_rank_scores` is one chunk.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.pruning import beta_rank_scores
    >>> kx, kw = jax.random.split(jax.random.key(0))
    >>> x = jax.random.normal(kx, (16, 8, 8, 3))                        # NHWC
    >>> kernel = jax.random.normal(kw, (3, 3, 3, 4))                    # HWIO
    >>> y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
    ...                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))
    >>> s = beta_rank_scores(kernel, x, y, stride=1, padding="SAME", layout="NHWC")
    >>> s.shape, round(float(s.min()), 6), round(float(s.max()), 6)
    ((4,), 0.0, 1.0)
    >>> c = beta_rank_scores(kernel, x, y, stride=None, padding=None, layout="NHWC",
    ...                      mode="code_compat")
    >>> c.shape
    (4,)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_array, check_choice

__all__ = [
    "BetaRankStatistics",
    "beta_rank_from_statistics",
    "beta_rank_scores",
    "beta_rank_statistics",
    "kernel_hwio",
    "minmax",
    "to_nhwc",
]

LAYOUTS = ("NHWC", "NCHW")


def to_nhwc(x, layout: str) -> jax.Array:
    """``x`` in ``layout`` (``"NHWC"`` or ``"NCHW"``) as NHWC."""
    check_choice("layout", layout, LAYOUTS)
    return jnp.asarray(x) if layout == "NHWC" else jnp.transpose(jnp.asarray(x), (0, 2, 3, 1))


def kernel_hwio(kernel, layout: str) -> jax.Array:
    """A conv kernel as HWIO: ``layout="NHWC"`` means HWIO already, ``"NCHW"`` means OIHW."""
    check_choice("layout", layout, LAYOUTS)
    check_array("kernel", kernel, ndim=4, floating=True)
    k = jnp.asarray(kernel)
    return k if layout == "NHWC" else jnp.transpose(k, (2, 3, 1, 0))


def _nhwc_shape(name, shape, layout) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{name}: expected a 4-d shape, got {shape}")
    return shape if layout == "NHWC" else (shape[0], shape[2], shape[3], shape[1])


def minmax(scores) -> jax.Array:
    """Per-layer min-max normalisation to ``[0, 1]``; equal scores give zeros (module doc)."""
    scores = jnp.asarray(scores)
    lo, hi = jnp.min(scores), jnp.max(scores)
    span = hi - lo
    return jnp.where(span > 0, (scores - lo) / jnp.where(span > 0, span, 1.0), 0.0)


def _pair(name, value) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return (value, value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return value
    raise ValueError(f"{name}: expected a positive int or a pair of them, got {value!r}")


def _pads(padding, spatial, window, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """``padding`` ("SAME", "VALID", p, (p_h, p_w), ((lo, hi), (lo, hi))) as explicit pairs."""
    if isinstance(padding, str):
        check_choice("padding", padding, ("SAME", "VALID"))
        return tuple(jax.lax.padtype_to_pads(spatial, window, stride, padding))
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if ok(padding):
        return ((padding, padding), (padding, padding))
    if isinstance(padding, tuple) and len(padding) == 2:
        if all(ok(v) for v in padding):
            return ((padding[0],) * 2, (padding[1],) * 2)
        if all(isinstance(v, tuple) and len(v) == 2 and all(map(ok, v)) for v in padding):
            return padding
    raise ValueError(
        "padding: expected 'SAME', 'VALID', a non-negative int, a pair of them or "
        f"((lo_h, hi_h), (lo_w, hi_w)), got {padding!r}"
    )


def _window_matrix(n_out, n_in, size, stride, dilation, offset=0) -> np.ndarray:
    """``M[i, h] = #{u < size : h = i*stride + u*dilation + offset}`` (0/1 for dilation >= 1),
    ignoring entries outside ``[0, n_in)`` (the code's truncated slices)."""
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        for u in range(size):
            h = i * stride + u * dilation + offset
            if 0 <= h < n_in:
                m[i, h] += 1.0
    return m


class BetaRankStatistics(NamedTuple):
    """Sums over a batch behind the Beta-Rank deviations (shifted for accuracy).

    ``count``: samples; ``in_sum``/``in_sq``: the shifted input's sum and sum of squares over the
    batch (paper: per padded cell ``(H_p, W_p, C_in)``; code_compat: per ``(C_in, H_in)``, summed
    over columns too); ``in_shift``: the scalar shift; ``out_sum``/``out_sq``/``out_shift``: the
    same per conv output cell ``(H', W', C_out)``.
    """

    count: jax.Array
    in_sum: jax.Array
    in_sq: jax.Array
    in_shift: jax.Array
    out_sum: jax.Array
    out_sq: jax.Array
    out_shift: jax.Array


def _geometry(kernel, x, y, stride, padding, dilation, mode):
    """Checks shared by both modes; returns ``(kh, kw, groups, stride, dilation, pads)``."""
    kh, kw, cg, c_out = kernel.shape
    n, h, w, c_in = x.shape
    check_array("conv_output", y, shape=(n, None, None, c_out))
    if mode == "code_compat":
        if y.shape[2] == 0 or w // y.shape[2] < 1:
            raise ValueError(f"conv_output: width {y.shape[2]} does not fit input width {w}")
        return kh, kw, 1, (w // y.shape[2],) * 2, (1, 1), ((0, 0), (0, 0))
    if c_in % cg:
        raise ValueError(f"kernel: input axis {cg} does not divide conv_input's {c_in} channels")
    groups = c_in // cg
    if c_out % groups:
        raise ValueError(f"kernel: {c_out} filters are not a multiple of the {groups} groups")
    stride = _pair("stride", stride)
    dilation = _pair("dilation", dilation)
    window = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    pads = _pads(padding, (h, w), window, stride)
    want = tuple(
        (size + lo + hi - win) // s + 1
        for size, (lo, hi), win, s in zip((h, w), pads, window, stride)
    )
    if tuple(y.shape[1:3]) != want:
        raise ValueError(
            f"conv_output: spatial shape {tuple(y.shape[1:3])} does not match the "
            f"convolution of conv_input {(h, w)} (expected {want})"
        )
    return kh, kw, groups, stride, dilation, pads


def beta_rank_statistics(
    kernel,
    conv_input,
    conv_output,
    *,
    stride,
    padding,
    layout,
    mode="paper",
    dilation=1,
    shift=None,
) -> BetaRankStatistics:
    """The batch sums of one chunk (module doc); add two chunks' sums leafwise to merge them
    (pass the first chunk's ``(in_shift, out_shift)`` as ``shift`` to later chunks)."""
    check_choice("mode", mode, ("paper", "code_compat"))
    k = kernel_hwio(kernel, layout)
    check_array("conv_input", conv_input, ndim=4, floating=True)
    check_array("conv_output", conv_output, ndim=4, floating=True)
    x, y = to_nhwc(conv_input, layout), to_nhwc(conv_output, layout)
    if x.shape[0] < 1:
        raise ValueError("conv_input: the calibration batch is empty")
    _, _, _, _, _, pads = _geometry(k, x, y, stride, padding, dilation, mode)
    return _statistics(x, y, shift, pads=pads, mode=mode)


@functools.partial(jax.jit, static_argnames=("pads", "mode"))
def _statistics(x, y, shift, *, pads, mode) -> BetaRankStatistics:
    if shift is None:
        in_shift, out_shift = jnp.mean(x), jnp.mean(y, 0)
    else:
        in_shift, out_shift = shift
    xc = x - in_shift
    if mode == "paper":
        xc = jnp.pad(xc, ((0, 0), *pads, (0, 0)), constant_values=-in_shift)
        in_sum, in_sq = jnp.sum(xc, 0), jnp.sum(jnp.square(xc), 0)
    else:  # per (channel, row), summed over samples and columns: (C_in, H_in)
        in_sum = jnp.transpose(jnp.sum(xc, (0, 2)))
        in_sq = jnp.transpose(jnp.sum(jnp.square(xc), (0, 2)))
    yc = y - out_shift[None]
    return BetaRankStatistics(
        jnp.asarray(x.shape[0], jnp.float32),
        in_sum,
        in_sq,
        in_shift,
        jnp.sum(yc, 0),
        jnp.sum(jnp.square(yc), 0),
        out_shift,
    )


def _mean_var(total, total_sq, count):
    mean = total / count
    return mean, jnp.maximum(total_sq / count - jnp.square(mean), 0.0)


def beta_rank_from_statistics(
    stats: BetaRankStatistics,
    kernel,
    *,
    conv_input_shape,
    conv_output_shape,
    stride,
    padding,
    layout,
    mode="paper",
    reduce="sum",
    normalize="minmax",
    dilation=1,
) -> jax.Array:
    """Scores ``(C_out,)`` from accumulated :class:`BetaRankStatistics` (module doc).

    ``conv_input_shape``/``conv_output_shape``: one chunk's shapes in ``layout`` (only the
    non-batch sizes are used)."""
    check_choice("mode", mode, ("paper", "code_compat"))
    check_choice("reduce", reduce, ("sum", "pooled"))
    check_choice("normalize", normalize, ("minmax", None))
    if mode == "code_compat" and reduce != "sum":
        raise ValueError(
            "reduce: code_compat sums over valid positions as the released code "
            f"does; got {reduce!r}"
        )
    k = kernel_hwio(kernel, layout)
    x_shape = jax.ShapeDtypeStruct(
        _nhwc_shape("conv_input_shape", conv_input_shape, layout), jnp.float32
    )
    y_shape = jax.ShapeDtypeStruct(
        _nhwc_shape("conv_output_shape", conv_output_shape, layout), jnp.float32
    )
    geometry = _geometry(k, x_shape, y_shape, stride, padding, dilation, mode)
    return _finalize(
        stats,
        k,
        geometry=geometry[:5],
        out_shape=y_shape.shape,
        in_shape=x_shape.shape,
        mode=mode,
        reduce=reduce,
        normalize=normalize,
    )


@functools.partial(
    jax.jit, static_argnames=("geometry", "out_shape", "in_shape", "mode", "reduce", "normalize")
)
def _finalize(stats, k, *, geometry, out_shape, in_shape, mode, reduce, normalize):
    kh, kw, groups, (sh, sw), (dh, dw) = geometry
    n = stats.count
    _, h_out, w_out, c_out = out_shape
    _, out_var = _mean_var(stats.out_sum, stats.out_sq, n)
    sigma_out = jnp.sqrt(out_var)  # (H', W', C_out)
    weight = jnp.mean(jnp.abs(k), axis=(0, 1, 2))
    if mode == "code_compat":
        _, h_in, w_in, c_in = in_shape
        rows = jnp.asarray(_window_matrix(h_out, c_in, kh, sh, 1))  # row i -> channel window
        cols = jnp.asarray(_window_matrix(w_out, h_in, kw, sh, 1))  # column j -> row window
        total = rows @ stats.in_sum @ cols.T
        total_sq = rows @ stats.in_sq @ cols.T
        cells = jnp.outer(rows.sum(1), cols.sum(1)) * (w_in * n)
        valid = cells > 0
        cells = jnp.where(valid, cells, 1.0)
        _, in_var = _mean_var(total, total_sq, cells)
        b = jnp.sqrt(in_var)[:, :, None]
        ratio = jnp.where(valid[:, :, None], sigma_out / b, 0.0)
        beta = jnp.sum(ratio, (0, 1))
    else:
        hp, wp, c_in = stats.in_sum.shape
        rows = jnp.asarray(_window_matrix(h_out, hp, kh, sh, dh))
        cols = jnp.asarray(_window_matrix(w_out, wp, kw, sw, dw))
        cg = c_in // groups

        def patches(a):
            a = jnp.sum(jnp.reshape(a, (hp, wp, groups, cg)), -1)
            return jnp.einsum("ih,hwg,jw->ijg", rows, a, cols)

        cells = n * kh * kw * cg
        in_mean, in_var = _mean_var(patches(stats.in_sum), patches(stats.in_sq), cells)
        per_group = c_out // groups
        if reduce == "sum":
            sigma_in = jnp.repeat(jnp.sqrt(in_var), per_group, axis=-1)  # (H', W', C_out)
            ok = (sigma_out > 0) & (sigma_in > 0)
            beta = jnp.sum(jnp.where(ok, sigma_in / jnp.where(ok, sigma_out, 1.0), 0.0), (0, 1))
        else:  # total variance = mean of the variances + variance of the means (equal counts)
            pooled_in = jnp.mean(in_var, (0, 1)) + jnp.var(in_mean, axis=(0, 1))
            out_mean = stats.out_sum / n + stats.out_shift
            pooled_out = jnp.mean(out_var, (0, 1)) + jnp.var(out_mean, axis=(0, 1))
            s_in = jnp.repeat(jnp.sqrt(pooled_in), per_group)
            s_out = jnp.sqrt(pooled_out)
            ok = (s_out > 0) & (s_in > 0)
            beta = jnp.where(ok, s_in / jnp.where(ok, s_out, 1.0), 0.0)
    scores = weight * beta
    return minmax(scores) if normalize == "minmax" else scores


def beta_rank_scores(
    kernel,
    conv_input,
    conv_output,
    *,
    stride,
    padding,
    layout,
    mode="paper",
    reduce="sum",
    normalize="minmax",
    dilation=1,
) -> jax.Array:
    """Beta-Rank scores ``(C_out,)`` of a convolution's filters (module doc).

    Args:
        kernel: the conv kernel, HWIO for ``layout="NHWC"``, OIHW for ``"NCHW"``.
        conv_input: the conv's input over a calibration batch, ``(N, H, W, C_in)`` (NHWC).
        conv_output: its raw output (before BatchNorm), ``(N, H', W', C_out)``.
        stride: the conv's stride (``s`` or ``(s_h, s_w)``); ignored by ``code_compat``
            (``None`` allowed there).
        padding: the conv's padding as :class:`memjax.nn.Conv2D` takes it; ignored by
            ``code_compat``.
        layout: ``"NHWC"`` or ``"NCHW"`` (activations and kernel).
        mode: ``"paper"`` (σ_in/σ_out over true receptive fields) or ``"code_compat"``.
        reduce: ``"sum"`` of per-position ratios or one ``"pooled"`` ratio (paper mode).
        normalize: ``"minmax"`` per layer, or ``None``.
        dilation: the conv's kernel dilation (paper mode).
    """
    stats = beta_rank_statistics(
        kernel,
        conv_input,
        conv_output,
        stride=stride,
        padding=padding,
        layout=layout,
        mode=mode,
        dilation=dilation,
    )
    return beta_rank_from_statistics(
        stats,
        kernel,
        conv_input_shape=tuple(conv_input.shape),
        conv_output_shape=tuple(conv_output.shape),
        stride=stride,
        padding=padding,
        layout=layout,
        mode=mode,
        reduce=reduce,
        normalize=normalize,
        dilation=dilation,
    )
