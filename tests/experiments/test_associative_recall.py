"""The main job runs end to end on a tiny config, writes its outputs, and resumes exactly."""

import json

from experiments.associative_recall.run import main
from memjax.train import read_jsonl

TINY = [
    "--no-progress",
    "--steps",
    "6",
    "--set",
    "kv_pairs=(2,4)",
    "--set",
    "seq_len=16",
    "--set",
    "vocab_size=16",
    "--set",
    "d_model=8",
    "--set",
    "eval_batches=1",
    "--set",
    "batch_size=4",
    "--set",
    "checkpoint_every=3",
    "--set",
    "log_every=3",
]


def test_main_job_writes_results_and_resumes(tmp_path):
    rows = main([*TINY, "--out", str(tmp_path)])
    assert [(r["variant"], r["kv_pairs"]) for r in rows] == [
        ("delta", 2),
        ("delta", 4),
        ("gated_delta", 2),
        ("gated_delta", 4),
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    table = (tmp_path / "results.md").read_text()
    assert f"{rows[0]['accuracy']:.4g}" in table and "gated_delta" in table
    assert (tmp_path / "capacity.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == rows
    steps = [
        r["step"] for r in read_jsonl(tmp_path / "delta" / "metrics.jsonl") if r["split"] == "train"
    ]
    assert steps == [3, 6]
    # a resumed, already complete run restores the same final state and results
    assert main([*TINY, "--out", str(tmp_path), "--resume"]) == rows
