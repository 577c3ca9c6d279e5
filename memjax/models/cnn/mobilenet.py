r"""MobileNetV1 (Howard et al. 2017, arXiv 1704.04861) over NHWC images, CIFAR style by default.

A 3×3 ``stem`` conv (stride ``stem_stride``, no bias) → BatchNorm → ReLU, then 13
depthwise-separable blocks (Howard et al., Fig. 3 and Table 1): a 3×3 **depthwise** conv
(``dw``, ``groups = C_in``, stride :math:`s`, no bias) → BatchNorm (``dw_bn``) → ReLU → a 1×1
**pointwise** conv (``pw``, no bias) → BatchNorm (``pw_bn``) → ReLU; global average pooling
and a dense ``fc``. A depthwise-separable block with :math:`C_{in}` inputs and
:math:`C_{out}` outputs on a :math:`D_F \times D_F` map costs
:math:`D_K^2 C_{in} D_F^2 + C_{in} C_{out} D_F^2` multiply-adds (their Eq. 5) against
:math:`D_K^2 C_{in} C_{out} D_F^2` for a full conv (Eq. 2).

**Width multiplier** :math:`\alpha` (their §3.3): every width :math:`c` of :data:`MOBILENET_V1`
becomes :math:`\max(1, \operatorname{round}(\alpha c))`. The paper's ImageNet network starts
with a stride-2 stem on 224×224 images (``stem_stride=2``); on 32×32 images (CIFAR,
Fashion-MNIST padded) the usual adaptation, kept as the default, uses a stride-1 stem, so the
four stride-2 blocks take the map from 32×32 to 2×2 before the pool. (Table 1 prints stride 2
for the last depthwise conv too; the released networks use 1, as here.)

**Channels.** The pointwise convs (and the stem) hold the network's *filters*; a depthwise conv
maps channel :math:`c` to channel :math:`c` (:class:`memjax.nn.Conv2D` declares its kernel
``ChannelAxes(out=3, in_=None)``), so removing filter :math:`c` of a pointwise conv also
removes channel :math:`c` of the next block's depthwise kernel and BatchNorm and the input
:math:`c` of the next pointwise conv; :func:`memjax.pruning.trace_groups` finds exactly that
group (its depthwise rule), and :meth:`MobileNetV1.pruned` rebuilds the spec from the surviving
widths.

Layers are ``stem``, ``blocks/<b>/dw``, ``blocks/<b>/pw`` and ``fc``; taps ``"<layer>:in"``,
``":out"`` (pre-BN) and ``":act"`` (after the ReLU).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import MobileNetV1
    >>> MobileNetV1(width_multiplier=0.125).widths[:4]
    (8, 16, 16, 32)
    >>> net = MobileNetV1(0.125, num_classes=3, in_channels=1, cfg=((64, 1), (128, 2)))
    >>> params, state = net.init_params(jax.random.key(0)), net.init_state()
    >>> logits, _ = jax.jit(net.apply, static_argnames="train")(
    ...     params, state, jnp.ones((2, 8, 8, 1)), train=True)
    >>> logits.shape, net.stem_out, net.widths
    ((2, 3), 4, (8, 16))
    >>> full = jax.eval_shape(MobileNetV1().init_params, jax.random.key(0))
    >>> sum(a.size for a in jax.tree_util.tree_leaves(full))          # 10 classes, α = 1
    3217226
"""

from __future__ import annotations

import jax

from memjax.core.checks import check_array, check_positive_int
from memjax.core.spec import spec
from memjax.core.taps import tap
from memjax.models.cnn.layers import (
    check_width_multiplier,
    check_widths,
    global_avg_pool,
    scaled_width,
    tapped,
    width,
)
from memjax.nn import BatchNorm, Conv2D, Dense

__all__ = ["MOBILENET_V1", "MobileNetV1"]

# (output width of the pointwise conv, stride of the depthwise conv) per block (Table 1)
MOBILENET_V1 = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
_STEM = 32


@spec
class MobileNetV1:
    """MobileNetV1 (module doc).

    Args:
        width_multiplier: :math:`\\alpha > 0` (widths ``round(α c)``, at least 1).
        num_classes: logits.
        in_channels: image channels.
        stem_stride: 1 (CIFAR-sized inputs) or 2 (the paper's ImageNet stem).
        cfg: ``(width, stride)`` per block before the multiplier (:data:`MOBILENET_V1`).
        stem_width: the stem's width after surgery (default ``round(α · 32)``).
        block_widths: each block's pointwise width after surgery (default from ``cfg``).
        bn_momentum: BatchNorm momentum (memjax convention: PyTorch's 0.1 is 0.9).
        init: kernel initialisation (:data:`memjax.nn.INITS`).
        dtype: dtype of the params.
    """

    width_multiplier: float = 1.0
    num_classes: int = 10
    in_channels: int = 3
    stem_stride: int = 1
    cfg: tuple = MOBILENET_V1
    stem_width: int | None = None
    block_widths: tuple | None = None
    bn_momentum: float = 0.9
    init: str = "he_normal"
    dtype: str = "float32"

    def __post_init__(self):
        check_width_multiplier(self.width_multiplier)
        for name in ("num_classes", "in_channels"):
            check_positive_int(name, getattr(self, name))
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride: expected 1 or 2, got {self.stem_stride!r}")
        ok = isinstance(self.cfg, tuple) and len(self.cfg) > 0
        ok = ok and all(isinstance(b, tuple) and len(b) == 2 and b[1] in (1, 2) for b in self.cfg)
        if not ok:
            raise ValueError(f"cfg: expected a tuple of (width, stride 1 or 2), got {self.cfg!r}")
        for c, _ in self.cfg:
            check_positive_int("cfg", c)
        if self.stem_width is not None:
            check_positive_int("stem_width", self.stem_width)
        check_widths("block_widths", self.block_widths, len(self.cfg))

    @property
    def stem_out(self) -> int:
        """The stem's width."""
        return self.stem_width or scaled_width(_STEM, self.width_multiplier)

    @property
    def widths(self) -> tuple[int, ...]:
        """Each block's pointwise (output) width."""
        if self.block_widths is not None:
            return self.block_widths
        return tuple(scaled_width(c, self.width_multiplier) for c, _ in self.cfg)

    @property
    def num_blocks(self) -> int:
        """Depthwise-separable blocks."""
        return len(self.cfg)

    def block_in(self, b: int) -> int:
        """Input width of block ``b`` (= its depthwise width)."""
        return self.stem_out if b == 0 else self.widths[b - 1]

    def _bn(self, n: int) -> BatchNorm:
        return BatchNorm(n, momentum=self.bn_momentum, dtype=self.dtype)

    def _stem(self) -> Conv2D:
        return Conv2D(
            self.in_channels,
            self.stem_out,
            3,
            stride=self.stem_stride,
            padding=1,
            use_bias=False,
            init=self.init,
            dtype=self.dtype,
        )

    def _block(self, b: int) -> tuple[Conv2D, Conv2D]:
        c_in, c_out, stride = self.block_in(b), self.widths[b], self.cfg[b][1]
        dw = Conv2D(
            c_in,
            c_in,
            3,
            stride=stride,
            padding=1,
            groups=c_in,
            use_bias=False,
            init=self.init,
            dtype=self.dtype,
        )
        pw = Conv2D(c_in, c_out, 1, use_bias=False, init=self.init, dtype=self.dtype)
        return dw, pw

    def _fc(self) -> Dense:
        return Dense(self.widths[-1], self.num_classes, dtype=self.dtype)

    def conv_layers(self) -> tuple:
        """``(layer name, kernel path in params, layer spec)`` for every conv and dense."""
        out = [("stem", ("stem", "kernel"), self._stem())]
        for b in range(self.num_blocks):
            for name, conv in zip(("dw", "pw"), self._block(b)):
                out.append((f"blocks/{b}/{name}", ("blocks", b, name, "kernel"), conv))
        out.append(("fc", ("fc", "kernel"), self._fc()))
        return tuple(out)

    def init_params(self, key: jax.Array) -> dict:
        """``stem``, ``stem_bn``, ``blocks`` (a tuple of ``dw, dw_bn, pw, pw_bn`` dicts),
        ``fc``."""
        keys = jax.random.split(key, self.num_blocks + 2)
        blocks = []
        for b in range(self.num_blocks):
            k1, k2 = jax.random.split(keys[b + 1])
            dw, pw = self._block(b)
            blocks.append(
                {
                    "dw": dw.init_params(k1),
                    "dw_bn": self._bn(dw.out_channels).init_params(k1),
                    "pw": pw.init_params(k2),
                    "pw_bn": self._bn(pw.out_channels).init_params(k2),
                }
            )
        return {
            "stem": self._stem().init_params(keys[0]),
            "stem_bn": self._bn(self.stem_out).init_params(keys[0]),
            "blocks": tuple(blocks),
            "fc": self._fc().init_params(keys[-1]),
        }

    def init_state(self) -> dict:
        """BatchNorm running statistics, shaped like the BN params."""
        blocks = tuple(
            {
                "dw_bn": self._bn(self.block_in(b)).init_state(),
                "pw_bn": self._bn(self.widths[b]).init_state(),
            }
            for b in range(self.num_blocks)
        )
        return {"stem_bn": self._bn(self.stem_out).init_state(), "blocks": blocks}

    def apply(self, params: dict, state: dict, x, *, train: bool):
        """``x (N, H, W, in_channels) -> (logits (N, num_classes), new state)``."""
        check_array("x", x, shape=(None, None, None, self.in_channels), floating=True)
        h = tapped("stem", self._stem(), params["stem"], x)
        h, stem_state = self._bn(self.stem_out).apply(
            params["stem_bn"], state["stem_bn"], h, train=train
        )
        h = tap("stem:act", jax.nn.relu(h))
        blocks = []
        for b in range(self.num_blocks):
            p, s = params["blocks"][b], state["blocks"][b]
            dw, pw = self._block(b)
            name = f"blocks/{b}"
            h = tapped(f"{name}/dw", dw, p["dw"], h)
            h, s1 = self._bn(dw.out_channels).apply(p["dw_bn"], s["dw_bn"], h, train=train)
            h = tap(f"{name}/dw:act", jax.nn.relu(h))
            h = tapped(f"{name}/pw", pw, p["pw"], h)
            h, s2 = self._bn(pw.out_channels).apply(p["pw_bn"], s["pw_bn"], h, train=train)
            h = tap(f"{name}/pw:act", jax.nn.relu(h))
            blocks.append({"dw_bn": s1, "pw_bn": s2})
        logits = tapped("fc", self._fc(), params["fc"], global_avg_pool(h))
        return logits, {"stem_bn": stem_state, "blocks": tuple(blocks)}

    __call__ = apply

    def pruned(self, kept) -> MobileNetV1:
        """The spec after surgery: the surviving stem and pointwise widths (``kept``:
        :func:`memjax.pruning.shrink`; a depthwise conv follows its input's width)."""
        stem = width(kept, "params/stem/kernel", 3, self.stem_out)
        blocks = tuple(
            width(kept, f"params/blocks/{b}/pw/kernel", 3, self.widths[b])
            for b in range(self.num_blocks)
        )
        return MobileNetV1(
            self.width_multiplier,
            self.num_classes,
            self.in_channels,
            self.stem_stride,
            self.cfg,
            stem,
            blocks,
            self.bn_momentum,
            self.init,
            self.dtype,
        )
