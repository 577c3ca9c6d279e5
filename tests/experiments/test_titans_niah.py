"""The S-NIAH experiment (experiments.titans.niah): its loss against a NumPy reference, the
curriculum, and a finished model's record re-read by --resume (no second training)."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from experiments.titans import niah


def test_needle_loss_weighs_every_sequence_equally_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, 5))
    tokens = rng.integers(0, 5, size=(3, 6))
    targets = np.full((3, 6), -100)
    targets[0, 4] = 2  # one answer token
    targets[1, 1:5] = [0, 1, 2, 3]  # four answer tokens
    targets[2, 2:4] = logits[2, 2:4].argmax(-1)  # two, both predicted right
    needle_loss = jax.jit(niah.needle_loss, static_argnums=3)
    loss, aux = needle_loss(jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(targets), 0.0)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    rows, acc, exact = [], [], []
    for b in range(3):
        (pos,) = np.nonzero(targets[b] >= 0)
        rows.append(-np.mean(logp[b, pos, targets[b, pos]]))
        right = logits[b, pos].argmax(-1) == targets[b, pos]
        acc.append(right.mean())
        exact.append(right.all())
    np.testing.assert_allclose(float(loss), np.mean(rows), rtol=1e-6)
    np.testing.assert_allclose(float(aux["accuracy"]), np.mean(acc), rtol=1e-6)
    np.testing.assert_allclose(float(aux["exact"]), np.mean(exact), rtol=1e-6)
    assert exact[2]
    # lm_weight adds that multiple of the mean next-token loss of the whole sequence
    lm = -np.mean(np.take_along_axis(logp[:, :-1], tokens[:, 1:, None], -1))
    loss_lm, aux_lm = needle_loss(
        jnp.asarray(logits), jnp.asarray(tokens), jnp.asarray(targets), 0.5
    )
    np.testing.assert_allclose(float(aux_lm["lm_loss"]), lm, rtol=1e-6)
    np.testing.assert_allclose(float(loss_lm), np.mean(rows) + 0.5 * lm, rtol=1e-6)


def test_cpu_preset_and_needle_batches():
    assert niah.PRESETS["cpu"]["seeds"] == (0, 1) and niah.Config().template == "marker"
    assert niah.Config(seed=3).seed_list() == (3,) and niah.Config(seeds=(1, 2)).seed_list() == (
        1,
        2,
    )
    tokens, targets = niah.needle_batch(niah.Config(), 0, 128, 2)
    assert tokens.shape == targets.shape == (6, 128)
    # kinds in order, two rows each: 5, 7 and 36 answer tokens scored
    assert (targets >= 0).sum(1).tolist() == [5, 5, 7, 7, 36, 36]


def test_resume_rereads_finished_models(tmp_path):
    args = ["--no-progress", "--steps", "2", "--out", str(tmp_path), "--resume"]
    args += ["--set", "log_every=1", "--set", "checkpoint_every=2", "--set", "models=(swa,)"]
    args += ["--set", "needles=(passkey,)", "--set", "train_lens=(64,)"]
    args += ["--set", "eval_lens=(64,)", "--set", "d_model=8", "--set", "num_layers=1"]
    args += ["--set", "batch_size=2", "--set", "eval_examples=2", "--set", "window=8"]
    args += ["--set", "seeds=(0,)"]
    first = niah.main(args)
    record = json.loads((tmp_path / "swa_s0" / "result.json").read_text())["record"]
    assert first[0]["seeds"] == [record] and set(record["scores"]) == {"passkey@64"}
    assert (tmp_path / "niah.png").stat().st_size > 0
    # the second command trains nothing: the record (times included) comes back unchanged
    again = niah.main(args)
    assert again == first
    assert json.loads((tmp_path / "summary.json").read_text()) == first
