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
    "variants=(gated_delta,attention_conv)",
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
    variants = ("gated_delta", "attention_conv")
    rows = recall.main([*TINY, "--out", str(tmp_path)])
    assert [(r["variant"], r["kv_pairs"]) for r in rows] == [
        (v, n) for v in variants for n in (2, 4)
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 and math.isfinite(r["eval_loss"]) for r in rows)
    # each variant at its tuned rate
    assert [r["lr"] for r in rows] == [recall.TUNED_LR[v] for v in variants for _ in (2, 4)]
    table = (tmp_path / "results.md").read_text()
    # one row per variant, a column per pair count, and the rates
    assert "| variant | params | lr | state per head | 2 pairs | 4 pairs |" in table
    assert "gated_delta" in table and "attention_conv" in table and "wall time" in table
    assert "except" not in table  # no dangling "defaults except"
    assert (tmp_path / "recall.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == rows
    for variant in variants:
        records = read_jsonl(tmp_path / variant / "metrics.jsonl")
        assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
        assert all(math.isfinite(r["loss"]) for r in records if r["split"] == "train")
    # a resumed, already complete run restores the same final state and results
    resumed = recall.main([*TINY, "--out", str(tmp_path), "--resume"])
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert strip(resumed) == strip(rows)


def test_presets_and_learning_rates():
    """The main job runs the four headline variants, ``full`` the whole study; a set rate
    overrides the tuned ones, and the ablation rows share lmm_deep's."""
    assert recall.PRESETS["cpu"].get("variants", recall.Config.variants) == recall.DEFAULT_VARIANTS
    assert recall.PRESETS["full"]["variants"] == recall.VARIANTS
    assert set(recall.DEFAULT_VARIANTS) <= set(recall.VARIANTS)
    assert list(recall.PRESETS) == ["cpu", "full", "gpu", "tpu"]
    config = recall.Config()
    assert recall.learning_rate(config, "lmm_no_decay") == recall.TUNED_LR["lmm_deep"]
    assert recall.learning_rate(config, "attention") == recall.TUNED_LR["attention"]
    assert recall.learning_rate(recall.Config(learning_rate=0.5), "attention") == 0.5


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
