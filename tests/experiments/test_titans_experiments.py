"""The Titans experiments run end to end on tiny configs and write their outputs."""

import json

import jax
import jax.numpy as jnp
import pytest

from experiments.common.models import count_params
from experiments.titans import ablations, mqar_capacity, niah, shakespeare
from experiments.titans.common import Controlled, LMMOptions
from memjax.models.titans import build_model

COMMON = ["--no-progress", "--steps", "2", "--set", "log_every=1", "--set", "checkpoint_every=2"]


def _outputs(path, plot):
    table = (path / "results.md").read_text()
    assert (path / plot).stat().st_size > 0
    return table, json.loads((path / "summary.json").read_text())


def test_niah_writes_table2_shaped_results(tmp_path):
    rows = niah.main(
        [
            *COMMON,
            "--out",
            str(tmp_path),
            "--set",
            "models=(gated_delta,swa)",
            "--set",
            "needles=(passkey,number)",
            "--set",
            "train_lens=(80,)",
            "--set",
            "eval_lens=(96,)",
            "--set",
            "d_model=8",
            "--set",
            "num_layers=1",
            "--set",
            "batch_size=2",
            "--set",
            "eval_examples=1",
            "--set",
            "eval_batch=2",
            "--set",
            "window=8",
            "--set",
            "seeds=(0,)",
        ]
    )
    assert [r["model"] for r in rows] == ["gated_delta", "swa"]
    for r in rows:
        assert set(r["scores"]) == {"passkey@96", "number@96"}
        assert all(0.0 <= s <= 1.0 for pair in r["scores"].values() for s in pair)
    table, summary = _outputs(tmp_path, "niah.png")
    assert "PK 96" in table and "N 96" in table and "gated_delta" in table
    assert summary == rows


def test_niah_curriculum_goes_from_short_to_long():
    config = niah.Config(steps=9, train_lens=(256, 384, 512))
    assert [niah.train_length(config, s) for s in range(9)] == [256] * 3 + [384] * 3 + [512] * 3
    assert niah.Config().num_layers >= 2 and "swa" in niah.MODELS


def test_ablations_runs_variants(tmp_path):
    rows = ablations.main(
        [
            *COMMON,
            "--out",
            str(tmp_path),
            "--set",
            "variants=(w/o momentum,)",
            "--set",
            "d_model=8",
            "--set",
            "num_layers=1",
            "--set",
            "block_size=16",
            "--set",
            "batch_size=2",
            "--set",
            "eval_batches=1",
            "--set",
            "window=4",
        ]
    )
    assert [r["variant"] for r in rows] == ["w/o momentum"]
    assert all(0.0 < r["val_loss"] < 10.0 for r in rows)
    table, summary = _outputs(tmp_path, "train_loss.png")
    assert "w/o momentum" in table and summary == rows


def test_mqar_capacity_grid(tmp_path):
    rows = mqar_capacity.main(
        [
            "--out",
            str(tmp_path),
            "--set",
            "depths=(1,2)",
            "--set",
            "widths=(4,)",
            "--set",
            "num_pairs=(2,4)",
            "--set",
            "trials=1",
            "--set",
            "passes=1",
        ]
    )
    assert [(r["depth L_M"], r["width d"]) for r in rows] == [(1, 4), (2, 4)]
    assert rows[0]["memory params"] < rows[1]["memory params"]
    assert all(0.0 <= r[f"N={n}"] <= 1.0 for r in rows for n in (2, 4))
    assert all(r["capacity"] in (0, 2, 4) for r in rows)
    table, summary = _outputs(tmp_path, "capacity.png")
    assert "N=4" in table and summary == rows


def test_shakespeare_matches_parameters(tmp_path):
    rows = shakespeare.main(
        [
            *COMMON,
            "--out",
            str(tmp_path),
            "--set",
            "models=(gated_delta,)",
            "--set",
            "d_model=24",
            "--set",
            "num_layers=1",
            "--set",
            "num_heads=2",
            "--set",
            "block_size=16",
            "--set",
            "batch_size=2",
            "--set",
            "eval_batches=1",
            "--set",
            "eval_every=2",
        ]
    )
    assert [r["model"] for r in rows] == ["attention", "gated_delta"]
    base = rows[0]["params"]
    assert abs(rows[1]["params"] - base) <= 0.1 * base
    assert all(0.0 < r["val_loss"] < 10.0 for r in rows)
    table, summary = _outputs(tmp_path, "val_loss.png")
    assert "1.88" in table and summary == rows


def test_shakespeare_lmm_width_matches_attention_parameters():
    """The LMM of the char-LM comparison gets the width whose parameter count is closest to
    the attention baseline's (equal parameters), without training anything."""
    config = shakespeare.Config(d_model=24, num_layers=1, num_heads=2)
    target = count_params(shakespeare.make(config, "attention", 24))
    d = shakespeare.matched_width(config, "lmm", target)
    got = count_params(shakespeare.make(config, "lmm", d))
    others = [count_params(shakespeare.make(config, "lmm", w)) for w in (d - 4, d + 4)]
    assert abs(got - target) <= 0.1 * target
    assert all(abs(got - target) <= abs(o - target) for o in others)


@pytest.mark.parametrize("name", ["eta", "alpha"])
def test_controlled_lmm_switches_a_gate_off(name):
    """``Controlled`` equals the LMM called with the control, persistent tokens included."""
    opts = LMMOptions(
        depth=1, num_persistent=2, chunk_size=4, momentum=name != "eta", decay=name != "alpha"
    )
    mixer = opts.model(10, 8, 1).mixer
    assert isinstance(mixer, Controlled) and mixer.controls == ((name, 0.0),)
    layer = mixer.layer
    p = layer.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (6, 8))
    state = layer.empty_state(p)
    _, state = layer.reference_apply(p, state, p["persistent"], **{name: 0.0})
    want, _ = layer.reference_apply(p, state, xs, **{name: 0.0})
    got, _ = mixer.apply(p, mixer.init_state(p), xs)
    assert jnp.allclose(got, want, atol=1e-5)
    assert count_params(opts.model(10, 8, 1)) == count_params(
        LMMOptions(depth=1, num_persistent=2, chunk_size=4).model(10, 8, 1)
    )


def test_default_lmm_options_are_the_library_lmm():
    """With no ablation, :meth:`LMMOptions.model` is the ``lmm`` kind of ``build_model``."""
    assert LMMOptions().model(10, 8, 1, num_heads=2) == build_model("lmm", 10, 8, 1, num_heads=2)
    assert not isinstance(LMMOptions(depth=1).model(10, 8, 1).mixer, Controlled)
