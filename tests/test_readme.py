"""The README's examples and its "run a tutorial" command work as written.

Every fenced ``python`` block of README.md runs, in order, in one namespace (as a reader pasting
them one after the other would); afterwards every floating array the blocks left behind must be
finite and of a sane magnitude, and "A taste" must equal a NumPy delta-rule loop. The module
docstrings' examples run in ``tests/test_docstrings.py``. The README's one-line tutorial command
runs verbatim (in small mode) on the cheapest tutorial and must write a notebook with outputs.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
PYTHON_BLOCKS = [body for lang, body in FENCE.findall(README) if lang == "python"]
SHELL_LINES = [
    line.strip()
    for lang, body in FENCE.findall(README)
    if lang == "bash"
    for line in body.splitlines()
]
# A read of the delta rule is a convex mix of stored values (when θ‖k‖² < 2); anything far past
# the values' scale means the recurrence diverged (the old example reached 1.3e27).
MAX_ABS = 1e3


def _arrays(namespace):
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        for leaf in jax.tree_util.tree_leaves(value):
            if isinstance(leaf, jax.Array | np.ndarray) and np.issubdtype(leaf.dtype, np.floating):
                yield name, np.asarray(leaf)


@pytest.fixture(scope="module")
def namespace():
    assert PYTHON_BLOCKS, "README.md has no python block"
    ns: dict = {}
    for block in PYTHON_BLOCKS:
        exec(compile(block, "README.md", "exec"), ns)
    return ns


def test_every_block_leaves_finite_sane_arrays(namespace):
    found = list(_arrays(namespace))
    assert found, "the README blocks computed no arrays"
    for name, x in found:
        assert np.all(np.isfinite(x)), f"README: {name} has non-finite entries"
        assert np.abs(x).max(initial=0.0) < MAX_ABS, f"README: {name} reaches {np.abs(x).max()}"


def test_taste_equals_a_numpy_gated_delta_rule(namespace):
    """y_t = M_t k_t with M_t = (1-α) M_{t-1} - θ (M_{t-1} k_t - v_t) k_tᵀ (gates at init)."""
    keys = np.asarray(namespace["keys"], np.float64)
    values = np.asarray(namespace["values"], np.float64)
    mem = namespace["mem"]
    assert np.allclose(np.linalg.norm(keys, axis=-1), 1.0, atol=1e-5)
    assert mem.theta * np.max(np.sum(keys**2, -1)) < 2  # the stability condition it states
    # zero gate weights, biases at the constants' logits: θ_t = θ and α_t = α for every token
    m = np.zeros((mem.d_value, mem.d_key))
    reads = []
    for k, v in zip(keys, values):
        m = (1 - mem.alpha) * m - mem.theta * np.outer(m @ k - v, k)
        reads.append(m @ k)
    np.testing.assert_allclose(namespace["reads"], np.stack(reads), rtol=2e-4, atol=2e-5)
    # and it stores: the read after the last write points along the value just written
    last, v = np.asarray(namespace["reads"][-1]), values[-1]
    assert last @ v / (np.linalg.norm(last) * np.linalg.norm(v)) > 0.8


def test_the_run_a_tutorial_command_runs_as_written(tmp_path):
    commands = [line for line in SHELL_LINES if line.startswith("jupytext --to ipynb --execute")]
    assert len(commands) == 1, "README: expected one 'run a tutorial' command"
    command = commands[0]
    source = re.search(r"tutorials/\S+\.py", command).group(0)
    (tmp_path / "tutorials").mkdir()
    shutil.copy(ROOT / source, tmp_path / source)
    # as a user runs it: the kernel's inline plots (no Agg override), one CPU device, small mode
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env.update(MEMJAX_SMALL="1", XLA_FLAGS=" ".join(flags))
    result = subprocess.run(
        command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    notebook = json.loads((tmp_path / source).with_suffix(".ipynb").read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert code and all(c.get("execution_count") for c in code), "not every cell ran"
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot in the outputs"
    assert any("small mode: True" in "".join(o.get("text", "")) for o in outputs)
