"""Data parallelism on 8 forced CPU host devices equals one device (run in a subprocess, since
XLA_FLAGS must be set before jax initialises)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = r"""
import json, sys
from pathlib import Path
import jax, numpy as np
from memjax.train import data_mesh, shard_batch, train
from mlp_task import MLPConfig, task

assert jax.device_count() == 8, jax.devices()
out = Path(sys.argv[1])
cfg = MLPConfig(steps=8, log_every=1, eval_every=4, checkpoint_every=4)

def run(config, name, **kw):
    return train(config, **task(config), out_dir=out / name, progress=False, **kw)

def losses(result):
    return [r["loss"] for r in result.history if r["split"] == "train"]

single = run(cfg, "single")
dp = run(cfg, "dp", data_parallel=True)
# resume of a sharded run: 5 steps, then on to 8 from the step-4 checkpoint
run(MLPConfig(**{**cfg.__dict__, "steps": 5}), "dp_resumed", data_parallel=True)
dp_resumed = run(cfg, "dp_resumed", data_parallel=True, resume=True)

mesh = data_mesh()
batch = shard_batch(task(cfg)["get_batch"](0), mesh)
try:
    shard_batch({"x": np.zeros((12, 4), np.float32)}, mesh)
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({
    "single": losses(single),
    "dp": losses(dp),
    "dp_resumed": losses(dp_resumed),
    "eval_single": [r["mse"] for r in single.history if r["split"] == "eval"],
    "eval_dp": [r["mse"] for r in dp.history if r["split"] == "eval"],
    "batch_shards": len(batch["x"].sharding.device_set),
    "param_devices": len(jax.tree.leaves(dp.params)[0].sharding.device_set),
    "resumed_equal": all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(dp.params), jax.tree.leaves(dp_resumed.params))
    ),
    "error": error,
}))
"""


def test_eight_devices_match_one(tmp_path):
    env = dict(os.environ)
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    env["XLA_FLAGS"] = " ".join([*flags, "--xla_force_host_platform_device_count=8"])
    env["JAX_PLATFORMS"] = "cpu"
    env["CI"] = "1"
    here = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [here, env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["batch_shards"] == 8 and res["param_devices"] == 8
    assert len(res["single"]) == 8
    np.testing.assert_allclose(res["dp"], res["single"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res["eval_dp"], res["eval_single"], rtol=1e-5, atol=1e-6)
    assert res["dp_resumed"] == res["dp"]  # resume of a sharded run is exact
    assert res["resumed_equal"]
    assert "leading size 12" in res["error"] and "8" in res["error"]
    assert "['x']" in res["error"]
