r"""CIFAR ResNets (He et al. 2016, §4.2) with option-A shortcuts, as in the Beta-Rank code.

A 3×3 ``stem`` conv (no bias) → BatchNorm → ReLU, then three stages of ``blocks_per_stage``
basic blocks (``conv1`` 3×3 stride :math:`s` → BN → ReLU → ``conv2`` 3×3 → BN, plus the shortcut,
→ ReLU), global average pooling and a dense ``fc``. Stages 2 and 3 start with stride 2. Depth
:math:`6n + 2`: ResNet-20/56/110 are :math:`n = 3, 9, 18` (:func:`resnet20`, :func:`resnet56`,
:func:`resnet110`; ResNet-56 has 0.85 M parameters and 125.49 M FLOPs at 32×32, spec
``beta_rank.md`` Table 2).

**Shortcuts.** Identity when the block keeps stride and width. Otherwise option A (zero
padding, the released ``models/resnet.py``): the input subsampled ``x[:, ::2, ::2]`` (stride 2)
and its channels placed by a *channel map* — by default :math:`\lfloor (C_{out} - C_{in})/2
\rfloor` zero channels, the input, then the rest zero — built by
:func:`~memjax.models.cnn.layers.select_channels`, so channel tracing couples input channel
:math:`c` with output channel :math:`c + lo`. After pruning, ``shortcut_maps`` holds each
block's map between the surviving channels (:meth:`ResNet.pruned`).

With option A every residual stream — the stem and all three stages — is one coupled group
(:func:`memjax.pruning.trace_groups`): a stage-1 channel is summed into a stage-2 channel and on
into stage 3. The blocks' ``conv1`` outputs are groups of their own.

**Folded BatchNorm** (inference). :meth:`ResNet.folded` folds every evaluation-mode BatchNorm
into the conv before it (:func:`~memjax.models.cnn.layers.fold_batchnorm`: :math:`W' = W g`,
:math:`b' = \beta - \hat\mu g`, :math:`g = \gamma/\sqrt{\hat\sigma^2+\epsilon}`) and returns a spec
with ``fold_bn=True``, whose convs carry a bias and which has no BatchNorm and no state: the same
logits as ``apply(..., train=False)`` up to rounding, one elementwise pass fewer per conv.

**Conv implementation** (``conv_impl``, :class:`~memjax.nn.Conv2D` ``impl``): ``"auto"``
computes the convs with at most 16 channels on both sides (the stage-1 convs, and the narrow
convs pruning leaves) zero-padded to 17 output channels, and the pruned widths XLA:CPU runs
slowly (25–31, 41–47, 49–63, and 9–15 when the input is wider than 16) padded to the next
multiple of 16 (:func:`memjax.nn.conv2d.computed_width`); the same logits
up to rounding and the same params (``dataclasses.replace(net, conv_impl="auto")`` on a
trained or pruned network). Trace groups and count FLOPs with the default ``"xla"``. Measure
before relying on it (``experiments/benchmarks/pruning.md``).

Layers are ``stem``, ``blocks/<b>/conv1``, ``blocks/<b>/conv2`` (``b`` counts blocks over all
stages) and ``fc``; taps ``"<layer>:in"``, ``":out"`` (pre-BN) and ``":act"`` (after the ReLU
that follows; for ``conv2`` after the residual add).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import ResNet
    >>> net = ResNet(blocks_per_stage=1, widths=(4, 8, 16))
    >>> params, state = net.init_params(jax.random.key(0)), net.init_state()
    >>> logits, _ = net.apply(params, state, jnp.ones((2, 8, 8, 3)), train=False)
    >>> logits.shape, net.shortcut(1)
    ((2, 10), (2, (-1, -1, 0, 1, 2, 3, -1, -1)))
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.spec import spec
from memjax.core.taps import tap
from memjax.models.cnn.layers import (
    check_widths,
    fold_batchnorm,
    global_avg_pool,
    remap_channels,
    select_channels,
    tapped,
    width,
)
from memjax.nn import BatchNorm, Conv2D, Dense
from memjax.nn.conv2d import IMPLS

__all__ = ["ResNet", "resnet20", "resnet56", "resnet110"]


@spec
class ResNet:
    """A CIFAR ResNet (module doc).

    Args:
        blocks_per_stage: :math:`n` (depth :math:`6n + 2`).
        widths: the three stage widths of the unpruned network.
        num_classes: logits.
        in_channels: image channels.
        stem_width: the stem's width (default ``widths[0]``).
        block_widths: each block's output (``conv2``) width (default: its stage's).
        mid_widths: each block's ``conv1`` width (default: its stage's).
        shortcut_maps: per block ``None`` (identity, or the default option-A map) or a channel
            map (``-1``: zero channel).
        bn_momentum: BatchNorm momentum (memjax convention).
        init: kernel initialisation (:data:`memjax.nn.INITS`).
        dtype: dtype of the params.
        fold_bn: inference form with every BatchNorm folded into its conv (module doc;
            made by :meth:`folded`, evaluation only).
        conv_impl: every conv's :class:`~memjax.nn.Conv2D` ``impl`` (module doc): ``"xla"``,
            or ``"auto"`` (``"pad8"``, ``"pad16"``) for a pruned network on CPU.
    """

    blocks_per_stage: int = 9
    widths: tuple[int, int, int] = (16, 32, 64)
    num_classes: int = 10
    in_channels: int = 3
    stem_width: int | None = None
    block_widths: tuple | None = None
    mid_widths: tuple | None = None
    shortcut_maps: tuple | None = None
    bn_momentum: float = 0.9
    init: str = "he_normal"
    dtype: str = "float32"
    fold_bn: bool = False
    conv_impl: str = "xla"

    def __post_init__(self):
        check_positive_int("blocks_per_stage", self.blocks_per_stage)
        check_choice("conv_impl", self.conv_impl, IMPLS)
        if not isinstance(self.fold_bn, bool):
            raise TypeError(f"fold_bn: expected a bool, got {self.fold_bn!r}")
        check_widths("widths", self.widths, 3)
        for name in ("num_classes", "in_channels"):
            check_positive_int(name, getattr(self, name))
        if self.stem_width is not None:
            check_positive_int("stem_width", self.stem_width)
        check_widths("block_widths", self.block_widths, self.num_blocks)
        check_widths("mid_widths", self.mid_widths, self.num_blocks)
        if self.shortcut_maps is not None:
            if (
                not isinstance(self.shortcut_maps, tuple)
                or len(self.shortcut_maps) != self.num_blocks
            ):
                raise ValueError(
                    f"shortcut_maps: expected a tuple of {self.num_blocks} entries,"
                    f" got {self.shortcut_maps!r}"
                )
            for b, m in enumerate(self.shortcut_maps):
                if m is None:
                    continue
                ok = (
                    isinstance(m, tuple)
                    and len(m) == self.block_width(b)
                    and all(isinstance(v, int) and -1 <= v < self.block_in(b) for v in m)
                )
                if not ok:
                    raise ValueError(
                        f"shortcut_maps: block {b} needs {self.block_width(b)} "
                        f"ints in [-1, {self.block_in(b)}), got {m!r}"
                    )

    @property
    def num_blocks(self) -> int:
        """Basic blocks over all stages."""
        return 3 * self.blocks_per_stage

    def stage(self, b: int) -> int:
        """The stage (0, 1, 2) of block ``b``."""
        return b // self.blocks_per_stage

    def stride(self, b: int) -> int:
        """2 for the first block of stages 2 and 3, else 1."""
        return 2 if b % self.blocks_per_stage == 0 and b > 0 else 1

    def block_width(self, b: int) -> int:
        """Output (``conv2``) width of block ``b``."""
        return (self.block_widths or (None,) * self.num_blocks)[b] or self.widths[self.stage(b)]

    def mid_width(self, b: int) -> int:
        """``conv1`` width of block ``b``."""
        return (self.mid_widths or (None,) * self.num_blocks)[b] or self.widths[self.stage(b)]

    def block_in(self, b: int) -> int:
        """Input width of block ``b``."""
        return (self.stem_width or self.widths[0]) if b == 0 else self.block_width(b - 1)

    def shortcut(self, b: int):
        """``None`` (identity) or ``(stride, channel map)`` of block ``b``'s option-A shortcut."""
        given = None if self.shortcut_maps is None else self.shortcut_maps[b]
        c_in, c_out, s = self.block_in(b), self.block_width(b), self.stride(b)
        if given is None:
            if s == 1 and c_in == c_out:
                return None
            lo = (c_out - c_in) // 2
            given = (-1,) * lo + tuple(range(c_in)) + (-1,) * (c_out - c_in - lo)
        return (s, tuple(given))

    def _conv(self, c_in, c_out, stride=1) -> Conv2D:
        return Conv2D(
            c_in,
            c_out,
            3,
            stride=stride,
            padding=1,
            use_bias=self.fold_bn,
            init=self.init,
            dtype=self.dtype,
            impl=self.conv_impl,
        )

    def _bn(self, n) -> BatchNorm:
        return BatchNorm(n, momentum=self.bn_momentum, dtype=self.dtype)

    def _block(self, b):
        return (
            self._conv(self.block_in(b), self.mid_width(b), self.stride(b)),
            self._conv(self.mid_width(b), self.block_width(b)),
        )

    def _fc(self) -> Dense:
        return Dense(self.block_width(self.num_blocks - 1), self.num_classes, dtype=self.dtype)

    def conv_layers(self) -> tuple:
        """``(layer name, kernel path in params, layer spec)`` for every conv and dense."""
        stem_width = self.stem_width or self.widths[0]
        out = [("stem", ("stem", "kernel"), self._conv(self.in_channels, stem_width))]
        for b in range(self.num_blocks):
            for name, conv in zip(("conv1", "conv2"), self._block(b)):
                out.append((f"blocks/{b}/{name}", ("blocks", b, name, "kernel"), conv))
        out.append(("fc", ("fc", "kernel"), self._fc()))
        return tuple(out)

    def init_params(self, key: jax.Array) -> dict:
        """``stem``, ``stem_bn``, ``blocks`` (a tuple of ``conv1, bn1, conv2, bn2`` dicts),
        ``fc``."""
        keys = jax.random.split(key, self.num_blocks + 2)
        stem_width = self.stem_width or self.widths[0]
        blocks = []
        for b in range(self.num_blocks):
            k1, k2 = jax.random.split(keys[b + 1])
            conv1, conv2 = self._block(b)
            block = {"conv1": conv1.init_params(k1), "conv2": conv2.init_params(k2)}
            if not self.fold_bn:
                block["bn1"] = self._bn(conv1.out_channels).init_params(k1)
                block["bn2"] = self._bn(conv2.out_channels).init_params(k2)
            blocks.append({k: block[k] for k in ("conv1", "bn1", "conv2", "bn2") if k in block})
        params = {"stem": self._conv(self.in_channels, stem_width).init_params(keys[0])}
        if not self.fold_bn:
            params["stem_bn"] = self._bn(stem_width).init_params(keys[0])
        params.update(blocks=tuple(blocks), fc=self._fc().init_params(keys[-1]))
        return params

    def init_state(self) -> dict:
        """BatchNorm running statistics, shaped like the BN params (``{}`` when folded)."""
        if self.fold_bn:
            return {}
        blocks = tuple(
            {
                "bn1": self._bn(self.mid_width(b)).init_state(),
                "bn2": self._bn(self.block_width(b)).init_state(),
            }
            for b in range(self.num_blocks)
        )
        return {
            "stem_bn": self._bn(self.stem_width or self.widths[0]).init_state(),
            "blocks": blocks,
        }

    def apply(self, params: dict, state: dict, x, *, train: bool):
        """``x (N, H, W, in_channels) -> (logits (N, num_classes), new state)``."""
        check_array("x", x, shape=(None, None, None, self.in_channels), floating=True)
        if self.fold_bn:
            return self._apply_folded(params, x, train=train), state
        stem_width = self.stem_width or self.widths[0]
        h = tapped("stem", self._conv(self.in_channels, stem_width), params["stem"], x)
        h, stem_state = self._bn(stem_width).apply(
            params["stem_bn"], state["stem_bn"], h, train=train
        )
        h = tap("stem:act", jax.nn.relu(h))
        blocks = []
        for b in range(self.num_blocks):
            p, s = params["blocks"][b], state["blocks"][b]
            conv1, conv2 = self._block(b)
            name = f"blocks/{b}"
            y = tapped(f"{name}/conv1", conv1, p["conv1"], h)
            y, s1 = self._bn(conv1.out_channels).apply(p["bn1"], s["bn1"], y, train=train)
            y = tap(f"{name}/conv1:act", jax.nn.relu(y))
            y = tapped(f"{name}/conv2", conv2, p["conv2"], y)
            y, s2 = self._bn(conv2.out_channels).apply(p["bn2"], s["bn2"], y, train=train)
            short = self.shortcut(b)
            if short is not None:
                stride, channel_map = short
                h = select_channels(h[:, ::stride, ::stride] if stride > 1 else h, channel_map)
            h = tap(f"{name}/conv2:act", jax.nn.relu(y + h))
            blocks.append({"bn1": s1, "bn2": s2})
        logits = tapped("fc", self._fc(), params["fc"], global_avg_pool(h))
        return logits, {"stem_bn": stem_state, "blocks": tuple(blocks)}

    __call__ = apply

    def _apply_folded(self, params, x, *, train):
        if train is not False:
            raise ValueError("train: a ResNet with folded BatchNorm is for evaluation only")
        stem_width = self.stem_width or self.widths[0]
        h = tapped("stem", self._conv(self.in_channels, stem_width), params["stem"], x)
        h = tap("stem:act", jax.nn.relu(h))
        for b in range(self.num_blocks):
            p, (conv1, conv2), name = params["blocks"][b], self._block(b), f"blocks/{b}"
            y = tap(f"{name}/conv1:act", jax.nn.relu(tapped(f"{name}/conv1", conv1, p["conv1"], h)))
            y = tapped(f"{name}/conv2", conv2, p["conv2"], y)
            short = self.shortcut(b)
            if short is not None:
                stride, channel_map = short
                h = select_channels(h[:, ::stride, ::stride] if stride > 1 else h, channel_map)
            h = tap(f"{name}/conv2:act", jax.nn.relu(y + h))
        return tapped("fc", self._fc(), params["fc"], global_avg_pool(h))

    def folded(self, params: dict, state: dict) -> tuple[ResNet, dict, dict]:
        """``(spec, params, state)`` of the same network with every BatchNorm folded into the
        conv before it (module doc): evaluation-mode logits equal up to rounding."""
        if self.fold_bn:
            return self, params, state
        eps = self._bn(1).eps
        blocks = tuple(
            {
                "conv1": fold_batchnorm(p["conv1"], p["bn1"], s["bn1"], eps),
                "conv2": fold_batchnorm(p["conv2"], p["bn2"], s["bn2"], eps),
            }
            for p, s in zip(params["blocks"], state["blocks"])
        )
        new = {
            "stem": fold_batchnorm(params["stem"], params["stem_bn"], state["stem_bn"], eps),
            "blocks": blocks,
            "fc": params["fc"],
        }
        return dataclasses.replace(self, fold_bn=True), new, {}

    def pruned(self, kept) -> ResNet:
        """The spec after surgery: new widths and each block's shortcut map between the
        channels that survive (``kept``: :func:`memjax.pruning.shrink`)."""
        stem = width(kept, "params/stem/kernel", 3, self.stem_width or self.widths[0])
        blocks = tuple(
            width(kept, f"params/blocks/{b}/conv2/kernel", 3, self.block_width(b))
            for b in range(self.num_blocks)
        )
        mids = tuple(
            width(kept, f"params/blocks/{b}/conv1/kernel", 3, self.mid_width(b))
            for b in range(self.num_blocks)
        )
        maps = []
        for b in range(self.num_blocks):
            c_in, c_out = self.block_in(b), self.block_width(b)
            short = self.shortcut(b)
            old = tuple(range(c_in)) if short is None else short[1]
            kept_in = kept.get((f"params/blocks/{b}/conv1/kernel", 2), np.arange(c_in))
            kept_out = kept.get((f"params/blocks/{b}/conv2/kernel", 3), np.arange(c_out))
            new = remap_channels(old, kept_in, kept_out)
            identity = self.stride(b) == 1 and new == tuple(range(len(kept_in)))
            maps.append(None if identity else new)
        return ResNet(
            self.blocks_per_stage,
            self.widths,
            self.num_classes,
            self.in_channels,
            stem,
            blocks,
            mids,
            tuple(maps),
            self.bn_momentum,
            self.init,
            self.dtype,
            self.fold_bn,
            self.conv_impl,
        )

    def stream_stages(self) -> tuple[tuple[str, int], ...]:
        """The residual stream's nested stages as ``(kernel name, axis)``: the stem's filters,
        then the first stage-2 and stage-3 block outputs (each stage's channels contain the
        earlier stages' through the option-A shortcuts): ``stages`` of
        :func:`memjax.pruning.nested_mask`, to give each stage its own width."""
        n = self.blocks_per_stage
        return (
            ("params/stem/kernel", 3),
            (f"params/blocks/{n}/conv2/kernel", 3),
            (f"params/blocks/{2 * n}/conv2/kernel", 3),
        )

    def ratios(self, compress_rate, *, stream: float | None = None) -> dict:
        """HRankPlus ``[stem, stage1_out, stage2_out, mid_1 … mid_3n]`` rates as
        ``{kernel name: ratio}``.

        Option-A shortcuts couple the stem and all stage outputs into one group (module doc),
        which can take one ratio only: the three stream entries must agree, and that ratio
        then also prunes the stage-3 outputs (HRankPlus never prunes them, accepting scrambled
        residual channels instead). Lists whose stream entries differ — the paper's
        ``[0.] + [0.18] * 29`` — need ``stream=`` to say the stream group's ratio (``0.`` keeps
        the residual stream whole; only the mids are pruned)."""
        rates = list(compress_rate)
        n = 3 + self.num_blocks
        if len(rates) != n:
            raise ValueError(
                f"compress_rate: expected {n} entries (stem, two stage outputs, "
                f"{self.num_blocks} mids), got {len(rates)}"
            )
        if stream is None:
            if len(set(rates[:3])) != 1:
                raise ValueError(
                    f"compress_rate: the stem and stage-output rates {rates[:3]} differ, but "
                    "option-A shortcuts couple them into one group; pass stream= for its ratio"
                )
            stream = rates[0]
        out = {"params/stem/kernel": stream}
        out.update({f"params/blocks/{b}/conv1/kernel": r for b, r in enumerate(rates[3:])})
        return out


def resnet20(num_classes: int = 10, **kwargs) -> ResNet:
    """ResNet-20 (:math:`n = 3`)."""
    return ResNet(3, num_classes=num_classes, **kwargs)


def resnet56(num_classes: int = 10, **kwargs) -> ResNet:
    """ResNet-56 (:math:`n = 9`), the paper's main network."""
    return ResNet(9, num_classes=num_classes, **kwargs)


def resnet110(num_classes: int = 10, **kwargs) -> ResNet:
    """ResNet-110 (:math:`n = 18`)."""
    return ResNet(18, num_classes=num_classes, **kwargs)
