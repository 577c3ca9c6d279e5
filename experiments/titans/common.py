"""Shared pieces of the Titans experiments: models by name, losses, one-variant training.

Models by name (:data:`KINDS`: ``"lmm"``, ``"mac"``, ``"mag"``, ``"mal"``, ``"attention"``,
``"swa"``, ``"gated_delta"``) come from :func:`memjax.models.titans.build_model`.

Ablations of the LMM (Titans Table 5) are :class:`LMMOptions` fields; momentum and decay are
switched off exactly with the per-call controls ``eta=0`` / ``alpha=0`` of
:meth:`TitansLMM.apply <memjax.models.titans.lmm.TitansLMM.apply>` (they override the gates, also
for the persistent tokens written by ``init_state``), through :class:`Controlled`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from memjax.core.spec import spec
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans import KINDS
from memjax.models.titans import build_model as titans_build_model
from memjax.models.titans.lmm import TitansLMM
from memjax.train import train

__all__ = [
    "KINDS",
    "Controlled",
    "LMMOptions",
    "batch_logits",
    "build_model",
    "count_params",
    "masked_metrics",
    "train_variant",
    "val_loss_fn",
]



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


def build_model(
    kind: str,
    vocab_size: int,
    d_model: int,
    num_layers: int,
    *,
    num_heads: int = 2,
    lmm: LMMOptions | None = None,
    window: int = 64,
    mlp_ratio: int = 4,
) -> SequenceModel:
    """The ``kind`` model: :func:`memjax.models.titans.build_model` (``window`` is the sliding
    window of ``"swa"``, ``"mag"``, ``"mal"`` and the segment size of ``"mac"``), except that
    ``kind="lmm"`` with ``lmm`` options builds the ablated LMM of :class:`LMMOptions`."""
    if kind == "lmm" and lmm is not None:
        mixer: Any = lmm.layer(d_model, num_heads)
        if lmm.controls:
            mixer = Controlled(mixer, lmm.controls)
        return SequenceModel(vocab_size, d_model, num_layers, mixer, mlp_ratio=mlp_ratio)
    return titans_build_model(
        kind,
        vocab_size,
        d_model,
        num_layers,
        num_heads=num_heads,
        window=window,
        segment_size=window,
        mlp_ratio=mlp_ratio,
    )


def count_params(model: SequenceModel) -> int:
    """Number of trainable scalars of ``model``."""
    shapes = jax.eval_shape(model.init_params, jax.random.key(0))
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes)))


def batch_logits(model: SequenceModel, params, tokens):
    """Logits ``(B, T, V)`` of every row of ``tokens`` ``(B, T)``, each from the initial state."""
    state = model.init_state(params)
    return jax.vmap(lambda t: model.apply(params, state, t)[0])(tokens)


def masked_metrics(logits, targets):
    """``(loss, token accuracy, per-row exact match)`` over positions with ``targets >= 0``."""
    mask = targets >= 0
    safe = jnp.where(mask, targets, 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
    count = jnp.maximum(mask.sum(), 1)
    correct = (logits.argmax(-1) == safe) & mask
    exact = jnp.all(correct | ~mask, axis=-1)
    return jnp.sum(nll * mask) / count, correct.sum() / count, exact


def val_loss_fn(model: SequenceModel, batches):
    """``params -> {"val_loss": mean next-token loss over the (x, y) batches}`` (an eval_fn)."""

    @jax.jit
    def loss(p, x, y):
        logits = batch_logits(model, p, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def eval_fn(p):
        return {"val_loss": sum(float(loss(p, x, y)) for x, y in batches) / len(batches)}

    return eval_fn


def train_variant(config, run, name: str, model, get_batch, eval_fn=None, *, lm_weight=0.0):
    """Train ``model`` on ``get_batch(step) -> (tokens, targets)`` (targets -100 = unscored)
    with AdamW (warm-up + cosine to ``config.learning_rate``, clip 1) into
    ``run.out_dir / name``; ``lm_weight > 0`` adds that multiple of the next-token loss over
    all of ``tokens``. Returns the :class:`memjax.train.TrainResult`."""

    def loss_fn(params, batch, key):
        tokens, targets = batch
        logits = batch_logits(model, params, tokens)
        loss, accuracy, _ = masked_metrics(logits, targets)
        aux = {"accuracy": accuracy}
        if lm_weight:
            lm = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:])
            aux["lm_loss"] = jnp.mean(lm)
            loss = loss + lm_weight * aux["lm_loss"]
        return loss, aux

    kwargs = run.train_kwargs()
    kwargs["out_dir"] = run.out_dir / name
    kwargs["run_info"] = {**kwargs["run_info"], "variant": name}
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(config.steps // 20, 1), max(config.steps, 2)
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01)
    )
    return train(
        config,
        init_params=model.init_params,
        loss_fn=loss_fn,
        get_batch=get_batch,
        optimizer=optimizer,
        eval_fn=eval_fn,
        **kwargs,
    )

