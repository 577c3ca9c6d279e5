"""Structured pruning benchmark: memjax on ResNet-56, and Torch-Pruning on the same network.

    python -m experiments.benchmarks.pruning                  # writes runs/benchmarks/pruning/
    python -m experiments.benchmarks.pruning --repeats 10 --ratios 0,0.5

1. **Pipeline time** on ResNet-56 (CIFAR, option-A shortcuts, 32×32): Beta-Rank scoring of every
   conv from 512 calibration images (paper mode, chunks of 128), tracing the coupled groups
   (``trace_groups``), and materialising at ratio 0.5 (``materialize``) — the first call
   (with compilation) and a second one.
2. **Latency against FLOPs** over global pruning ratios 0–0.8 (every prunable group, the
   residual stream included, L1 scores): XLA FLOPs of the compiled forward, parameters, and the
   median latency at batch 1 and 64 of each pruned network against the dense one, timed in
   interleaved rounds (:func:`memjax.pruning.measure_latencies`).
3. **Torch-Pruning** (DepGraph, ``torch-pruning`` 1.6 with torch 2.13 CPU, in the benchmark-only
   environment ``--torch-python``, default ``/work/venvs/bench/bin/python``): the same ResNet-56
   pruned at one ratio with ``MagnitudePruner`` (L1), its MACs (``count_ops_and_params``) and
   latency, dense and pruned, beside memjax's at the same ratio. Neither package is a memjax
   dependency; without the environment this part is skipped.

Writes ``results.md``, ``summary.json`` and ``latency_vs_flops.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from memjax.models.cnn import resnet56
from memjax.pruning import (
    count_params,
    group_scores,
    masks_from_scores,
    materialize,
    measure_latencies,
    score_layers,
    trace_groups,
    xla_flops,
)
from memjax.train import describe_machine, plot_lines, write_results_table

TORCH_SCRIPT = r"""
import json, sys, time, statistics
import torch, torch.nn as nn, torch.nn.functional as F, torch_pruning as tp

ratio, repeats = float(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.bn1 = nn.BatchNorm2d(cout)
        s.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(cout)
        s.down, s.pad = stride != 1 or cin != cout, (cout - cin) // 2

    def forward(s, x):
        y = s.bn2(s.conv2(F.relu(s.bn1(s.conv1(x)))))
        if s.down:  # option A: subsample, zero-pad the channels
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, s.pad, s.pad))
        return F.relu(y + x)


class ResNet56(nn.Module):
    def __init__(s, n=9):
        super().__init__()
        s.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False); s.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for i, w in enumerate((16, 32, 64)):
            for b in range(n):
                blocks.append(Block(cin, w, 2 if b == 0 and i > 0 else 1)); cin = w
        s.layers = nn.Sequential(*blocks); s.fc = nn.Linear(64, 10)

    def forward(s, x):
        return s.fc(s.layers(F.relu(s.bn(s.conv(x)))).mean((2, 3)))


def latency(model, b):
    x = torch.randn(b, 3, 32, 32)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter(); model(x); times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


model = ResNet56().eval()
example = torch.randn(1, 3, 32, 32)
macs, params = tp.utils.count_ops_and_params(model, example)
out = {"threads": torch.get_num_threads(), "dense": {"macs": macs, "params": params,
       "ms b=1": latency(model, 1), "ms b=64": latency(model, 64)}}
t = time.perf_counter()
importance = tp.importance.MagnitudeImportance(p=1)
pruner = tp.pruner.MagnitudePruner(model, example, importance=importance, pruning_ratio=ratio,
                                   ignored_layers=[model.fc])
pruner.step()
prune_s = time.perf_counter() - t
macs, params = tp.utils.count_ops_and_params(model, example)
out["pruned"] = {"macs": macs, "params": params, "ms b=1": latency(model, 1),
                 "ms b=64": latency(model, 64), "prune_s": prune_s}
print(json.dumps(out))
"""


def timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(out))
    return out, time.perf_counter() - start


def random_variables(net, seed=0):
    """He-scaled random params and positive running variances (a trained-looking network)."""
    rng = np.random.default_rng(seed)

    def fill(path, s):
        v = rng.normal(size=s.shape) / np.sqrt(max(1, int(np.prod(s.shape[:-1]))))
        if getattr(path[-1], "name", None) == "var" or getattr(path[-1], "key", None) == "var":
            v = np.abs(v) + 0.5
        return jnp.asarray(v, s.dtype)

    params = jax.tree_util.tree_map_with_path(
        fill, jax.eval_shape(net.init_params, jax.random.key(0))
    )
    state = jax.tree_util.tree_map_with_path(fill, jax.eval_shape(net.init_state))
    return params, state


def pipeline_times(net, params, state, calib):
    def fn(p, s, x):
        return net.apply(p, s, x, train=False)[0]

    layers = net.conv_layers()[:-1]
    rows = []
    for attempt in ("first (compiles)", "second"):
        scores, t_score = timed(
            lambda: score_layers("beta_rank", lambda p, x: fn(p, state, x), params, calib, layers)
        )
        groups, t_group = timed(lambda: trace_groups(fn, params, calib[:1], model_state=state))
        table = group_scores(scores, groups)
        masks = masks_from_scores(table, groups, ratio=0.5)
        _, t_mat = timed(
            lambda g=groups, m=masks: materialize(net, params, g, m, model_state=state)[1]
        )
        rows.append(
            {
                "call": attempt,
                "score s (Beta-Rank, 512 images)": t_score,
                "group s (trace_groups)": t_group,
                "materialise s (ratio 0.5)": t_mat,
            }
        )
    return rows, groups, table


def latency_rows(net, params, state, groups, table, ratios, repeats):
    one = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    models = {}
    for r in ratios:
        if r == 0:
            models[r] = (net, params, state)
        else:
            masks = masks_from_scores(table, groups, ratio=r)
            models[r] = materialize(net, params, groups, masks, model_state=state)

    def call(spec, s):
        return lambda p, x: spec.apply(p, s, x, train=False)[0]

    flops = {r: xla_flops(call(m[0], m[2]), m[1], one) for r, m in models.items()}
    lat = {}
    for b in (1, 64):
        x = jax.random.normal(jax.random.key(0), (b, 32, 32, 3))
        lat[b] = measure_latencies(
            {r: (call(m[0], m[2]), (m[1], x)) for r, m in models.items()}, repeats=repeats
        )
    rows = []
    for r, m in models.items():
        rows.append(
            {
                "ratio": r,
                "MFLOPs (XLA)": flops[r] / 1e6,
                "params": count_params(m[1]),
                "FLOPs fraction": flops[r] / flops[0],
                "latency fraction b=64": lat[64][r].median_s / lat[64][0].median_s,
                "latency fraction b=1": lat[1][r].median_s / lat[1][0].median_s,
                "ms b=64": lat[64][r].median_s * 1e3,
                "ms b=1": lat[1][r].median_s * 1e3,
            }
        )
    return rows


def torch_rows(python: str, ratio: float, repeats: int, memjax_rows):
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(TORCH_SCRIPT)
    done = subprocess.run(
        [python, f.name, str(ratio), str(repeats)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    Path(f.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"--torch-python: the Torch-Pruning run failed:\n{done.stderr[-2000:]}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    mj = {r["ratio"]: r for r in memjax_rows}
    rows = []
    for name, key in (("dense", 0.0), ("pruned", ratio)):
        t = res[name]
        rows.append(
            {
                "network": f"{name} (ratio {key})",
                "Torch-Pruning MMACs (thop-style)": t["macs"] / 1e6,
                "Torch-Pruning params": t["params"],
                "torch ms b=1": t["ms b=1"],
                "torch ms b=64": t["ms b=64"],
                "memjax MFLOPs (XLA)": mj[key]["MFLOPs (XLA)"],
                "memjax params": mj[key]["params"],
                "memjax ms b=1": mj[key]["ms b=1"],
                "memjax ms b=64": mj[key]["ms b=64"],
            }
        )
    return rows, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/benchmarks/pruning"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--ratios", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    ap.add_argument("--torch-ratio", type=float, default=0.5)
    ap.add_argument("--torch-python", default="/work/venvs/bench/bin/python")
    args = ap.parse_args(argv)
    ratios = [float(r) for r in args.ratios.split(",")]
    if 0.0 not in ratios:
        ratios = [0.0, *ratios]
    if args.torch_ratio not in ratios:
        ratios.append(args.torch_ratio)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    net = resnet56()
    params, state = random_variables(net)
    calib = jax.random.normal(jax.random.key(1), (512, 32, 32, 3))
    pipe, groups, table = pipeline_times(net, params, state, calib)
    print(write_results_table(None, pipe, float_format=".3g"), flush=True)
    lat = latency_rows(net, params, state, groups, table, sorted(ratios), args.repeats)
    print(write_results_table(None, lat, float_format=".3g"), flush=True)
    text = write_results_table(None, pipe, title="memjax pipeline on ResNet-56", float_format=".3g")
    text += "\n" + write_results_table(
        None,
        lat,
        title="Latency against FLOPs (ResNet-56, 32x32, global ratio, every prunable group)",
        float_format=".3g",
    )
    summary = {"pipeline": pipe, "latency": lat}
    if Path(args.torch_python).exists():
        trows, raw = torch_rows(args.torch_python, args.torch_ratio, args.repeats, lat)
        text += "\n" + write_results_table(
            None,
            trows,
            title=f"Torch-Pruning vs memjax at ratio {args.torch_ratio} "
            f"(torch {raw['threads']} threads; "
            f"Torch-Pruning step {raw['pruned']['prune_s']:.2f} s)",
            float_format=".3g",
        )
        summary["torch"] = trows
    else:
        text += f"\nTorch-Pruning skipped: {args.torch_python} not found.\n"
    text += (
        f"\n- **machine**: {describe_machine()}; shared 2-core CPU under other engineers' "
        f"load\n- **repeats**: {args.repeats} (median), interleaved rounds\n"
        f"- **wall time**: {time.perf_counter() - t0:.0f} s\n"
    )
    (args.out / "results.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    xs = [r["ratio"] for r in lat]
    plot_lines(
        args.out / "latency_vs_flops.png",
        {
            "FLOPs (XLA) / dense": (xs, [r["FLOPs fraction"] for r in lat]),
            "latency / dense, batch 64": (xs, [r["latency fraction b=64"] for r in lat]),
            "latency / dense, batch 1": (xs, [r["latency fraction b=1"] for r in lat]),
        },
        xlabel="global pruning ratio",
        ylabel="fraction of the dense network",
        title="ResNet-56 after surgery: measured latency vs FLOPs (CPU)",
    )
    print(text)
    return summary


if __name__ == "__main__":
    main()
