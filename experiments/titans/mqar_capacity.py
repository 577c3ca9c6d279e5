"""Associative-recall capacity of the Titans memory against its depth and width, at test time.

MQAR asks a memory to store ``N`` key→value pairs and recall each value from its key. This
experiment measures how many pairs the Titans memory itself can hold, with no outer training:
one :class:`~memjax.memories.titans.TitansMemory` head of width ``d`` (keys and values of size
``d``, MLP depth ``L_M``, hidden width ``expansion·d``, learned-init weights drawn from
``init_params``) writes ``N`` random pairs (ℓ2-normalised Gaussian keys, Gaussian values) by its
exact test-time recurrence (eqs. 13-14, gradient at the current weights, step ``theta``, no
momentum or decay so that nothing is forgotten), ``passes`` times over the pairs in the same
order; then every key is read back. *Recall* is the share of keys whose read is closer (cosine)
to its own value than to any other stored value, averaged over ``trials`` random draws; the
capacity is the largest ``N`` with recall ≥ ``threshold``. Writes ``results.md``,
``capacity.png`` and ``summary.json``.

(The outer-trained MQAR counterpart is :mod:`experiments.titans.recall`; with the library defaults
the LMM stays at chance there, for the reasons given in the README, §5.)

``python -m experiments.titans.mqar_capacity [--preset cpu|gpu|tpu]``
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from experiments.common.config import accelerator_presets
from experiments.common.outputs import report, run_notes, write_outputs
from memjax.memories.titans import TitansMemory
from memjax.train import parse_args


@dataclasses.dataclass(frozen=True)
class Config:
    depths: tuple[int, ...] = (1, 2, 3)
    widths: tuple[int, ...] = (8, 16, 32)
    num_pairs: tuple[int, ...] = (8, 16, 32, 64, 128)
    expansion: int = 4
    theta: float = 0.05
    passes: int = 16
    trials: int = 3
    threshold: float = 0.9
    seed: int = 0


_FULL_SIZE = {
    "widths": (16, 32, 64, 128),
    "depths": (1, 2, 3, 4),
    "num_pairs": (8, 16, 32, 64, 128, 256, 512, 1024),
    "trials": 16,
}
PRESETS = accelerator_presets({}, _FULL_SIZE)


def recall(config: Config, depth: int, width: int, n: int) -> float:
    """Mean recall over ``config.trials`` draws of ``n`` pairs (module doc)."""
    memory = TitansMemory(
        width,
        width,
        depth=depth,
        expansion=config.expansion,
        theta=config.theta,
        eta=0.0,
        alpha=0.0,
        max_grad_norm=None,
        residual_norm=False,
    )

    @jax.jit
    def one(key):
        k_init, k_keys, k_vals = jax.random.split(key, 3)
        params = memory.init_params(k_init)
        keys = jax.random.normal(k_keys, (n, width))
        keys = keys / jnp.linalg.norm(keys, axis=-1, keepdims=True)
        values = jax.random.normal(k_vals, (n, width))

        def write(state, kv):
            return memory.write(params, state, *kv), None

        state = memory.init_state(params)
        for _ in range(config.passes):
            state, _ = jax.lax.scan(write, state, (keys, values))
        reads = jax.vmap(lambda k: memory.read(params, state, k))(keys)
        unit = lambda a: a / (jnp.linalg.norm(a, axis=-1, keepdims=True) + 1e-9)
        sims = unit(reads) @ unit(values).T
        return jnp.mean(sims.argmax(-1) == jnp.arange(n))

    base = jax.random.fold_in(jax.random.key(config.seed), 1000 * depth + width)
    keys = jax.random.split(jax.random.fold_in(base, n), config.trials)
    return float(jnp.mean(jnp.stack([one(k) for k in keys])))


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="titans_mqar_capacity",
        description=__doc__.splitlines()[0],
    )
    config: Config = run.config
    run.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for depth in config.depths:
        for width in config.widths:
            scores = {n: recall(config, depth, width, n) for n in config.num_pairs}
            held = [n for n in config.num_pairs if scores[n] >= config.threshold]
            size = sum(
                x.size
                for x in jax.tree_util.tree_leaves(
                    TitansMemory(width, width, depth=depth, expansion=config.expansion).init_params(
                        jax.random.key(0)
                    )
                )
            )
            rows.append(
                {
                    "depth L_M": depth,
                    "width d": width,
                    "memory params": size,
                    **{f"N={n}": scores[n] for n in config.num_pairs},
                    "capacity": max(held) if held else 0,
                }
            )
    total = time.perf_counter() - start
    notes = run_notes(
        run,
        total,
        {
            "protocol": f"theta {config.theta}, eta 0, alpha 0, no clipping, sum loss, "
            f"{config.passes} passes, {config.trials} trials; capacity = largest N with recall >= "
            f"{config.threshold}",
        },
    )
    series = {
        f"L_M={r['depth L_M']}, d={r['width d']}": (
            list(config.num_pairs),
            [r[f"N={n}"] for n in config.num_pairs],
        )
        for r in rows
    }
    text = write_outputs(
        run.out_dir,
        rows,
        title="Test-time recall of N key-value pairs by the Titans memory",
        notes=notes,
        plot_name="capacity.png",
        series=series,
        xlabel="key-value pairs N",
        ylabel="recall",
        plot_title="Titans memory capacity",
        logx=True,
    )
    report(run.out_dir, text, total)
    return rows


if __name__ == "__main__":
    main()
