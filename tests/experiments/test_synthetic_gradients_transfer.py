"""The shared-feedback-path transfer experiment end to end (tiny)."""

import json

import jax
import numpy as np

from experiments.synthetic_gradients import transfer


def test_transfer_pretrains_a_shared_phi_and_reuses_it(tmp_path):
    args = ["--steps", "2", "--set", "log_every=1", "--set", "pre_steps=2", "--set", "hidden=4"]
    args += ["--set", "seeds=(0,)", "--set", "batch_size=4", "--set", "eval_size=8"]
    args += ["--set", "seq_len=8", "--set", "k_shot=4", "--set", "max_len=2", "--set", "window=3"]
    config = transfer.parse_args(transfer.Config, transfer.PRESETS, args).config
    task = transfer.Task(config, "sinusoid")
    phi, log = transfer.pretrain(config, task)
    last = phi["carry"][-1]["kernel"]
    assert np.abs(np.asarray(last)).max() > 0  # learned away from the zero init
    assert len(log) == 2 and len(log[-1]["metric"]) == 2
    assert jax.tree_util.tree_structure(phi) == jax.tree_util.tree_structure(
        task.sg.init_params(jax.random.key(0), task.cell.init_params(jax.random.key(1)))
    )
    # one condition on the other family keeps the test to one compile (same code path)
    args += ["--set", "conditions=(transferred φ,)", "--set", "families=(copy,)"]
    rows = transfer.main(["--no-progress", "--out", str(tmp_path), *args])
    assert [(r["target task"].split()[0], r["condition"]) for r in rows] == [
        ("copy", "transferred φ")
    ]
    for r in rows:
        assert all(np.isfinite(v) for k, v in r.items() if k.startswith("@"))
    assert (tmp_path / "transfer.png").stat().st_size > 0
    assert (tmp_path / "transfer_copy.png").stat().st_size > 0
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 1
