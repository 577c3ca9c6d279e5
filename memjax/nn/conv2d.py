r"""A 2-D convolution over NHWC batches with an HWIO kernel.

For input :math:`x \in \mathbb{R}^{N \times H \times W \times C_{in}}`, kernel
:math:`K \in \mathbb{R}^{k_h \times k_w \times (C_{in}/G) \times C_{out}}`, stride :math:`s`,
dilation :math:`d`, zero padding and :math:`G` groups,

.. math::

    y[n, i, j, o] = b[o] + \sum_{u < k_h} \sum_{v < k_w} \sum_{c < C_{in}/G}
        K[u, v, c, o]\; \tilde x[n,\; s_h i + d_h u,\; s_w j + d_w v,\; g(o)\,C_{in}/G + c],

where :math:`\tilde x` is the padded input and :math:`g(o) = \lfloor o / (C_{out}/G) \rfloor` the
group of output channel :math:`o` (a cross-correlation, as in every deep-learning library). It is
``jax.lax.conv_general_dilated`` with ``dimension_numbers=("NHWC", "HWIO", "NHWC")``.

**Padding**: ``"VALID"`` (none); ``"SAME"`` (output size :math:`\lceil H / s_h \rceil`, the odd
extra row/column of padding at the high end: the TensorFlow / ``lax`` convention); an ``int``
``p`` (``p`` zeros on every side); a pair ``(p_h, p_w)``; or explicit
``((lo_h, hi_h), (lo_w, hi_w))``. ``stride`` and ``dilation`` are an ``int`` or a pair.

**Initialisation**: the kernel by name as :func:`memjax.nn.dense.init_kernel` with
``fan_in = k_h k_w C_{in} / G`` (``"torch"`` gives PyTorch's ``nn.Conv2d`` draw, bias included);
the bias is otherwise zero.

**Implementation** (``impl``; the same :math:`y` up to float rounding, the same params):
``"xla"`` (the default) is the single ``conv_general_dilated`` above. The other options but
``"dot"`` compute the convolution with the kernel zero-padded to :math:`C' \ge C_{out}` output
channels (:func:`computed_width`) and keep the first :math:`C_{out}` outputs: each output channel
is its own filter's sum, so the zero filters touch no kept output and :math:`y` is unchanged; only
the kernel XLA picks changes. XLA:CPU's (jax 0.10) convolution time depends on the *width*, not
only the FLOPs, and the padded conv is often faster despite the padded work
(``experiments/benchmarks/pruning.md``, batch 64, CPU time):

* ``"wide"``: :math:`C' = 17` (:data:`WIDE_CHANNELS`) for a conv with at most 16 channels on both
  sides, which XLA:CPU sends to the Eigen kernel while one with more goes to a YNNPACK fusion
  (0.44–1.01 of the CPU time on narrow pruned convs when :math:`C_{in}` is even or 1; an odd
  :math:`C_{in} > 1` runs 1.2–3.7× *slower* wide).
* ``"pad8"``, ``"pad16"``: :math:`C'` = :math:`C_{out}` rounded up to a multiple of 8 or 16.
* ``"dot"``: no padding of channels; the convolution as one matrix product, the
  :math:`k_h k_w` shifted (strided, dilated) slices of the padded input stacked on the channel
  axis in the kernel's :math:`(u, v, c)` order times the kernel reshaped to
  :math:`(k_h k_w C_{in}/G) \times C_{out}` — the sum above, term by term (``groups=1``).
* ``"auto"``: ``"wide"`` where :func:`wide_pays` (:math:`\max(C_{in}, C_{out}) \le 16`,
  :math:`C_{in}` even or 1); for a conv with more than 16 channels on a side and
  :math:`C_{out}` in 9–15, 25–31, 41–47 or 49–63 the next multiple of 16 (a measured rule,
  4×4–32×32: 64→25–28 cost 1.1–1.7× 64→32 and 64→52–60 1.3–1.5× 64→64, 12→25–28 and 6→25
  1.2–1.4× their 32-wide forms, while 17–24 and 33–40 gain nothing padded and lose 5–24 %
  padded to 32 or 48); otherwise unpadded; and ``"dot"`` where the output has at most
  :data:`DOT_POSITIONS` = 4 positions per image (:math:`H' W' \le 4`): XLA:CPU sends such convs
  to a kernel that ran a 2×2 512→512 conv (VGG-16's last block at 32×32) in 1.3 s at batch 64,
  against 18 ms as ``"dot"`` (at 4×4 the two are even).

Groups are never padded (``"wide"``, ``"pad8"``, ``"pad16"`` and ``"dot"`` need ``groups=1``).
XLA's cost analysis counts the padded filters (and ``"dot"``'s padded taps), so count FLOPs with
``"xla"``. The choice is made from static shapes at trace time and does not depend on the backend,
so the padded options also run (padding for nothing) on GPU and TPU: use them for CPU inference,
and measure the whole network.

**Channel axes** (:mod:`memjax.nn.channels`): ``kernel`` ``out=3``, ``in_=2``; ``bias`` ``out=0``.
With ``groups > 1`` axis 2 holds the ``C_in / G`` inputs *of each group*, not the layer's input
channels, so ``kernel`` declares ``in_=None`` there (pruning an input channel of a grouped
convolution is a group-level decision).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn.conv2d import Conv2D
    >>> conv = Conv2D(3, 8, kernel_size=3, stride=2, padding="SAME")
    >>> params = conv.init_params(jax.random.key(0))
    >>> params["kernel"].shape
    (3, 3, 3, 8)
    >>> conv(params, jnp.ones((2, 9, 9, 3))).shape
    (2, 5, 5, 8)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes
from memjax.nn.dense import INITS, init_kernel

__all__ = ["DOT_POSITIONS", "IMPLS", "WIDE_CHANNELS", "Conv2D", "computed_width", "wide_pays"]

IMPLS = ("xla", "wide", "auto", "pad8", "pad16", "dot")
"""The ``impl`` options of :class:`Conv2D` (module doc)."""

DOT_POSITIONS = 4
"""``impl="auto"`` computes a conv whose output has at most this many positions per image
(:math:`H' W'`) as ``"dot"`` (module doc)."""

WIDE_CHANNELS = 17
"""Output channels ``impl="wide"`` (and ``"auto"`` where :func:`wide_pays`) pads a narrow
convolution's kernel to (module doc)."""


def wide_pays(in_channels: int, out_channels: int, groups: int = 1) -> bool:
    """Whether ``impl="auto"`` computes this convolution ``"wide"`` (module doc).

    Example:
        >>> wide_pays(16, 6), wide_pays(1, 16), wide_pays(3, 16), wide_pays(32, 12)
        (True, True, False, False)
    """
    return (
        groups == 1
        and max(in_channels, out_channels) < WIDE_CHANNELS
        and (in_channels == 1 or in_channels % 2 == 0)
    )


def _round_up(c: int, m: int) -> int:
    return -(-c // m) * m


def computed_width(in_channels: int, out_channels: int, impl: str, groups: int = 1) -> int:
    """The output channels a :class:`Conv2D` with this ``impl`` computes before keeping the
    first ``out_channels`` (module doc): ``out_channels`` itself where nothing is padded.

    Example:
        >>> [computed_width(16, 6, i) for i in ("xla", "wide", "auto", "pad8", "pad16")]
        [6, 17, 17, 8, 16]
        >>> [computed_width(64, c, "auto") for c in (19, 25, 36, 40, 44, 52, 56, 64)]
        [19, 32, 36, 40, 48, 64, 64, 64]
    """
    check_choice("impl", impl, IMPLS)
    if groups != 1 or impl in ("xla", "dot"):
        return out_channels
    narrow = max(in_channels, out_channels) < WIDE_CHANNELS
    if impl == "wide":
        return WIDE_CHANNELS if narrow else out_channels
    if impl in ("pad8", "pad16"):
        return _round_up(out_channels, 8 if impl == "pad8" else 16)
    if wide_pays(in_channels, out_channels, groups):
        return WIDE_CHANNELS
    slow = out_channels % 16 > 8 or out_channels > 48  # measured for 8 < C_out <= 64
    if narrow or not 8 < out_channels <= 64 or not slow:
        return out_channels
    return _round_up(out_channels, 16)


def _pair(name: str, value) -> tuple[int, int]:
    if isinstance(value, tuple) and len(value) == 2:
        for v in value:
            check_positive_int(name, v)
        return value
    check_positive_int(name, value)
    return (value, value)


def _is_nonneg_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _padding(value) -> str | tuple[tuple[int, int], tuple[int, int]]:
    """Normalise ``padding`` to ``"SAME"``, ``"VALID"`` or ``((lo_h, hi_h), (lo_w, hi_w))``."""
    if isinstance(value, str):
        check_choice("padding", value, ("SAME", "VALID"))
        return value
    if _is_nonneg_int(value):
        return ((value, value), (value, value))
    if isinstance(value, tuple) and len(value) == 2:
        if all(_is_nonneg_int(v) for v in value):
            return ((value[0], value[0]), (value[1], value[1]))
        if all(isinstance(v, tuple) and len(v) == 2 and all(map(_is_nonneg_int, v)) for v in value):
            return value
    raise ValueError(
        "padding: expected 'SAME', 'VALID', a non-negative int, a pair of them or "
        f"((lo_h, hi_h), (lo_w, hi_w)), got {value!r}"
    )


@spec
class Conv2D:
    """2-D convolution of NHWC batches by an HWIO kernel (module doc).

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels (filters) ``C_out``.
        kernel_size: ``k`` or ``(k_h, k_w)``.
        stride: ``s`` or ``(s_h, s_w)``.
        padding: ``"SAME"``, ``"VALID"``, ``p``, ``(p_h, p_w)`` or ``((lo_h, hi_h), (lo_w, hi_w))``.
        dilation: kernel dilation ``d`` or ``(d_h, d_w)``.
        groups: feature groups ``G`` (dividing both channel counts; ``G = C_in`` is depthwise).
        use_bias: add a learnt bias per output channel.
        init: kernel initialisation, one of :data:`memjax.nn.dense.INITS`.
        dtype: dtype of the params.
        impl: how the convolution is computed, one of :data:`IMPLS` (module doc).
    """

    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    padding: str | int | tuple = "SAME"
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    use_bias: bool = True
    init: str = "lecun_normal"
    dtype: str = "float32"
    impl: str = "xla"

    def __post_init__(self):
        check_positive_int("in_channels", self.in_channels)
        check_positive_int("out_channels", self.out_channels)
        _pair("kernel_size", self.kernel_size)
        _pair("stride", self.stride)
        _pair("dilation", self.dilation)
        _padding(self.padding)
        check_positive_int("groups", self.groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups: {self.groups} must divide in_channels={self.in_channels} and "
                f"out_channels={self.out_channels}"
            )
        if not isinstance(self.use_bias, bool):
            raise TypeError(f"use_bias: expected a bool, got {self.use_bias!r}")
        check_choice("init", self.init, INITS)
        if not jnp.issubdtype(jnp.dtype(self.dtype), jnp.floating):
            raise TypeError(f"dtype: expected a floating dtype, got {self.dtype!r}")
        check_choice("impl", self.impl, IMPLS)
        if self.impl in ("wide", "pad8", "pad16", "dot") and self.groups != 1:
            raise ValueError(f"impl: {self.impl!r} needs groups=1, got groups={self.groups}")

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """HWIO: ``(k_h, k_w, C_in / G, C_out)``."""
        kh, kw = _pair("kernel_size", self.kernel_size)
        return (kh, kw, self.in_channels // self.groups, self.out_channels)

    @property
    def padding_pairs(self) -> str | tuple[tuple[int, int], tuple[int, int]]:
        """``padding`` as ``lax`` takes it: ``"SAME"``, ``"VALID"`` or ``((lo, hi), (lo, hi))``."""
        return _padding(self.padding)

    def init_params(self, key: jax.Array) -> dict:
        """``{"kernel": (k_h, k_w, C_in/G, C_out), "bias": (C_out,)}``."""
        k_w, k_b = jax.random.split(key)
        params = {"kernel": init_kernel(k_w, self.kernel_shape, self.init, self.dtype)}
        if self.use_bias:
            if self.init == "torch":
                bound = 1.0 / math.sqrt(math.prod(self.kernel_shape[:3]))
                shape = (self.out_channels,)
                params["bias"] = jax.random.uniform(k_b, shape, self.dtype, -bound, bound)
            else:
                params["bias"] = jnp.zeros((self.out_channels,), self.dtype)
        return params

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``kernel``: filters on axis 3, inputs on axis 2 (``None`` when grouped); ``bias``: 0."""
        axes = {"kernel": ChannelAxes(out=3, in_=2 if self.groups == 1 else None)}
        if self.use_bias:
            axes["bias"] = ChannelAxes(out=0)
        return axes

    def apply(self, params: dict, x) -> jax.Array:
        """``x (N, H, W, C_in) -> (N, H', W', C_out)``."""
        check_array("x", x, shape=(None, None, None, self.in_channels), floating=True)
        check_array("kernel", params["kernel"], shape=self.kernel_shape)
        dtype = jnp.result_type(x, params["kernel"])
        kernel = params["kernel"].astype(dtype)
        conv = functools.partial(
            jax.lax.conv_general_dilated,
            window_strides=_pair("stride", self.stride),
            padding=self.padding_pairs,
            rhs_dilation=_pair("dilation", self.dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.groups,
        )
        width = computed_width(self.in_channels, self.out_channels, self.impl, self.groups)
        x = x.astype(dtype)
        if self.impl == "dot" or (self.impl == "auto" and self._few_positions(x.shape)):
            y = self._as_dot(x, kernel)
        elif width > self.out_channels:
            pad = ((0, 0), (0, 0), (0, 0), (0, width - self.out_channels))
            y = conv(x, jnp.pad(kernel, pad))[..., : self.out_channels]
        else:
            y = conv(x, kernel)
        if self.use_bias:
            y = y + jnp.reshape(params["bias"], (1, 1, 1, self.out_channels))
        return y

    __call__ = apply

    def _pads_and_out(self, shape):
        """Explicit ``((lo, hi), (lo, hi))`` padding and the output size ``(H', W')``."""
        (kh, kw), (sh, sw) = _pair("kernel_size", self.kernel_size), _pair("stride", self.stride)
        dh, dw = _pair("dilation", self.dilation)
        span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
        pads = self.padding_pairs
        if isinstance(pads, str):
            pads = tuple(jax.lax.padtype_to_pads(shape[1:3], span, (sh, sw), pads))
        out = tuple(
            (n + lo + hi - k) // s + 1
            for n, (lo, hi), k, s in zip(shape[1:3], pads, span, (sh, sw))
        )
        return pads, out

    def _few_positions(self, shape) -> bool:
        _, (ho, wo) = self._pads_and_out(shape)
        return self.groups == 1 and ho * wo <= DOT_POSITIONS

    def _as_dot(self, x, kernel):
        """The conv as one product: the ``k_h k_w`` shifted, strided input slices stacked on the
        channel axis in the kernel's (u, v, c) order, times the kernel as a matrix."""
        (kh, kw), (sh, sw) = _pair("kernel_size", self.kernel_size), _pair("stride", self.stride)
        dh, dw = _pair("dilation", self.dilation)
        pads, (ho, wo) = self._pads_and_out(x.shape)
        xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
        n, c = x.shape[0], x.shape[3]
        cols = [
            jax.lax.slice(
                xp,
                (0, u * dh, v * dw, 0),
                (n, u * dh + (ho - 1) * sh + 1, v * dw + (wo - 1) * sw + 1, c),
                (1, sh, sw, 1),
            )
            for u in range(kh)
            for v in range(kw)
        ]
        cols = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
        y = cols.reshape(n * ho * wo, kh * kw * c) @ kernel.reshape(kh * kw * c, -1)
        return y.reshape(n, ho, wo, self.out_channels)
