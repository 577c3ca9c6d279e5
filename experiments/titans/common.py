"""Titans-only pieces of the Titans experiments: the LMM ablations of Table 5.

Models by name (``"lmm"``, ``"mac"``, ``"mag"``, ``"mal"``, ``"attention"``, ``"swa"``,
``"gated_delta"``) come from :func:`memjax.models.titans.build_model`; training, losses and result
files shared with the other experiments are in :mod:`experiments.common`.

Ablations of the LMM (Titans Table 5) are :class:`LMMOptions` fields, and
:meth:`LMMOptions.model` builds the ablated LMM language model; momentum and decay are switched
off exactly with the per-call controls ``eta=0`` / ``alpha=0`` of
:meth:`TitansLMM.apply <memjax.models.titans.lmm.TitansLMM.apply>` (they override the gates, also
for the persistent tokens written by ``init_state``), through :class:`Controlled`.

Example:
    >>> from experiments.titans.common import Controlled, LMMOptions
    >>> model = LMMOptions(depth=1, momentum=False).model(vocab_size=10, d_model=8, num_layers=1)
    >>> isinstance(model.mixer, Controlled), model.mixer.controls, model.mixer.layer.depth
    (True, (('eta', 0.0),), 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from memjax.core.spec import spec
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans.lmm import TitansLMM

__all__ = ["Controlled", "LMMOptions"]


@dataclasses.dataclass(frozen=True)
class LMMOptions:
    """The LMM knobs the experiments vary (Titans Table 5 rows and the capacity sweep)."""

    depth: int = 2
    expansion: int = 4
    conv_width: int = 4
    num_persistent: int = 4
    momentum: bool = True
    decay: bool = True
    chunk_size: int = 16
    conv_init: str = TitansLMM.conv_init  # the layer's defaults, not copies of them
    residual_norm: bool = TitansLMM.residual_norm

    def layer(self, d_model: int, num_heads: int, d_head: int | None = None) -> TitansLMM:
        return TitansLMM(
            d_model=d_model,
            num_heads=num_heads,
            d_head=d_head,
            chunk_size=self.chunk_size,
            depth=self.depth,
            expansion=self.expansion,
            conv_width=self.conv_width,
            num_persistent=self.num_persistent,
            conv_init=self.conv_init,
            residual_norm=self.residual_norm,
        )

    @property
    def controls(self) -> tuple[tuple[str, float], ...]:
        out = []
        if not self.momentum:
            out.append(("eta", 0.0))
        if not self.decay:
            out.append(("alpha", 0.0))
        return tuple(out)

    def model(
        self,
        vocab_size: int,
        d_model: int,
        num_layers: int,
        *,
        num_heads: int = 2,
        mlp_ratio: int = 4,
    ) -> SequenceModel:
        """The ablated LMM language model: a :class:`SequenceModel` around :meth:`layer`, wrapped
        in :class:`Controlled` when momentum or decay is off (the ``"lmm"`` kind of
        :func:`memjax.models.titans.build_model` with these options)."""
        mixer: Any = self.layer(d_model, num_heads)
        if self.controls:
            mixer = Controlled(mixer, self.controls)
        return SequenceModel(vocab_size, d_model, num_layers, mixer, mlp_ratio=mlp_ratio)


@spec
class Controlled:
    """A :class:`TitansLMM` with fixed per-call controls (e.g. ``eta=0``: no momentum), used in
    ``apply`` and when ``init_state`` writes the persistent tokens."""

    layer: Any
    controls: tuple = ()

    @property
    def d_model(self) -> int:
        return self.layer.d_model

    def init_params(self, key):
        return self.layer.init_params(key)

    def init_state(self, params):
        return self.layer.init_state(params, **dict(self.controls))

    def apply(self, params, state, xs, /, **controls):
        return self.layer.apply(params, state, xs, **{**dict(self.controls), **controls})
