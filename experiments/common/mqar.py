"""MQAR (multi-query associative recall, Zoology) training, evaluation and result files, shared
by the MQAR experiments (``experiments.associative_recall``, ``experiments.titans.recall``).

A model is a :class:`~memjax.models.sequence_model.SequenceModel`-like spec (``init_params``,
``init_state``, ``apply``) trained on :func:`memjax.data.mqar` batches; the loss and accuracy are
the mean over the query positions (``batch.mask``) of the next-token cross-entropy and of the
argmax hits. :func:`run_mqar_variants` trains every variant of ``config.variants``,
:func:`mqar_notes` gives the notes every MQAR table shares and :func:`write_mqar_outputs` writes
``results.md``, the accuracy-against-pairs plot and ``summary.json``.

Example:
    >>> import jax
    >>> from experiments.common.mqar import mqar_loss_and_accuracy
    >>> from memjax.data import mqar
    >>> from memjax.models.titans import build_model
    >>> model = build_model("attention", vocab_size=16, d_model=8, num_layers=1)
    >>> batch = mqar(jax.random.key(0), 2, 16, 16, 2)
    >>> loss, accuracy = mqar_loss_and_accuracy(model, model.init_params(jax.random.key(1)), batch)
    >>> bool(loss > 0), bool(0 <= accuracy <= 1)
    (True, True)
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax

from experiments.common.config import variant_run
from experiments.common.outputs import run_notes, write_outputs
from memjax.data import mqar
from memjax.train import train

__all__ = [
    "mqar_loss_and_accuracy",
    "mqar_notes",
    "run_mqar_variants",
    "train_on_mqar",
    "write_mqar_outputs",
]


def mqar_loss_and_accuracy(model, params, batch):
    """``(loss, accuracy)`` of ``model`` on an MQAR ``batch``, over its query positions."""

    def one(tokens):
        return model.apply(params, model.init_state(params), tokens)[0]

    logits = jax.vmap(one)(batch.inputs)
    targets = jnp.where(batch.mask, batch.targets, 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    count = jnp.maximum(batch.mask.sum(), 1)
    loss = jnp.sum(nll * batch.mask) / count
    accuracy = jnp.sum((logits.argmax(-1) == targets) * batch.mask) / count
    return loss, accuracy


def train_on_mqar(config, model, variant: str, run_args) -> list[dict]:
    """Train ``model`` on MQAR with the pair counts of ``config.kv_pairs`` in turn (step ``s``
    uses ``kv_pairs[s % n]``) with AdamW (``config.learning_rate``, weight decay 0.01); return
    its held-out accuracy and loss at every pair count, one row each.

    ``config`` is a :class:`memjax.train.TrainConfig` with the task fields ``kv_pairs``,
    ``batch_size``, ``vocab_size``, ``seq_len``, ``eval_batches`` and ``learning_rate``.
    Runner files go to ``run_args.out_dir / variant``."""
    train_key, eval_key = jax.random.split(jax.random.key(config.seed))
    sizes = config.kv_pairs

    def get_batch(step):
        return mqar(
            jax.random.fold_in(train_key, step),
            config.batch_size,
            config.vocab_size,
            config.seq_len,
            sizes[step % len(sizes)],
        )

    def loss_fn(params, batch, key):
        loss, accuracy = mqar_loss_and_accuracy(model, params, batch)
        return loss, {"accuracy": accuracy}

    eval_data = {
        n: [
            mqar(
                jax.random.fold_in(jax.random.fold_in(eval_key, n), i),
                config.batch_size,
                config.vocab_size,
                config.seq_len,
                n,
            )
            for i in range(config.eval_batches)
        ]
        for n in sizes
    }
    evaluate = jax.jit(lambda p, b: mqar_loss_and_accuracy(model, p, b))

    def eval_fn(params):
        metrics = {}
        for n, batches in eval_data.items():
            results = [evaluate(params, b) for b in batches]
            metrics[f"loss_kv{n}"] = sum(float(r[0]) for r in results) / len(results)
            metrics[f"accuracy_kv{n}"] = sum(float(r[1]) for r in results) / len(results)
        return metrics

    result = train(
        config,
        init_params=model.init_params,
        loss_fn=loss_fn,
        get_batch=get_batch,
        optimizer=optax.adamw(config.learning_rate, weight_decay=0.01),
        eval_fn=eval_fn,
        **variant_run(run_args, variant),
    )
    final = [r for r in result.history if r["split"] == "eval"][-1]
    return [
        {
            "variant": variant,
            "kv_pairs": n,
            "accuracy": final[f"accuracy_kv{n}"],
            "eval_loss": final[f"loss_kv{n}"],
        }
        for n in sizes
    ]


def run_mqar_variants(run, run_variant) -> tuple[list[dict], float]:
    """The rows of ``run_variant(config, variant, run)`` for every variant of
    ``run.config.variants``, in order, and the wall time they took in seconds."""
    config = run.config
    start = time.perf_counter()
    rows = [row for v in config.variants for row in run_variant(config, v, run)]
    return rows, time.perf_counter() - start


def mqar_notes(run, seconds: float, details: dict) -> dict:
    """The notes of an MQAR results table: preset, machine, seed and steps, then ``details``
    (model, task, ...), then the wall time."""
    return run_notes(run, seconds, {"steps per variant": run.config.steps, **details})


def write_mqar_outputs(out_dir, rows, columns, *, title, notes, plot_name, plot_title, seconds):
    """Write the rows of :func:`train_on_mqar` as ``results.md`` (``columns``, ``notes``), an
    accuracy-against-pairs plot ``plot_name`` (one line per variant) and ``summary.json`` into
    ``out_dir``, and print the accuracies."""
    variants = dict.fromkeys(r["variant"] for r in rows)
    series = {
        v: (
            [r["kv_pairs"] for r in rows if r["variant"] == v],
            [r["accuracy"] for r in rows if r["variant"] == v],
        )
        for v in variants
    }
    write_outputs(
        out_dir,
        [{k: r[k] for k in columns} for r in rows],
        title=title,
        notes=notes,
        plot_name=plot_name,
        series=series,
        summary=rows,
        xlabel="key-value pairs",
        ylabel="accuracy",
        plot_title=plot_title,
    )
    summary = ", ".join(f"{r['variant']}@{r['kv_pairs']}={r['accuracy']:.3f}" for r in rows)
    print(f"accuracy: {summary}")
    print(f"wrote {out_dir / 'results.md'} and {plot_name} in {seconds:.0f} s")
