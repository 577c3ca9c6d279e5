r"""VGG with BatchNorm, CIFAR style (HRankPlus / Beta-Rank ``vgg_16_bn``), over NHWC images.

``cfg`` lists conv widths and ``"M"`` (2×2 max-pool). Each conv is 3×3, padding 1, with a bias,
then BatchNorm and ReLU. After the features a global average pool (the code's ``AvgPool2d(2)``
on the final 2×2 map of a 32×32 input) feeds the classifier ``linear1`` → BatchNorm
(``norm1``) → ReLU → ``linear2``. :data:`VGG16` is the paper's configuration (13 convs, 14.98 M
parameters for 10 classes, 313.73 M FLOPs at 32×32: spec ``beta_rank.md`` Table 2).

Layers are ``conv0`` … ``conv{n-1}`` with ``bn0`` …, then ``linear1``, ``norm1``, ``linear2``;
each conv and dense is tapped as ``"<layer>:in"``, ``":out"``, ``":act"`` (after the ReLU).

**Folded BatchNorm** (inference). :meth:`VGG.folded` folds every evaluation-mode BatchNorm into
the conv or ``linear1`` before it (:func:`~memjax.models.cnn.layers.fold_batchnorm`:
:math:`W' = W g`, :math:`b' = (b - \hat\mu) g + \beta`, :math:`g = \gamma/\sqrt{\hat\sigma^2 +
\epsilon}`) and returns a spec with ``fold_bn=True`` and no BatchNorm or state: the same
evaluation-mode logits up to rounding.

**HRankPlus ratios.** The released code takes one compress rate per conv but the last (12 for
VGG-16; the 13th is never pruned): :meth:`VGG.ratios` turns that list into the mapping
:func:`memjax.pruning.masks_from_scores` takes.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import VGG
    >>> net = VGG(cfg=(8, "M", 16), hidden=12, num_classes=3)
    >>> params, state = net.init_params(jax.random.key(0)), net.init_state()
    >>> logits, new_state = net.apply(params, state, jnp.ones((2, 8, 8, 3)), train=True)
    >>> logits.shape, sorted(state)
    ((2, 3), ['bn0', 'bn1', 'norm1'])
    >>> net.ratios([0.5])
    {'params/conv0/kernel': 0.5}
"""

from __future__ import annotations

import dataclasses

import jax

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.spec import spec
from memjax.core.taps import tap
from memjax.models.cnn.layers import fold_batchnorm, global_avg_pool, max_pool, tapped, width
from memjax.nn import BatchNorm, Conv2D, Dense
from memjax.nn.conv2d import IMPLS

__all__ = ["VGG", "VGG16"]

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


@spec
class VGG:
    """VGG-BN, CIFAR style (module doc).

    Args:
        cfg: conv widths and ``"M"`` (max-pool), at least one conv.
        hidden: width of the classifier's hidden layer.
        num_classes: logits.
        in_channels: image channels.
        bn_momentum: BatchNorm momentum (memjax convention: PyTorch's 0.1 is 0.9).
        init: kernel initialisation (:data:`memjax.nn.INITS`).
        dtype: dtype of the params.
        fold_bn: inference form with every BatchNorm folded in (module doc; made by
            :meth:`folded`, evaluation only).
        conv_impl: every conv's :class:`~memjax.nn.Conv2D` ``impl`` (same logits up to
            rounding; ``"auto"`` for a pruned network on CPU).
    """

    cfg: tuple = VGG16
    hidden: int = 512
    num_classes: int = 10
    in_channels: int = 3
    bn_momentum: float = 0.9
    init: str = "he_normal"
    dtype: str = "float32"
    fold_bn: bool = False
    conv_impl: str = "xla"

    def __post_init__(self):
        check_choice("conv_impl", self.conv_impl, IMPLS)
        if not isinstance(self.fold_bn, bool):
            raise TypeError(f"fold_bn: expected a bool, got {self.fold_bn!r}")
        if not isinstance(self.cfg, tuple) or not any(c != "M" for c in self.cfg):
            raise ValueError(
                f"cfg: expected a tuple of widths and 'M' with a conv, got {self.cfg!r}"
            )
        for c in self.cfg:
            if c != "M":
                check_positive_int("cfg", c)
        for name in ("hidden", "num_classes", "in_channels"):
            check_positive_int(name, getattr(self, name))

    @property
    def widths(self) -> tuple[int, ...]:
        """The conv widths in order."""
        return tuple(c for c in self.cfg if c != "M")

    def _convs(self) -> list[Conv2D]:
        ins = (self.in_channels, *self.widths[:-1])
        return [
            Conv2D(i, o, 3, padding=1, init=self.init, dtype=self.dtype, impl=self.conv_impl)
            for i, o in zip(ins, self.widths)
        ]

    def _bn(self, n: int) -> BatchNorm:
        return BatchNorm(n, momentum=self.bn_momentum, dtype=self.dtype)

    def _dense(self):
        return (
            Dense(self.widths[-1], self.hidden, init=self.init, dtype=self.dtype),
            Dense(self.hidden, self.num_classes, dtype=self.dtype),
        )

    def conv_layers(self) -> tuple:
        """``(layer name, kernel path in params, layer spec)`` for every conv and dense."""
        convs = tuple((f"conv{k}", (f"conv{k}", "kernel"), c) for k, c in enumerate(self._convs()))
        l1, l2 = self._dense()
        return (
            *convs,
            ("linear1", ("linear1", "kernel"), l1),
            ("linear2", ("linear2", "kernel"), l2),
        )

    def init_params(self, key: jax.Array) -> dict:
        """``conv{k}``, ``bn{k}``, ``linear1``, ``norm1``, ``linear2``."""
        convs = self._convs()
        keys = jax.random.split(key, len(convs) + 2)
        params = {}
        for k, (conv, kk) in enumerate(zip(convs, keys)):
            params[f"conv{k}"] = conv.init_params(kk)
            if not self.fold_bn:
                params[f"bn{k}"] = self._bn(conv.out_channels).init_params(kk)
        l1, l2 = self._dense()
        params["linear1"] = l1.init_params(keys[-2])
        if not self.fold_bn:
            params["norm1"] = self._bn(self.hidden).init_params(keys[-2])
        params["linear2"] = l2.init_params(keys[-1])
        return params

    def init_state(self) -> dict:
        """BatchNorm running statistics ``bn{k}`` and ``norm1`` (``{}`` when folded)."""
        if self.fold_bn:
            return {}
        state = {f"bn{k}": self._bn(w).init_state() for k, w in enumerate(self.widths)}
        state["norm1"] = self._bn(self.hidden).init_state()
        return state

    def apply(self, params: dict, state: dict, x, *, train: bool):
        """``x (N, H, W, in_channels) -> (logits (N, num_classes), new state)``."""
        check_array("x", x, shape=(None, None, None, self.in_channels), floating=True)
        if self.fold_bn and train is not False:
            raise ValueError("train: a VGG with folded BatchNorm is for evaluation only")
        convs = iter(enumerate(self._convs()))
        new_state = {}
        h = x
        for c in self.cfg:
            if c == "M":
                h = max_pool(h)
                continue
            k, conv = next(convs)
            h = tapped(f"conv{k}", conv, params[f"conv{k}"], h)
            if not self.fold_bn:
                h, new_state[f"bn{k}"] = self._bn(c).apply(
                    params[f"bn{k}"], state[f"bn{k}"], h, train=train
                )
            h = tap(f"conv{k}:act", jax.nn.relu(h))
        h = global_avg_pool(h)
        l1, l2 = self._dense()
        h = tapped("linear1", l1, params["linear1"], h)
        if not self.fold_bn:
            h, new_state["norm1"] = self._bn(self.hidden).apply(
                params["norm1"], state["norm1"], h, train=train
            )
        h = tap("linear1:act", jax.nn.relu(h))
        return tapped("linear2", l2, params["linear2"], h), new_state

    __call__ = apply

    def pruned(self, kept) -> VGG:
        """The spec after surgery (``kept``: :func:`memjax.pruning.shrink`)."""
        widths = iter(
            width(kept, f"params/conv{k}/kernel", 3, w) for k, w in enumerate(self.widths)
        )
        cfg = tuple(c if c == "M" else next(widths) for c in self.cfg)
        hidden = width(kept, "params/linear1/kernel", 1, self.hidden)
        return VGG(
            cfg,
            hidden,
            self.num_classes,
            self.in_channels,
            self.bn_momentum,
            self.init,
            self.dtype,
            self.fold_bn,
            self.conv_impl,
        )

    def folded(self, params: dict, state: dict) -> tuple[VGG, dict, dict]:
        """``(spec, params, state)`` with every BatchNorm folded into the layer before it
        (module doc): evaluation-mode logits equal up to rounding."""
        if self.fold_bn:
            return self, params, state
        eps = self._bn(1).eps
        new = {
            f"conv{k}": fold_batchnorm(params[f"conv{k}"], params[f"bn{k}"], state[f"bn{k}"], eps)
            for k in range(len(self.widths))
        }
        new["linear1"] = fold_batchnorm(params["linear1"], params["norm1"], state["norm1"], eps)
        new["linear2"] = params["linear2"]
        return dataclasses.replace(self, fold_bn=True), new, {}

    def ratios(self, compress_rate) -> dict:
        """HRankPlus compress rates (one per conv but the last) as ``{kernel name: ratio}``."""
        n = len(self.widths) - 1
        rates = list(compress_rate)
        if len(rates) != n:
            raise ValueError(
                f"compress_rate: expected {n} entries (one per conv but the last), got {len(rates)}"
            )
        return {f"params/conv{k}/kernel": r for k, r in enumerate(rates)}
