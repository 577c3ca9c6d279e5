"""Character-level sequence models: tiny-shakespeare batches, losses, validation and training,
shared by the Titans character experiments (``ablations``, ``shakespeare``, ``niah``).

* :func:`shakespeare_batches` — training windows by step and fixed validation windows of
  tiny-shakespeare (:func:`memjax.data.sample_char_batch`, nanoGPT's 90/10 split);
* :func:`batch_logits`, :func:`masked_metrics` — a model's logits over a batch (every row from the
  initial state) and the masked next-token loss, accuracy and exact match;
* :func:`val_loss_fn` — an ``eval_fn`` with the mean validation loss;
* :func:`train_lm` — one variant trained with AdamW (warm-up + cosine) by
  :func:`memjax.train.train`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from experiments.common.char_lm import masked_metrics
    >>> logits = jnp.log(jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]]))
    >>> loss, accuracy, exact = masked_metrics(logits, jnp.array([[0, 1, -100]]))
    >>> round(float(loss), 4), float(accuracy), exact.tolist()
    (0.1643, 1.0, [True])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from experiments.common.config import variant_run
from memjax.data import sample_char_batch, tiny_shakespeare
from memjax.train import train

__all__ = [
    "VOCAB_SIZE",
    "batch_logits",
    "masked_metrics",
    "shakespeare_batches",
    "train_lm",
    "val_loss_fn",
]

VOCAB_SIZE = 65
"""Characters of tiny-shakespeare."""


def shakespeare_batches(config):
    """``(get_batch, val)``: ``get_batch(step)`` draws ``config.batch_size`` training windows of
    ``config.block_size`` characters (seed ``config.seed``); ``val`` is ``config.eval_batches``
    fixed validation batches (seed ``config.seed + 1``). Each batch is ``(x, y)``, ``y`` the
    next characters."""
    data = tiny_shakespeare()
    if data.vocab.size != VOCAB_SIZE:
        raise ValueError(
            f"tiny-shakespeare: expected {VOCAB_SIZE} characters, got {data.vocab.size}"
        )
    val = [
        sample_char_batch(data.val, config.batch_size, config.block_size, config.seed + 1, i)
        for i in range(config.eval_batches)
    ]

    def get_batch(step):
        return sample_char_batch(
            data.train, config.batch_size, config.block_size, config.seed, step
        )

    return get_batch, val


def batch_logits(model, params, tokens):
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


def val_loss_fn(model, batches, *, average=None):
    """``params -> {"val_loss": mean next-token loss over the (x, y) batches}`` (an eval_fn).

    ``average`` maps the list of per-batch losses to their mean; the default sums them left to
    right and divides by their number (``ablations``); ``shakespeare`` passes ``numpy.mean``
    (pairwise summation), with which its published numbers were measured.
    """

    @jax.jit
    def loss(p, x, y):
        logits = batch_logits(model, p, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def eval_fn(p):
        losses = [float(loss(p, x, y)) for x, y in batches]
        mean = sum(losses) / len(losses) if average is None else float(average(losses))
        return {"val_loss": mean}

    return eval_fn


def lm_optimizer(config) -> optax.GradientTransformation:
    """AdamW (weight decay 0.01, global-norm clipping at 1) on a schedule that warms up linearly
    over the first 5 % of ``config.steps`` to ``config.learning_rate``, then decays to 0 by a
    cosine."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(config.steps // 20, 1), max(config.steps, 2)
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))


def train_lm(config, run, name: str, model, get_batch, eval_fn=None, *, lm_weight=0.0):
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

    optimizer = lm_optimizer(config)
    return train(
        config,
        init_params=model.init_params,
        loss_fn=loss_fn,
        get_batch=get_batch,
        optimizer=optimizer,
        eval_fn=eval_fn,
        **variant_run(run, name),
    )
