"""experiments.common: the shared pieces against NumPy references, and the rule that no experiment
imports another experiment's script."""

import ast
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common.char_lm import masked_metrics, val_loss_fn
from experiments.common.config import LONG_RUN, accelerator_presets
from experiments.common.mqar import mqar_loss_and_accuracy
from experiments.common.outputs import write_outputs
from memjax.data import mqar
from memjax.models.titans import build_model

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments"


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(EXPERIMENTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """The ``experiments.*`` modules ``path`` imports (``from pkg import mod`` counts as mod)."""
    found = set()
    modules = {_module(p) for p in EXPERIMENTS.rglob("*.py")}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("experiments.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
    return found


def _is_script(path: pathlib.Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


def test_no_experiment_imports_another_experiments_script():
    scripts = {_module(p): p for p in EXPERIMENTS.rglob("*.py") if _is_script(p)}
    assert "experiments.titans.recall" in scripts and "experiments.sparsey.mnist" in scripts
    bad = []
    for path in EXPERIMENTS.rglob("*.py"):
        for target in _imports(path) & set(scripts):
            # a script may use another script of its own experiment (e.g. a tuning sweep over
            # the main job's run function), and a benchmark may time an experiment's script;
            # across experiments, shared code lives in experiments/common
            package = _module(path.parent / "__init__.py")
            same_experiment = target.startswith(package + ".")
            benchmark = package == "experiments.benchmarks"
            if not (same_experiment or benchmark):
                bad.append(f"{path.relative_to(EXPERIMENTS.parent)} imports {target}")
    assert not bad, "\n".join(bad)


def test_models_come_from_the_library_build_model():
    defined = [
        f"{p.relative_to(EXPERIMENTS.parent)}:{n.lineno}"
        for p in EXPERIMENTS.rglob("*.py")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.FunctionDef) and n.name == "build_model"
    ]
    assert not defined, f"use memjax.models.titans.build_model, not a copy: {defined}"


def test_accelerator_presets_merge_the_full_block_in_order():
    full = {**LONG_RUN, "d_model": 128}
    presets = accelerator_presets(
        {"steps": 10}, full, gpu={"batch_size": 64}, nanogpt={"steps": 2000}
    )
    assert list(presets) == ["cpu", "nanogpt", "gpu", "tpu"]
    assert presets["gpu"] == {
        "steps": 5000,
        "log_every": 100,
        "checkpoint_every": 1000,
        "d_model": 128,
        "batch_size": 64,
    }
    assert presets["tpu"] == full and presets["tpu"] is not full
    assert presets["cpu"] == {"steps": 10} and "batch_size" not in full


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _row_logits(model, params, tokens):
    """Reference: one row at a time, each from a fresh initial state."""
    return np.stack(
        [np.asarray(model.apply(params, model.init_state(params), row)[0]) for row in tokens]
    )


def test_mqar_loss_and_accuracy_match_numpy():
    model = build_model("gated_delta", vocab_size=16, d_model=8, num_layers=1, chunk_size=4)
    params = model.init_params(jax.random.key(0))
    batch = mqar(jax.random.key(1), 3, 16, 16, 2)
    loss, accuracy = mqar_loss_and_accuracy(model, params, batch)
    logits = _row_logits(model, params, np.asarray(batch.inputs))
    mask, targets = np.asarray(batch.mask), np.asarray(batch.targets)
    picked = np.take_along_axis(_log_softmax(logits), np.where(mask, targets, 0)[..., None], -1)
    np.testing.assert_allclose(float(loss), -picked[..., 0][mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(
        float(accuracy), (logits.argmax(-1) == targets)[mask].mean(), rtol=1e-6
    )


def test_masked_metrics_and_val_loss_match_numpy():
    logits = np.asarray(jax.random.normal(jax.random.key(2), (2, 4, 5)))
    targets = np.array([[1, -100, 3, 0], [-100, -100, 2, 2]])
    loss, accuracy, exact = masked_metrics(jnp.asarray(logits), jnp.asarray(targets))
    mask = targets >= 0
    nll = -np.take_along_axis(_log_softmax(logits), np.where(mask, targets, 0)[..., None], -1)
    np.testing.assert_allclose(float(loss), nll[..., 0][mask].mean(), rtol=1e-6)
    hits = (logits.argmax(-1) == targets) & mask
    np.testing.assert_allclose(float(accuracy), hits.sum() / mask.sum(), rtol=1e-6)
    assert exact.tolist() == [bool((hits | ~mask)[r].all()) for r in range(2)]

    model = build_model("attention", vocab_size=7, d_model=8, num_layers=1)
    params = model.init_params(jax.random.key(3))
    tokens = np.asarray(jax.random.randint(jax.random.key(4), (3, 2, 6), 0, 7))
    batches = [(x, np.roll(x, -1, axis=1)) for x in tokens]
    per_batch = []
    for x, y in batches:
        lp = _log_softmax(_row_logits(model, params, x))
        per_batch.append(-np.take_along_axis(lp, y[..., None], -1).mean())
    for average in (None, np.mean):
        got = val_loss_fn(model, batches, average=average)(params)["val_loss"]
        assert isinstance(got, float)
        np.testing.assert_allclose(got, np.mean(per_batch), rtol=1e-5)


def test_write_outputs_writes_table_plot_and_summary(tmp_path):
    rows = [{"variant": "a", "accuracy": 0.25}, {"variant": "b", "accuracy": 0.5}]
    text = write_outputs(
        tmp_path,
        rows,
        title="T",
        notes={"seed": 0},
        plot_name="p.png",
        series={"a": ([1, 2], [0.1, 0.2])},
        xlabel="x",
        ylabel="y",
    )
    assert (tmp_path / "results.md").read_text() == text
    assert "| b | 0.5 |" in text and "**seed**" in text
    assert (tmp_path / "p.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text()) == rows
    text = write_outputs(
        tmp_path,
        rows,
        text="# given\n",
        plot_name="q.png",
        series={"a": ([1], [1.0])},
        summary={"all": 1},
    )
    assert (tmp_path / "results.md").read_text() == "# given\n" == text
    assert json.loads((tmp_path / "summary.json").read_text()) == {"all": 1}
