r"""ResNet-18 (He et al. 2016, "Deep Residual Learning for Image Recognition", Table 1) with
1×1 projection shortcuts, over NHWC images; CIFAR-style stem by default.

A ``stem`` conv (no bias) → BatchNorm → ReLU, then four stages of two basic blocks each
(``conv1`` 3×3 stride :math:`s` → BN → ReLU → ``conv2`` 3×3 → BN, plus the shortcut, → ReLU) at
widths 64-128-256-512, global average pooling and a dense ``fc``. The first block of stages
2–4 has stride 2. **Shortcuts** are the identity where a block keeps stride and width, and
otherwise a projection (their option B): a 1×1 conv ``proj`` with the block's stride (no bias)
→ BatchNorm (``proj_bn``). At width 1, 10 classes and 3 input channels the network has
11,173,962 parameters.

**Stem.** Table 1's ImageNet stem is a 7×7 stride-2 conv and a 3×3 stride-2 max-pool, for
224×224 inputs. Inputs here are 32×32 (CIFAR, Fashion-MNIST padded), so the default is the
usual CIFAR adaptation: a **3×3 stride-1 stem with no max-pool** (``stem_kernel=3,
stem_stride=1, stem_pool=False``); the four stages then take the map from 32×32 to 4×4.
``ResNet18(stem_kernel=7, stem_stride=2, stem_pool=True)`` is the ImageNet stem.

**Width multiplier** :math:`\alpha` (as in :class:`~memjax.models.cnn.MobileNetV1`): every width
:math:`c` becomes :math:`\max(1, \operatorname{round}(\alpha c))`. Which blocks project is fixed
by the unpruned network (stride 2, or the scaled widths differ), not by widths after surgery.

**Channels.** The residual stream of each stage is one coupled group
(:func:`memjax.pruning.trace_groups`): in stage 1 the stem and both blocks' ``conv2`` outputs
(identity shortcuts); in stages 2–4 the first block's ``proj`` and ``conv2`` outputs and the
second block's ``conv2`` output — a projection decouples a stage from the one before, whose
channels are only its input channels. Each block's ``conv1`` output is a group of its own.
:meth:`ResNet18.pruned` rebuilds the spec from the surviving widths (``kept``:
:func:`memjax.pruning.shrink`), so :func:`memjax.pruning.materialize` works as for the other
CNNs.

Layers are ``stem``, ``blocks/<b>/conv1``, ``blocks/<b>/conv2``, ``blocks/<b>/proj`` (where the
block projects; ``b`` counts blocks over all stages, 0–7) and ``fc``; taps ``"<layer>:in"``,
``":out"`` (pre-BN) and ``":act"`` (after the ReLU that follows; for ``conv2`` and ``proj``
after the residual add).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import ResNet18
    >>> net = ResNet18(width_multiplier=1 / 16, in_channels=1)
    >>> net.widths, [b for b in range(net.num_blocks) if net.has_projection(b)]
    ((4, 8, 16, 32), [2, 4, 6])
    >>> params, state = net.init_params(jax.random.key(0)), net.init_state()
    >>> logits, _ = net.apply(params, state, jnp.ones((2, 16, 16, 1)), train=True)
    >>> logits.shape
    (2, 10)
    >>> full = jax.eval_shape(ResNet18().init_params, jax.random.key(0))
    >>> sum(a.size for a in jax.tree_util.tree_leaves(full))          # 10 classes, α = 1
    11173962
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

__all__ = ["ResNet18"]

_WIDTHS = (64, 128, 256, 512)
_STEM = 64
_BLOCKS_PER_STAGE = 2


def _max_pool_3x3_s2(x):
    window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    return jax.lax.reduce_window(x, -jax.numpy.inf, jax.lax.max, window, strides, pad)


@spec
class ResNet18:
    """ResNet-18 with projection shortcuts (module doc).

    Args:
        width_multiplier: :math:`\\alpha > 0` (widths ``round(α c)``, at least 1).
        num_classes: logits.
        in_channels: image channels.
        stem_kernel: 3 (CIFAR stem, default) or 7 (Table 1's ImageNet stem).
        stem_stride: 1 (default) or 2.
        stem_pool: a 3×3 stride-2 max-pool after the stem (ImageNet; default ``False``).
        stem_width: the stem's width after surgery (default ``round(α · 64)``).
        block_widths: each block's output (``conv2`` / ``proj``) width after surgery.
        mid_widths: each block's ``conv1`` width after surgery.
        bn_momentum: BatchNorm momentum (memjax convention: PyTorch's 0.1 is 0.9).
        init: kernel initialisation (:data:`memjax.nn.INITS`).
        dtype: dtype of the params.
    """

    width_multiplier: float = 1.0
    num_classes: int = 10
    in_channels: int = 3
    stem_kernel: int = 3
    stem_stride: int = 1
    stem_pool: bool = False
    stem_width: int | None = None
    block_widths: tuple | None = None
    mid_widths: tuple | None = None
    bn_momentum: float = 0.9
    init: str = "he_normal"
    dtype: str = "float32"

    def __post_init__(self):
        check_width_multiplier(self.width_multiplier)
        for name in ("num_classes", "in_channels"):
            check_positive_int(name, getattr(self, name))
        if self.stem_kernel not in (3, 7):
            raise ValueError(f"stem_kernel: expected 3 or 7, got {self.stem_kernel!r}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride: expected 1 or 2, got {self.stem_stride!r}")
        if not isinstance(self.stem_pool, bool):
            raise TypeError(f"stem_pool: expected a bool, got {self.stem_pool!r}")
        if self.stem_width is not None:
            check_positive_int("stem_width", self.stem_width)
        check_widths("block_widths", self.block_widths, self.num_blocks)
        check_widths("mid_widths", self.mid_widths, self.num_blocks)

    @property
    def num_blocks(self) -> int:
        """Basic blocks over all four stages (8)."""
        return _BLOCKS_PER_STAGE * len(_WIDTHS)

    @property
    def widths(self) -> tuple[int, ...]:
        """The four stage widths of the unpruned network (``round(α c)``)."""
        return tuple(scaled_width(c, self.width_multiplier) for c in _WIDTHS)

    @property
    def stem_out(self) -> int:
        """The stem's width."""
        return self.stem_width or scaled_width(_STEM, self.width_multiplier)

    def stage(self, b: int) -> int:
        """The stage (0–3) of block ``b``."""
        return b // _BLOCKS_PER_STAGE

    def stride(self, b: int) -> int:
        """2 for the first block of stages 2–4, else 1."""
        return 2 if b % _BLOCKS_PER_STAGE == 0 and b > 0 else 1

    def has_projection(self, b: int) -> bool:
        """Whether block ``b`` has a 1×1 conv + BN shortcut (stride 2, or the unpruned widths
        differ)."""
        nominal_in = (
            scaled_width(_STEM, self.width_multiplier) if b == 0 else self.widths[self.stage(b - 1)]
        )
        return self.stride(b) != 1 or nominal_in != self.widths[self.stage(b)]

    def block_width(self, b: int) -> int:
        """Output (``conv2`` and ``proj``) width of block ``b``."""
        given = None if self.block_widths is None else self.block_widths[b]
        return given or self.widths[self.stage(b)]

    def mid_width(self, b: int) -> int:
        """``conv1`` width of block ``b``."""
        given = None if self.mid_widths is None else self.mid_widths[b]
        return given or self.widths[self.stage(b)]

    def block_in(self, b: int) -> int:
        """Input width of block ``b``."""
        return self.stem_out if b == 0 else self.block_width(b - 1)

    def _conv(self, c_in, c_out, size=3, stride=1) -> Conv2D:
        return Conv2D(
            c_in,
            c_out,
            size,
            stride=stride,
            padding=size // 2,
            use_bias=False,
            init=self.init,
            dtype=self.dtype,
        )

    def _bn(self, n: int) -> BatchNorm:
        return BatchNorm(n, momentum=self.bn_momentum, dtype=self.dtype)

    def _stem(self) -> Conv2D:
        return self._conv(self.in_channels, self.stem_out, self.stem_kernel, self.stem_stride)

    def _block(self, b: int) -> tuple[Conv2D, Conv2D]:
        return (
            self._conv(self.block_in(b), self.mid_width(b), 3, self.stride(b)),
            self._conv(self.mid_width(b), self.block_width(b)),
        )

    def _proj(self, b: int) -> Conv2D:
        return self._conv(self.block_in(b), self.block_width(b), 1, self.stride(b))

    def _fc(self) -> Dense:
        return Dense(self.block_width(self.num_blocks - 1), self.num_classes, dtype=self.dtype)

    def conv_layers(self) -> tuple:
        """``(layer name, kernel path in params, layer spec)`` for every conv and dense."""
        out = [("stem", ("stem", "kernel"), self._stem())]
        for b in range(self.num_blocks):
            for name, conv in zip(("conv1", "conv2"), self._block(b)):
                out.append((f"blocks/{b}/{name}", ("blocks", b, name, "kernel"), conv))
            if self.has_projection(b):
                out.append((f"blocks/{b}/proj", ("blocks", b, "proj", "kernel"), self._proj(b)))
        out.append(("fc", ("fc", "kernel"), self._fc()))
        return tuple(out)

    def init_params(self, key: jax.Array) -> dict:
        """``stem``, ``stem_bn``, ``blocks`` (a tuple of ``conv1, bn1, conv2, bn2`` dicts, plus
        ``proj, proj_bn`` where the block projects), ``fc``."""
        keys = jax.random.split(key, self.num_blocks + 2)
        blocks = []
        for b in range(self.num_blocks):
            k1, k2, k3 = jax.random.split(keys[b + 1], 3)
            conv1, conv2 = self._block(b)
            block = {
                "conv1": conv1.init_params(k1),
                "bn1": self._bn(conv1.out_channels).init_params(k1),
                "conv2": conv2.init_params(k2),
                "bn2": self._bn(conv2.out_channels).init_params(k2),
            }
            if self.has_projection(b):
                block["proj"] = self._proj(b).init_params(k3)
                block["proj_bn"] = self._bn(self.block_width(b)).init_params(k3)
            blocks.append(block)
        return {
            "stem": self._stem().init_params(keys[0]),
            "stem_bn": self._bn(self.stem_out).init_params(keys[0]),
            "blocks": tuple(blocks),
            "fc": self._fc().init_params(keys[-1]),
        }

    def init_state(self) -> dict:
        """BatchNorm running statistics, shaped like the BN params."""
        blocks = []
        for b in range(self.num_blocks):
            s = {
                "bn1": self._bn(self.mid_width(b)).init_state(),
                "bn2": self._bn(self.block_width(b)).init_state(),
            }
            if self.has_projection(b):
                s["proj_bn"] = self._bn(self.block_width(b)).init_state()
            blocks.append(s)
        return {"stem_bn": self._bn(self.stem_out).init_state(), "blocks": tuple(blocks)}

    def apply(self, params: dict, state: dict, x, *, train: bool):
        """``x (N, H, W, in_channels) -> (logits (N, num_classes), new state)``."""
        check_array("x", x, shape=(None, None, None, self.in_channels), floating=True)
        h = tapped("stem", self._stem(), params["stem"], x)
        h, stem_state = self._bn(self.stem_out).apply(
            params["stem_bn"], state["stem_bn"], h, train=train
        )
        h = tap("stem:act", jax.nn.relu(h))
        if self.stem_pool:
            h = _max_pool_3x3_s2(h)
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
            new = {"bn1": s1, "bn2": s2}
            if self.has_projection(b):
                h = tapped(f"{name}/proj", self._proj(b), p["proj"], h)
                h, new["proj_bn"] = self._bn(self.block_width(b)).apply(
                    p["proj_bn"], s["proj_bn"], h, train=train
                )
                h = tap(f"{name}/proj:act", tap(f"{name}/conv2:act", jax.nn.relu(y + h)))
            else:
                h = tap(f"{name}/conv2:act", jax.nn.relu(y + h))
            blocks.append(new)
        logits = tapped("fc", self._fc(), params["fc"], global_avg_pool(h))
        return logits, {"stem_bn": stem_state, "blocks": tuple(blocks)}

    __call__ = apply

    def pruned(self, kept) -> ResNet18:
        """The spec after surgery: the surviving stem, block-output and ``conv1`` widths
        (``kept``: :func:`memjax.pruning.shrink`; a projection follows its block's output)."""
        stem = width(kept, "params/stem/kernel", 3, self.stem_out)
        blocks = tuple(
            width(kept, f"params/blocks/{b}/conv2/kernel", 3, self.block_width(b))
            for b in range(self.num_blocks)
        )
        mids = tuple(
            width(kept, f"params/blocks/{b}/conv1/kernel", 3, self.mid_width(b))
            for b in range(self.num_blocks)
        )
        return ResNet18(
            self.width_multiplier,
            self.num_classes,
            self.in_channels,
            self.stem_kernel,
            self.stem_stride,
            self.stem_pool,
            stem,
            blocks,
            mids,
            self.bn_momentum,
            self.init,
            self.dtype,
        )
