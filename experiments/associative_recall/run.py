"""MQAR capacity: the delta rule against the gated delta rule, as the number of pairs grows.

Each variant is a :class:`~memjax.models.sequence_model.SequenceModel` whose mixer is an
:class:`~memjax.models.associative.AssociativeLayer` over
:class:`~memjax.memories.linear.LinearMemory` heads with a short causal convolution:

* ``delta``: the delta rule with a data-dependent step size β_t = σ(w·k_t + b) (DeltaNet);
* ``gated_delta``: the same plus a data-dependent decay, in Gated DeltaNet's form
  (``decay_form="gated_deltanet"``).

Each variant is trained on MQAR (Zoology) with the numbers of key-value pairs in turn and
evaluated on held-out sequences at each; the accuracy over query positions as the pairs grow past
the memory's key size shows each memory's capacity. One command trains both models with the
memjax runner (checkpoints, ``--resume``, metrics JSON lines) and writes ``results.md``,
``capacity.png`` and ``summary.json`` into the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import optax

from memjax.data import mqar
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer
from memjax.models.sequence_model import SequenceModel
from memjax.train import (
    TrainConfig,
    describe_machine,
    parse_args,
    plot_lines,
    train,
    write_results_table,
)

VARIANTS = ("delta", "gated_delta")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """Experiment config; ``steps`` etc. come from :class:`memjax.train.TrainConfig`."""

    variants: tuple[str, ...] = VARIANTS
    kv_pairs: tuple[int, ...] = (4, 8, 16, 24, 32)
    vocab_size: int = 128
    seq_len: int = 96
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    conv_width: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-2
    eval_batches: int = 4


_FULL_SIZE = {
    "steps": 5000,
    "d_model": 128,
    "num_layers": 2,
    "kv_pairs": (8, 16, 32, 64, 128),
    "seq_len": 512,
    "vocab_size": 8192,
    "log_every": 100,
    "checkpoint_every": 1000,
    "eval_batches": 16,
}
PRESETS = {
    "cpu": {"steps": 600, "log_every": 100, "checkpoint_every": 200},
    "gpu": {**_FULL_SIZE, "batch_size": 256},
    "tpu": {**_FULL_SIZE, "batch_size": 512},
}


def build_model(config: Config, variant: str) -> SequenceModel:
    """The variant's model (see the module docstring)."""
    d_head = config.d_model // config.num_heads
    if variant == "delta":
        memory = LinearMemory(d_head, d_head, theta=0.5, gated=("theta",))
    elif variant == "gated_delta":
        memory = LinearMemory(
            d_head,
            d_head,
            theta=0.5,
            alpha=0.02,
            gated=("theta", "alpha"),
            decay_form="gated_deltanet",
        )
    else:
        raise ValueError(f"variants: expected names from {VARIANTS}, got {variant!r}")
    mixer = AssociativeLayer(
        config.d_model, config.num_heads, memory, conv_width=config.conv_width, chunk_size=32
    )
    return SequenceModel(config.vocab_size, config.d_model, config.num_layers, mixer)


def _loss_and_accuracy(model, params, batch):
    def one(tokens):
        return model.apply(params, model.init_state(params), tokens)[0]

    logits = jax.vmap(one)(batch.inputs)
    targets = jnp.where(batch.mask, batch.targets, 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    count = jnp.maximum(batch.mask.sum(), 1)
    loss = jnp.sum(nll * batch.mask) / count
    accuracy = jnp.sum((logits.argmax(-1) == targets) * batch.mask) / count
    return loss, accuracy


def run_variant(config: Config, variant: str, run_args) -> list[dict]:
    """Train the model ``variant`` on MQAR (:func:`train_on_mqar`)."""
    return train_on_mqar(config, build_model(config, variant), variant, run_args)


def train_on_mqar(config, model, variant: str, run_args) -> list[dict]:
    """Train ``model`` (a :class:`SequenceModel`-like spec) on MQAR with the pair counts of
    ``config.kv_pairs`` in turn (step ``s`` uses ``kv_pairs[s % n]``); return its held-out
    accuracy and loss at every pair count, one row each. ``config`` needs the fields of
    :class:`Config` that describe the task and optimiser; the Titans recall experiment reuses
    this with its own models. Runner files go to ``run_args.out_dir / variant``."""
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
        loss, accuracy = _loss_and_accuracy(model, params, batch)
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
    evaluate = jax.jit(lambda p, b: _loss_and_accuracy(model, p, b))

    def eval_fn(params):
        metrics = {}
        for n, batches in eval_data.items():
            results = [evaluate(params, b) for b in batches]
            metrics[f"loss_kv{n}"] = sum(float(r[0]) for r in results) / len(results)
            metrics[f"accuracy_kv{n}"] = sum(float(r[1]) for r in results) / len(results)
        return metrics

    kwargs = run_args.train_kwargs()
    kwargs["out_dir"] = run_args.out_dir / variant
    kwargs["run_info"] = {**kwargs["run_info"], "variant": variant}
    result = train(
        config,
        init_params=model.init_params,
        loss_fn=loss_fn,
        get_batch=get_batch,
        optimizer=optax.adamw(config.learning_rate, weight_decay=0.01),
        eval_fn=eval_fn,
        **kwargs,
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


def write_mqar_outputs(out_dir, rows, columns, *, title, notes, plot_name, plot_title, seconds):
    """Write the rows of :func:`train_on_mqar` as ``results.md`` (``columns``, ``notes``), an
    accuracy-against-pairs plot ``plot_name`` (one line per variant) and ``summary.json`` into
    ``out_dir``, and print the accuracies."""
    write_results_table(
        out_dir / "results.md", [{k: r[k] for k in columns} for r in rows], title=title, notes=notes
    )
    variants = dict.fromkeys(r["variant"] for r in rows)
    series = {
        v: (
            [r["kv_pairs"] for r in rows if r["variant"] == v],
            [r["accuracy"] for r in rows if r["variant"] == v],
        )
        for v in variants
    }
    plot_lines(
        out_dir / plot_name, series, xlabel="key-value pairs", ylabel="accuracy", title=plot_title
    )
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    summary = ", ".join(f"{r['variant']}@{r['kv_pairs']}={r['accuracy']:.3f}" for r in rows)
    print(f"accuracy: {summary}")
    print(f"wrote {out_dir / 'results.md'} and {plot_name} in {seconds:.0f} s")


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="associative_recall", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    start = time.perf_counter()
    rows = [row for v in config.variants for row in run_variant(config, v, run)]
    total = time.perf_counter() - start
    d_head = config.d_model // config.num_heads
    notes = {
        "preset": run.preset,
        "machine": describe_machine(),
        "seed": config.seed,
        "steps per variant": config.steps,
        "model": f"{config.num_layers} layer(s), d_model {config.d_model}, "
        f"{config.num_heads} heads (d_key = {d_head}), conv {config.conv_width}",
        "task": f"MQAR, vocab {config.vocab_size}, length {config.seq_len}",
        "wall time": f"{total:.0f} s",
    }
    write_mqar_outputs(
        run.out_dir,
        rows,
        ("variant", "kv_pairs", "accuracy", "eval_loss"),
        title="MQAR accuracy (held-out) against the number of key-value pairs",
        notes=notes,
        plot_name="capacity.png",
        plot_title=f"MQAR capacity (d_key = {d_head} per head)",
        seconds=total,
    )
    return rows


if __name__ == "__main__":
    main()
