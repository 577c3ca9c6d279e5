"""Beta-Rank scores against slow NumPy references (explicit loops over receptive fields)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.pruning import beta_rank_scores, minmax

RNG = np.random.default_rng(0)


# -- the released code, transcribed (rank_generation.py::std_filters), NCHW / OIHW ---------------
def std_filters_reference(inp, out, filters, *, count_valid=False):
    stride = int(inp.shape[3] / out.shape[3])
    filters_rank, valid = [], 0
    for out_ch in range(out.shape[1]):
        acc = np.zeros(filters.shape)
        for out_dim1 in range(out.shape[2]):
            for out_dim2 in range(out.shape[3]):
                a = np.std(out[:, out_ch, out_dim1, out_dim2], axis=0)
                block = inp[
                    :,
                    out_dim1 * stride : out_dim1 * stride + filters.shape[2],
                    out_dim2 * stride : out_dim2 * stride + filters.shape[3],
                    :,
                ]
                b = np.std(block) if block.size else np.nan
                if str(b) != "nan":
                    acc += np.abs(filters[out_ch] * a / b)
                    valid += out_ch == 0
        filters_rank.append(np.mean(acc))
    filters_rank = np.array(filters_rank)
    return (filters_rank, valid) if count_valid else filters_rank


# -- the README formula by brute force: true receptive fields, zero padding, groups ------------
def paper_reference(x, y, kernel, *, stride, pads, dilation=(1, 1), reduce="sum"):
    """x (N,H,W,C) NHWC, y (N,H',W',C_out), kernel HWIO; pads ((lo,hi),(lo,hi))."""
    kh, kw, cg, c_out = kernel.shape
    groups = x.shape[3] // cg
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    _, h_out, w_out, _ = y.shape
    weight = np.abs(kernel).mean(axis=(0, 1, 2))
    scores = np.zeros(c_out)
    pooled_patches = [[] for _ in range(groups)]
    for k in range(c_out):
        g = k // (c_out // groups)
        total = 0.0
        for i in range(h_out):
            for j in range(w_out):
                rows = [i * stride[0] + u * dilation[0] for u in range(kh)]
                cols = [j * stride[1] + v * dilation[1] for v in range(kw)]
                patch = xp[:, rows][:, :, cols][..., g * cg : (g + 1) * cg]
                if k % (c_out // groups) == 0:
                    pooled_patches[g].append(patch.ravel())
                s_in, s_out = patch.std(), y[:, i, j, k].std()
                if s_in > 0 and s_out > 0:
                    total += s_in / s_out
        scores[k] = total
    if reduce == "pooled":
        for k in range(c_out):
            g = k // (c_out // groups)
            s_in = np.concatenate(pooled_patches[g]).std()
            scores[k] = s_in / y[..., k].std()
    return weight * scores


def conv(x, kernel, stride, padding, dilation=(1, 1), groups=1):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        stride,
        padding,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def relative(a, b):
    return np.max(np.abs(np.asarray(a) - b) / (np.abs(b) + 1e-12))


@pytest.mark.parametrize(
    "shape, kernel_shape, stride, padding, dilation, groups",
    [
        ((6, 9, 9, 3), (3, 3, 3, 5), (1, 1), "SAME", (1, 1), 1),
        ((5, 10, 10, 4), (3, 3, 4, 6), (2, 2), "SAME", (1, 1), 1),  # asymmetric SAME pads
        ((5, 9, 8, 2), (3, 2, 2, 4), (1, 2), ((1, 2), (0, 1)), (1, 1), 1),
        ((4, 12, 12, 2), (3, 3, 2, 3), (1, 1), ((2, 2), (2, 2)), (2, 2), 1),  # dilation
        ((4, 8, 8, 4), (3, 3, 2, 6), (1, 1), "SAME", (1, 1), 2),  # two groups
        ((4, 8, 8, 3), (3, 3, 1, 6), (1, 1), "SAME", (1, 1), 3),  # depthwise, multiplier 2
        ((3, 14, 14, 2), (5, 5, 2, 4), (1, 1), "VALID", (1, 1), 1),
    ],
)
@pytest.mark.parametrize("reduce", ["sum", "pooled"])
def test_paper_mode_equals_brute_force_patch_std(
    shape, kernel_shape, stride, padding, dilation, groups, reduce
):
    x = RNG.normal(size=shape).astype(np.float32) + 0.5
    kernel = RNG.normal(size=kernel_shape).astype(np.float32)
    y = np.asarray(conv(jnp.asarray(x), jnp.asarray(kernel), stride, padding, dilation, groups))
    window = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel_shape[:2]))
    pads = (
        padding
        if not isinstance(padding, str)
        else jax.lax.padtype_to_pads(shape[1:3], window, stride, padding)
    )
    want = paper_reference(
        x.astype(np.float64),
        y.astype(np.float64),
        kernel,
        stride=stride,
        pads=tuple(map(tuple, pads)),
        dilation=dilation,
        reduce=reduce,
    )
    got = beta_rank_scores(
        kernel,
        x,
        y,
        stride=stride,
        padding=padding,
        layout="NHWC",
        dilation=dilation,
        reduce=reduce,
        normalize=None,
    )
    assert relative(got, want) < 2e-4
    normalised = beta_rank_scores(
        kernel,
        x,
        y,
        stride=stride,
        padding=padding,
        layout="NHWC",
        dilation=dilation,
        reduce=reduce,
    )
    np.testing.assert_allclose(normalised, (want - want.min()) / np.ptp(want), atol=2e-4)


def test_paper_mode_counts_padded_zeros_and_skips_constant_positions():
    # an input that is zero everywhere but one pixel: padded borders see only zeros
    x = np.zeros((4, 5, 5, 1), np.float32)
    x[:, 2, 2, 0] = np.arange(4, dtype=np.float32)
    kernel = np.ones((3, 3, 1, 2), np.float32)
    kernel[..., 1] *= 2
    y = np.asarray(conv(jnp.asarray(x), jnp.asarray(kernel), (1, 1), "SAME"))
    want = paper_reference(
        x.astype(np.float64), y.astype(np.float64), kernel, stride=(1, 1), pads=((1, 1), (1, 1))
    )
    got = beta_rank_scores(kernel, x, y, stride=1, padding=1, layout="NHWC", normalize=None)
    assert want[0] > 0 and relative(got, want) < 1e-5  # 9 positions see the pixel, 16 skipped


@pytest.mark.parametrize(
    "shape, kernel_shape, stride, padding",
    [
        ((8, 3, 32, 32), (5, 3, 3, 3), 1, 1),  # C_in = 3: 96 of 1,024 positions count
        ((6, 16, 16, 16), (4, 16, 3, 3), 2, 1),  # stride int(16 / 8) = 2
        ((5, 6, 14, 14), (3, 6, 5, 5), 1, 0),  # VALID: int(14 / 10) = 1, padding ignored
    ],
)
def test_code_compat_equals_numpy_transcription(shape, kernel_shape, stride, padding):
    x = RNG.normal(size=shape).astype(np.float32)  # NCHW, as the released code
    kernel = RNG.normal(size=kernel_shape).astype(np.float32)  # OIHW
    y = jax.lax.conv_general_dilated(
        jnp.asarray(x), jnp.asarray(kernel), (stride,) * 2, [(padding, padding)] * 2
    )
    y = np.asarray(y)
    want, valid = std_filters_reference(
        x.astype(np.float64), y.astype(np.float64), kernel.astype(np.float64), count_valid=True
    )
    if shape[1] == 3:
        assert valid == 96 and y.shape[2] * y.shape[3] == 1024
    got = beta_rank_scores(
        kernel, x, y, stride=None, padding=None, layout="NCHW", mode="code_compat", normalize=None
    )
    assert relative(got, want) < 1e-4
    nhwc = beta_rank_scores(
        np.transpose(kernel, (2, 3, 1, 0)),
        np.transpose(x, (0, 2, 3, 1)),
        np.transpose(y, (0, 2, 3, 1)),
        stride=None,
        padding=None,
        layout="NHWC",
        mode="code_compat",
    )
    np.testing.assert_allclose(nhwc, (want - want.min()) / np.ptp(want), atol=1e-4)


def test_code_compat_is_the_inverse_ratio_and_not_the_paper_score():
    # one filter scaled up: sigma_out grows, so code_compat ranks it higher relative to paper
    x = RNG.normal(size=(16, 3, 8, 8)).astype(np.float32)
    kernel = RNG.normal(size=(3, 3, 3, 3)).astype(np.float32)
    y = RNG.normal(size=(16, 3, 8, 8)).astype(np.float32)
    y2 = y.copy()
    y2[:, 0] *= 4.0
    code = [
        beta_rank_scores(
            kernel,
            x,
            out,
            stride=None,
            padding=None,
            layout="NCHW",
            mode="code_compat",
            normalize=None,
        )
        for out in (y, y2)
    ]
    paper = [
        beta_rank_scores(kernel, x, out, stride=1, padding=1, layout="NCHW", normalize=None)
        for out in (y, y2)
    ]
    np.testing.assert_allclose(code[1][0] / code[0][0], 4.0, rtol=1e-5)
    np.testing.assert_allclose(paper[1][0] / paper[0][0], 0.25, rtol=1e-5)
    np.testing.assert_allclose(code[1][1:], code[0][1:], rtol=1e-6)


def test_minmax_of_constant_scores_is_zeros():
    np.testing.assert_array_equal(minmax(jnp.full(5, 3.0)), np.zeros(5))
    np.testing.assert_allclose(minmax(jnp.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])


def test_layouts_agree_in_paper_mode():
    x = RNG.normal(size=(6, 7, 7, 3)).astype(np.float32)
    kernel = RNG.normal(size=(3, 3, 3, 4)).astype(np.float32)
    y = np.asarray(conv(jnp.asarray(x), jnp.asarray(kernel), (2, 2), "SAME"))
    a = beta_rank_scores(kernel, x, y, stride=2, padding="SAME", layout="NHWC")
    b = beta_rank_scores(
        np.transpose(kernel, (3, 2, 0, 1)),
        np.transpose(x, (0, 3, 1, 2)),
        np.transpose(y, (0, 3, 1, 2)),
        stride=2,
        padding="SAME",
        layout="NCHW",
    )
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_input_names_the_argument():
    x = jnp.ones((4, 8, 8, 3))
    kernel = jnp.ones((3, 3, 3, 2))
    y = jnp.ones((4, 8, 8, 2))
    with pytest.raises(ValueError, match="conv_output"):
        beta_rank_scores(kernel, x, jnp.ones((4, 7, 8, 2)), stride=1, padding="SAME", layout="NHWC")
    with pytest.raises(ValueError, match="conv_output"):
        beta_rank_scores(kernel, x, jnp.ones((3, 8, 8, 2)), stride=1, padding="SAME", layout="NHWC")
    with pytest.raises(ValueError, match="kernel"):
        beta_rank_scores(jnp.ones((3, 3, 2, 2)), x, y, stride=1, padding="SAME", layout="NHWC")
    with pytest.raises(ValueError, match="mode"):
        beta_rank_scores(kernel, x, y, stride=1, padding="SAME", layout="NHWC", mode="readme")
    with pytest.raises(ValueError, match="layout"):
        beta_rank_scores(kernel, x, y, stride=1, padding="SAME", layout="HWC")
    with pytest.raises(ValueError, match="reduce"):
        beta_rank_scores(
            kernel,
            x,
            y,
            stride=None,
            padding=None,
            layout="NHWC",
            mode="code_compat",
            reduce="pooled",
        )
    with pytest.raises(ValueError, match="padding"):
        beta_rank_scores(kernel, x, y, stride=1, padding="FULL", layout="NHWC")
    with pytest.raises(ValueError, match="stride"):
        beta_rank_scores(kernel, x, y, stride=0, padding="SAME", layout="NHWC")
    with pytest.raises(ValueError, match="conv_input"):
        beta_rank_scores(kernel, jnp.ones((8, 8, 3)), y, stride=1, padding="SAME", layout="NHWC")
