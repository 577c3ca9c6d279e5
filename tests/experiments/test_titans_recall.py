"""experiments/titans/recall.py runs end to end on a tiny config, writes finite outputs, resumes."""

import json
import math

import jax
import jax.numpy as jnp
import pytest

from experiments.titans import recall
from memjax.models.titans.lmm import TitansLMM
from memjax.train import read_jsonl

TINY = [
    "--no-progress",
    "--steps",
    "4",
    "--set",
    "variants=(lmm_deep,lmm_linear,gated_delta)",
    "--set",
    "kv_pairs=(2,4)",
    "--set",
    "seq_len=16",
    "--set",
    "vocab_size=16",
    "--set",
    "d_model=8",
    "--set",
    "chunk_size=4",
    "--set",
    "eval_batches=1",
    "--set",
    "batch_size=2",
    "--set",
    "checkpoint_every=2",
    "--set",
    "log_every=2",
]


def test_recall_writes_finite_results_and_resumes(tmp_path):
    rows = recall.main([*TINY, "--out", str(tmp_path)])
    assert [(r["variant"], r["kv_pairs"]) for r in rows] == [
        (v, n) for v in ("lmm_deep", "lmm_linear", "gated_delta") for n in (2, 4)
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 and math.isfinite(r["eval_loss"]) for r in rows)
    # the deep memory has more parameters than the linear one, at the same head size
    assert rows[0]["params"] > rows[2]["params"]
    table = (tmp_path / "results.md").read_text()
    assert "lmm_deep" in table and "gated_delta" in table and "wall time" in table
    assert (tmp_path / "recall.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == rows
    for variant in ("lmm_deep", "lmm_linear", "gated_delta"):
        records = read_jsonl(tmp_path / variant / "metrics.jsonl")
        assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
        assert all(math.isfinite(r["loss"]) for r in records if r["split"] == "train")
    # a resumed, already complete run restores the same final state and results
    resumed = recall.main([*TINY, "--out", str(tmp_path), "--resume"])
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert strip(resumed) == strip(rows)


def test_models_build_and_lmm_settings():
    config = recall.Config(d_model=8, vocab_size=16)
    for variant in recall.VARIANTS:
        model = recall.variant_model(config, variant)
        logits, _ = jax.eval_shape(
            lambda p, m=model: m.apply(p, m.init_state(p), jnp.zeros(6, jnp.int32)),
            jax.eval_shape(model.init_params, jax.random.key(0)),
        )
        assert logits.shape == (6, 16)
    mixers = {v: recall.variant_model(config, v).mixer for v in recall.LMM_FIELDS}
    assert mixers["lmm_deep"] == TitansLMM(8, 2, remat=False)  # the library defaults
    assert mixers["lmm_linear"].depth == 1
    assert mixers["lmm_wrapper"].residual_norm
    assert mixers["lmm_wrapper"].conv_init == "uniform_identity"
    assert mixers["lmm_identity_conv"].conv_init == "identity"
    assert mixers["lmm_uniform_conv"].conv_init == "uniform"
    assert not mixers["lmm_uniform_conv"].residual_norm
    assert mixers["lmm_both"].residual_norm and mixers["lmm_both"].conv_init == "uniform"
    assert mixers["lmm_no_momentum"].layer == mixers["lmm_deep"]
    assert dict(mixers["lmm_no_momentum"].controls) == {"eta": 0.0}
    assert dict(mixers["lmm_no_decay"].controls) == {"alpha": 0.0}
    assert mixers["lmm_no_conv"].conv_width == 0 and mixers["lmm_no_persistent"].num_persistent == 0
    with pytest.raises(ValueError, match="variants"):
        recall.variant_model(config, "nope")
