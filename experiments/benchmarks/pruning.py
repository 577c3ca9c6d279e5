"""Structured pruning benchmark: memjax on ResNet-56, and Torch-Pruning on the same network.

    python -m experiments.benchmarks.pruning                  # writes runs/benchmarks/pruning/
    python -m experiments.benchmarks.pruning --repeats 10 --ratios 0,0.5

1. **Pipeline time** on ResNet-56 (CIFAR, option-A shortcuts, 32×32): Beta-Rank scoring of every
   conv from 512 calibration images (paper mode, chunks of 128), tracing the coupled groups
   (``trace_groups``), and materialising at ratio 0.5 (``materialize``) — the first call
   (with compilation) and a second one.
2. **Where the time goes**: every distinct conv shape of ResNet-56 at 32×32, batch 64, dense
   widths (16/32/64) and ratio-0.5 widths (8/16/32): which XLA:CPU kernel runs it (YNNPACK
   fusion or the Eigen convolution, read from the compiled HLO), median wall and CPU time.
3. **Latency against FLOPs** over global pruning ratios (every prunable group, the residual
   stream included, Beta-Rank scores, widths rounded up to ``--round-to``), with BatchNorm as
   trained and folded into the convs (``materialize(..., fold_bn=True)``): XLA FLOPs of the
   compiled forward, parameters, median wall and CPU time at batch 1 and 64 against the dense
   network, timed in interleaved rounds (:func:`memjax.pruning.measure_latencies`). Then the
   same for **VGG-16-BN** (CIFAR, 32×32; no residual coupling; folded BN, L1 scores).
4. **The experiment's network** (ResNet-20, 1 channel, 16×16, batch 64: the Beta-Rank cpu
   preset): the mids-only selections the experiment uses and selections that also prune the
   residual stream stage by stage, BN as trained and folded.
5. **Torch-Pruning** (DepGraph, ``torch-pruning`` 1.6 with torch 2.13 CPU, in the benchmark-only
   environment ``--torch-python``, default ``/work/venvs/bench/bin/python``): ResNet-56 pruned
   with ``MagnitudePruner`` (L1) at ``--torch-ratio``; memjax's ratio is then chosen so that
   both keep the same fraction of conv/linear MACs (counted as thop does), and both latencies
   are printed. Neither package is a memjax dependency; without the environment this part is
   skipped.

Writes ``results.md``, ``summary.json`` and ``latency_vs_flops.png``. ``--quick`` shrinks every
part (a smoke run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.pruning_profile import conv_profile, grid_summary, wide_grid
from memjax.models.cnn import VGG, ResNet, resnet56
from memjax.pruning import (
    count_params,
    group_scores,
    l1_scores,
    masks_from_scores,
    materialize,
    measure_latencies,
    nested_mask,
    score_layers,
    trace_groups,
    xla_flops,
)
from memjax.train import describe_machine, plot_lines, write_results_table

TORCH_PEER = Path(__file__).with_name("pruning_torch_peer.py")  # run by the benchmark venv's python


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
            lambda: score_layers(
                "beta_rank",
                lambda p, x: fn(p, state, x),
                params,
                calib,
                layers,
                min_batch=min(512, len(calib)),
            )
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


def call_state(spec, state):
    """``(params, state, x) -> logits`` in evaluation mode (for :func:`trace_groups`)."""
    return lambda p, s, x: spec.apply(p, s, x, train=False)[0]


def call(spec, state):
    """The evaluation-mode logits of ``spec`` with its ``state`` closed over."""
    return lambda p, x: spec.apply(p, state, x, train=False)[0]


def measure(models, image, repeats, *, warmup=3, batches=(1, 64)):
    """XLA FLOPs per image and interleaved latency of ``{label: (spec, params, state)}``."""
    one = jax.ShapeDtypeStruct((1, *image), jnp.float32)
    flops = {
        k: xla_flops(call(m[0], m[2]), m[1], one)
        for k, m in models.items()
        if " | " not in k or k.endswith(" | xla")  # padded impls: XLA counts the padding
    }
    lat = {}
    for b in batches:
        x = jax.random.normal(jax.random.key(0), (b, *image))
        calls = {k: (call(m[0], m[2]), (m[1], x)) for k, m in models.items()}
        lat[b] = measure_latencies(calls, repeats=repeats, warmup=warmup)
    return flops, lat


def cost_table(models, refs, flops, lat, describe):
    """One row per network: FLOPs, params, wall and CPU time, each against ``refs[label]``.

    FLOPs are counted with ``impl="xla"`` (``flops`` keyed by the ``| xla`` label): ``"wide"``
    pads narrow convs, which XLA's cost analysis would count."""
    rows = []
    for k, m in models.items():
        ref = refs[k]
        fk, fr = (x.rsplit(" | ", 1)[0] + " | xla" if " | " in x else x for x in (k, ref))
        f = flops[fk] / flops[fr]
        row = {**describe(k, m[0]), "MFLOPs (XLA)": flops[fk] / 1e6, "params": count_params(m[1])}
        row["FLOPs / dense"] = f
        for b in sorted(lat):
            row[f"latency / dense b={b}"] = lat[b][k].median_s / lat[b][ref].median_s
        big = max(lat)
        row[f"CPU time / dense b={big}"] = lat[big][k].cpu_s / lat[big][ref].cpu_s
        cut = 1 - row[f"latency / dense b={big}"]
        row[f"latency cut / FLOPs cut b={big}"] = cut / (1 - f) if f < 1 else float("nan")
        cpu_cut = 1 - row[f"CPU time / dense b={big}"]
        row[f"CPU-time cut / FLOPs cut b={big}"] = cpu_cut / (1 - f) if f < 1 else float("nan")
        for b in sorted(lat):
            row[f"ms b={b}"] = lat[b][k].median_s * 1e3
        row[f"CPU ms b={big}"] = lat[big][k].cpu_s * 1e3
        rows.append(row)
    return rows


def with_folded(models, impls=("xla",)):
    """Each network as trained and with BatchNorm folded in (label + " folded"), with each conv
    implementation in ``impls`` (label + " | <impl>"; the same arrays)."""
    out = {}
    for k, (spec, p, st) in models.items():
        for label, (sp, pp, ss) in ((k, (spec, p, st)), (k + " folded", spec.folded(p, st))):
            for impl in impls:
                out[f"{label} | {impl}"] = (dataclasses.replace(sp, conv_impl=impl), pp, ss)
    return out


def split_label(k: str) -> tuple[str, str, str]:
    """``(selection, BN, conv impl)`` of a :func:`with_folded` label."""
    base, impl = k.rsplit(" | ", 1)
    folded = base.endswith(" folded")
    return base.removesuffix(" folded"), "folded" if folded else "as trained", impl


def dense_refs(models, dense: str) -> dict:
    """Each network's reference: the dense one with the same BN form and conv impl."""
    refs = {}
    for k in models:
        _, bn, impl = split_label(k)
        refs[k] = f"{dense}{' folded' if bn == 'folded' else ''} | {impl}"
    return refs


def resnet_widths(spec: ResNet) -> str:
    n = spec.blocks_per_stage
    stem = spec.stem_width or spec.widths[0]
    mids = "/".join(str(spec.mid_width(b)) for b in range(0, spec.num_blocks, n))
    blocks = "/".join(str(spec.block_width(b)) for b in range(0, spec.num_blocks, n))
    return f"stem {stem}; mids {mids}; stream {blocks}"


def latency_rows(net, params, state, groups, table, ratios, repeats, round_to, impls):
    """ResNet-56 at global ratios (every prunable group), BN as trained and folded."""
    models = {}
    for r in ratios:
        if r == 0:
            models["0"] = (net, params, state)
        else:
            masks = masks_from_scores(table, groups, ratio=r, round_to=round_to)
            models[f"{r:g}"] = materialize(net, params, groups, masks, model_state=state)
    # the stream group pruned stage by stage to the mids' widths (nested_mask)
    stream = next(i for i, g in enumerate(groups) if "params/stem/kernel" in g.producers)
    for r, widths in ((0.5, (8, 16, 32)),):
        masks = masks_from_scores(table, groups, ratio=r, round_to=round_to)
        masks[stream] = nested_mask(
            groups[stream], table[stream], widths, stages=net.stream_stages()
        )
        label = f"{r:g}, stream {'/'.join(map(str, widths))}"
        models[label] = materialize(net, params, groups, masks, model_state=state)
    models = with_folded(models, impls)
    flops, lat = measure(models, (32, 32, 3), repeats)
    refs = dense_refs(models, "0")

    def describe(k, spec):
        sel, bn, impl = split_label(k)
        return {
            "ratio": sel,
            "BN": bn,
            "conv impl": impl,
            "widths (first block of each stage)": resnet_widths(spec),
        }

    return cost_table(models, refs, flops, lat, describe)


def vgg_rows(ratios, repeats, round_to, impls=("xla",)):
    """VGG-16-BN (CIFAR, 32x32) at global ratios over its 13 convs, L1 scores, folded BN; each
    network with each conv impl, against the dense one with the same impl."""
    net = VGG()
    params, state = random_variables(net)
    groups = trace_groups(
        lambda p, s, x: net.apply(p, s, x, train=False)[0],
        params,
        jnp.zeros((1, 32, 32, 3)),
        model_state=state,
    )
    scores = {
        f"params/conv{k}/kernel": l1_scores(params[f"conv{k}"]["kernel"])
        for k in range(len(net.widths))
    }
    table = group_scores(scores, groups)
    convs = {f"params/conv{k}/kernel" for k in range(len(net.widths))}
    models = {}
    for r in ratios:
        if r == 0:
            models["0"] = net.folded(params, state)
            continue
        ratio = {g.name: r for g in groups if g.prunable and set(g.producers) & convs}
        masks = masks_from_scores(table, groups, ratio=ratio, round_to=round_to)
        small = materialize(net, params, groups, masks, model_state=state, fold_bn=True)
        models[f"{r:g}"] = small
    models = {
        f"{k} | {impl}": (dataclasses.replace(m[0], conv_impl=impl), *m[1:])
        for k, m in models.items()
        for impl in impls
    }
    flops, lat = measure(models, (32, 32, 3), repeats, warmup=1)

    def describe(k, spec):
        ratio, impl = k.rsplit(" | ", 1)
        widths = "/".join(map(str, spec.widths))
        return {"ratio": ratio, "BN": "folded", "conv impl": impl, "conv widths": widths}

    refs = {k: "0 | " + k.rsplit(" | ", 1)[1] for k in models}
    return cost_table(models, refs, flops, lat, describe)


# (label, mid ratio, round_to, stream widths per stage or None): the experiment's cpu preset
RESNET20_SELECTIONS = (
    ("mids 0.36 (experiment, smaller cut)", 0.36, None, None),
    ("mids 0.6 (experiment, larger cut)", 0.6, None, None),
    ("mids 0.6 round 8", 0.6, 8, None),
    ("mids 0.7 round 8", 0.7, 8, None),
    ("mids 0.6 round 16", 0.6, 16, None),
    ("mids 0.5, stream 8/16/32", 0.5, None, (8, 16, 32)),
    ("mids 0.75, stream 8/16/32", 0.75, None, (8, 16, 32)),
)


def resnet20_rows(repeats, impls=("xla",), selections=RESNET20_SELECTIONS):
    """The experiment's ResNet-20 (1 channel, 3 classes) at 16x16: mids-only and stream cuts."""
    net = ResNet(3, (16, 32, 64), num_classes=3, in_channels=1)
    params, state = random_variables(net)
    groups = trace_groups(
        lambda p, s, x: net.apply(p, s, x, train=False)[0],
        params,
        jnp.zeros((1, 8, 8, 1)),
        model_state=state,
    )
    scores = {
        "params/" + "/".join(map(str, path)): l1_scores(params_at(params, path))
        for _, path, _ in net.conv_layers()
    }
    table = group_scores(scores, groups)
    stream = next(g for g in groups if "params/stem/kernel" in g.producers)
    models = {"dense": (net, params, state)}
    for label, mid, round_to, widths in selections:
        ratio = {g.name: (0.0 if g is stream else mid) for g in groups if g.prunable}
        masks = masks_from_scores(table, groups, ratio=ratio, round_to=round_to)
        if widths is not None:
            i = groups.index(stream)
            masks[i] = nested_mask(stream, table[i], widths, stages=net.stream_stages())
        models[label] = materialize(net, params, groups, masks, model_state=state)
    models = with_folded(models, impls)
    flops, lat = measure(models, (16, 16, 1), repeats, batches=(64,))
    refs = dense_refs(models, "dense")

    def describe(k, spec):
        sel, bn, impl = split_label(k)
        return {
            "selection": sel,
            "BN": bn,
            "conv impl": impl,
            "widths (first block of each stage)": resnet_widths(spec),
        }

    return cost_table(models, refs, flops, lat, describe)


def params_at(params, path):
    for key in path:
        params = params[key]
    return params


def conv_macs(spec: ResNet, hw: int = 32) -> int:
    """Multiply-accumulates of the convs and the fc of a CIFAR ResNet, padded taps included
    (the count thop and Torch-Pruning's ``count_ops_and_params`` make)."""
    stem = spec.stem_width or spec.widths[0]
    macs = hw * hw * 9 * spec.in_channels * stem
    for b in range(spec.num_blocks):
        side = hw // 2 ** spec.stage(b)
        macs += side * side * 9 * (spec.block_in(b) * spec.mid_width(b))
        macs += side * side * 9 * (spec.mid_width(b) * spec.block_width(b))
    return macs + spec.block_width(spec.num_blocks - 1) * spec.num_classes


def matched_ratio(net, params, state, groups, table, target: float, steps: int = 12):
    """The global ratio whose materialised network keeps ``target`` of the dense MACs
    (bisection; MACs fall as the ratio grows)."""
    dense = conv_macs(net)

    def fraction(r):
        masks = masks_from_scores(table, groups, ratio=r)
        return conv_macs(materialize(net, params, groups, masks, model_state=state)[0]) / dense

    lo, hi = 0.0, 0.95
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fraction(mid) > target else (lo, mid)
    best = min((lo, hi), key=lambda r: abs(fraction(r) - target))
    return best, fraction(best)


def torch_rows(python: str, ratio: float, repeats: int, memjax_net):
    """Torch-Pruning at ``ratio``; memjax at the ratio keeping the same MACs fraction."""
    done = subprocess.run(
        [python, str(TORCH_PEER), str(ratio), str(repeats)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"--torch-python: the Torch-Pruning run failed:\n{done.stderr[-2000:]}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    net, params, state, groups, table = memjax_net
    target = res["pruned"]["macs"] / res["dense"]["macs"]
    r, got = matched_ratio(net, params, state, groups, table, target)
    masks = masks_from_scores(table, groups, ratio=r)
    models = {"dense": (net, params, state)}
    models["pruned"] = materialize(net, params, groups, masks, model_state=state)
    flops, lat = measure(models, (32, 32, 3), repeats)
    rows = []
    for name, mj_ratio in (("dense", 0.0), ("pruned", r)):
        t, spec = res[name], models[name][0]
        rows.append(
            {
                "network": name,
                "Torch-Pruning ratio": 0.0 if name == "dense" else ratio,
                "Torch-Pruning MMACs": t["macs"] / 1e6,
                "Torch-Pruning params": t["params"],
                "torch ms b=1": t["ms b=1"],
                "torch ms b=64": t["ms b=64"],
                "memjax ratio": mj_ratio,
                "memjax MMACs": conv_macs(spec) / 1e6,
                "memjax MFLOPs (XLA)": flops[name] / 1e6,
                "memjax params": count_params(models[name][1]),
                "memjax ms b=1": lat[1][name].median_s * 1e3,
                "memjax ms b=64": lat[64][name].median_s * 1e3,
                "memjax widths": resnet_widths(spec),
            }
        )
    res["matched"] = {"target MACs fraction": target, "memjax ratio": r, "memjax fraction": got}
    return rows, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/benchmarks/pruning"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--ratios", default="0,0.2,0.4,0.5,0.6,0.8")
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument("--vgg-ratios", default="0,0.2,0.37,0.5")
    ap.add_argument("--vgg-repeats", type=int, default=5)
    ap.add_argument("--torch-ratio", type=float, default=0.5)
    ap.add_argument("--torch-python", default="/work/venvs/bench/bin/python")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument(
        "--skip",
        default="",
        help="comma list of parts to skip: pipeline,profile,wide,latency,resnet20,vgg,torch",
    )
    ap.add_argument("--impls", default="xla,auto", help="Conv2D impls of the latency parts")
    args = ap.parse_args(argv)
    impls = tuple(args.impls.split(","))
    ratios = sorted({0.0, *(float(r) for r in args.ratios.split(","))})
    vgg_ratios = sorted({0.0, *(float(r) for r in args.vgg_ratios.split(","))})
    skip = set(filter(None, args.skip.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    net = resnet56()
    params, state = random_variables(net)
    calib = jax.random.normal(jax.random.key(1), (64 if args.quick else 512, 32, 32, 3))
    if "pipeline" in skip:  # L1 scores: latency depends on the widths only
        groups = trace_groups(call_state(net, state), params, calib[:1], model_state=state)
        scores = {
            "params/" + "/".join(map(str, path)): l1_scores(params_at(params, path))
            for _, path, _ in net.conv_layers()
        }
        table, text, summary = group_scores(scores, groups), "", {}
    else:
        pipe, groups, table = pipeline_times(net, params, state, calib)
        text = write_results_table(
            None, pipe, title="memjax pipeline on ResNet-56", float_format=".3g"
        )
        print(text, flush=True)
        summary = {"pipeline": pipe}
    parts = [
        (
            "profile",
            "Every conv shape of ResNet-56 (32x32, batch 64), dense and ratio 0.5",
            lambda: conv_profile(args.repeats),
        ),
        (
            "wide",
            "Narrow convs (batch 64): impl='wide' against 'xla', CPU time",
            lambda: wide_grid(args.repeats),
        ),
        (
            "latency",
            f"ResNet-56 after surgery (32x32, global ratio, round_to={args.round_to})",
            lambda: latency_rows(
                net, params, state, groups, table, ratios, args.repeats, args.round_to, impls
            ),
        ),
        (
            "resnet20",
            "The experiment's ResNet-20 (1 channel, 16x16, batch 64)",
            lambda: resnet20_rows(args.repeats, impls),
        ),
        (
            "vgg",
            f"VGG-16-BN after surgery (32x32, folded BN, round_to={args.round_to})",
            lambda: vgg_rows(vgg_ratios, args.vgg_repeats, args.round_to, impls),
        ),
    ]
    for key, title, run in parts:
        if key in skip:
            continue
        rows = run()
        summary[key] = rows
        block = write_results_table(None, rows, title=title, float_format=".3g")
        if key == "wide":
            block += "\n" + grid_summary(rows) + "\n"
        print(block, flush=True)
        text += "\n" + block
        (args.out / "results.md").write_text(text)  # each part as it finishes
    if "torch" not in skip and Path(args.torch_python).exists():
        trows, raw = torch_rows(
            args.torch_python, args.torch_ratio, args.repeats, (net, params, state, groups, table)
        )
        m = raw["matched"]
        text += "\n" + write_results_table(
            None,
            trows,
            title=f"Torch-Pruning at ratio {args.torch_ratio} and memjax at the same MACs fraction "
            f"({m['target MACs fraction']:.3f} vs {m['memjax fraction']:.3f}; torch "
            f"{raw['threads']} threads; Torch-Pruning step {raw['pruned']['prune_s']:.2f} s)",
            float_format=".3g",
        )
        summary["torch"] = trows
        summary["torch_matched"] = m
    elif "torch" not in skip:
        text += f"\nTorch-Pruning skipped: {args.torch_python} not found.\n"
    text += (
        f"\n- **machine**: {describe_machine()}; shared 2-core CPU under other engineers' "
        f"load\n- **repeats**: {args.repeats} (median), interleaved rounds\n"
        f"- **wall time**: {time.perf_counter() - t0:.0f} s\n"
    )
    (args.out / "results.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if "latency" in summary:
        plot_curve(args.out / "latency_vs_flops.png", summary["latency"])
    print(text)
    return summary


def plot_curve(path, rows):
    """FLOPs and CPU time against the dense network (folded BN; each conv impl against the
    dense network with the same impl), and wall time for ``impl="xla"``."""
    series = {}
    impls = sorted({r["conv impl"] for r in rows}, key=lambda i: i != "xla")
    for impl in impls:
        sub = [
            r for r in rows if r["BN"] == "folded" and r["conv impl"] == impl
            and "stream" not in r["ratio"]
        ]  # fmt: skip
        xs = [float(r["ratio"]) for r in sub]
        if impl == impls[0]:
            series["FLOPs (XLA) / dense"] = (xs, [r["FLOPs / dense"] for r in sub])
            series[f"wall time / dense, b=64, impl={impl}"] = (
                xs,
                [r["latency / dense b=64"] for r in sub],
            )
        series[f"CPU time / dense, b=64, impl={impl}"] = (
            xs,
            [r["CPU time / dense b=64"] for r in sub],
        )
    plot_lines(
        path,
        series,
        xlabel="global pruning ratio",
        ylabel="fraction of the dense network",
        title="ResNet-56 after surgery, folded BN: latency vs FLOPs (CPU)",
    )


if __name__ == "__main__":
    main()
