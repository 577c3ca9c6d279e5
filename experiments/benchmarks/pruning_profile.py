"""Per-conv profile for the pruning benchmark: which XLA:CPU kernel runs each conv, and what
:class:`memjax.nn.Conv2D` ``impl="wide"`` buys on the narrow ones.

    python -m experiments.benchmarks.pruning_profile          # prints all three tables
    python -m experiments.benchmarks.pruning_profile --parts widths --repeats 15

``conv_profile``: every distinct 3×3 conv of ResNet-56 at 32×32, batch 64, at the dense widths
(16/32/64) and the ratio-0.5 widths (8/16/32): the kernel XLA:CPU picks (a YNNPACK fusion or the
Eigen convolution, read from the compiled HLO) for ``impl="xla"`` and ``"wide"``, and the median
wall and CPU time of each. ``wide_grid``: narrow convs (at most 16 channels on both sides) over
input sizes 8/16/32, strides 1/2 and channel pairs, ``"wide"`` against ``"xla"`` in CPU time: the
measurement behind ``impl="auto"`` (:func:`memjax.nn.conv2d.wide_pays`). ``width_grid``: convs
whose input is wider than 16 (C_in 32 or 64) over output widths 9–64 and sizes 4–32, each at
its own width (``"xla"``) and with the filters zero-padded to the next multiple of 8
(``"pad8"``) and 16 (``"pad16"``), in CPU time: the measurement behind ``"auto"``'s padding of
pruned widths (:func:`memjax.nn.conv2d.computed_width`).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from memjax.nn import Conv2D
from memjax.nn.conv2d import computed_width, wide_pays
from memjax.pruning import measure_latencies
from memjax.train import write_results_table


def conv_layer(cin: int, cout: int, stride: int, impl: str) -> Conv2D:
    return Conv2D(cin, cout, 3, stride=stride, padding=1, use_bias=False, impl=impl)


def conv_backend(layer: Conv2D, x, params) -> str:
    """Which XLA:CPU kernel runs this conv: a YNNPACK fusion or the Eigen convolution."""
    text = jax.jit(layer.apply).lower(params, x).compile().as_text()
    return "YNNPACK" if "ynn_fusion" in text else "Eigen"


def _inputs(rng, batch, hw, cin, cout):
    x = jnp.asarray(rng.normal(size=(batch, hw, hw, cin)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) * 0.1, jnp.float32)
    return x, {"kernel": k}


def conv_profile(repeats, batch=64):
    """Every distinct conv of ResNet-56 at 32x32, dense (16/32/64) and ratio-0.5 (8/16/32)."""
    shapes = []
    for scale, label in ((1, "dense"), (2, "ratio 0.5")):
        w = [16 // scale, 32 // scale, 64 // scale]
        shapes += [
            (label, "stem", 32, 3, w[0], 1),
            (label, "stage 1 (x18)", 32, w[0], w[0], 1),
            (label, "stage 2 first conv1", 32, w[0], w[1], 2),
            (label, "stage 2 (x17)", 16, w[1], w[1], 1),
            (label, "stage 3 first conv1", 16, w[1], w[2], 2),
            (label, "stage 3 (x17)", 8, w[2], w[2], 1),
        ]
    rng = np.random.default_rng(0)
    calls, info = {}, {}
    for label, where, hw, cin, cout, stride in shapes:
        x, params = _inputs(rng, batch, hw, cin, cout)
        flops = 2 * batch * (hw // stride) ** 2 * 9 * cin * cout
        kernels = {}
        for impl in ("xla", "wide"):
            layer = conv_layer(cin, cout, stride, impl)
            calls[f"{label}: {where} {impl}"] = (jax.jit(layer.apply), (params, x))
            kernels[impl] = conv_backend(layer, x, params)
        info[f"{label}: {where}"] = (label, where, f"{hw}x{hw} {cin}->{cout} s{stride}", kernels)
        info[f"{label}: {where}"] += (flops, wide_pays(cin, cout))
    lat = measure_latencies(calls, repeats=repeats)
    rows = []
    for name, (label, where, shape, kernels, flops, auto) in info.items():
        m, w = lat[f"{name} xla"], lat[f"{name} wide"]
        rows.append(
            {
                "network": label,
                "conv": where,
                "input, C_in->C_out, stride": shape,
                "XLA:CPU kernel, xla": kernels["xla"],
                "ms": m.median_s * 1e3,
                "CPU ms": m.cpu_s * 1e3,
                "GFLOP/s (CPU time)": flops / m.cpu_s / 1e9,
                "kernel, wide": kernels["wide"],
                "CPU ms, wide": w.cpu_s * 1e3,
                "wide / xla CPU time": w.cpu_s / m.cpu_s,
                "auto picks": "wide" if auto else "xla",
            }
        )
    return rows


GRID_CHANNELS = ((1, 16), (3, 16), (4, 16), (4, 4), (6, 6), (8, 8), (12, 12))
GRID_CHANNELS += ((16, 6), (6, 16), (16, 8), (8, 16), (16, 16), (5, 16), (9, 16), (15, 15))


def wide_grid(repeats, batch=64, sizes=(8, 16, 32)):
    """Narrow convs, ``impl="wide"`` against ``"xla"`` in CPU time (interleaved, median)."""
    rng = np.random.default_rng(1)
    rows = []
    for hw in sizes:
        for stride in (1, 2):
            if stride == 2 and hw == 8:
                continue
            calls = {}
            for cin, cout in GRID_CHANNELS:
                x, params = _inputs(rng, batch, hw, cin, cout)
                for impl in ("xla", "wide"):
                    layer = conv_layer(cin, cout, stride, impl)
                    calls[(cin, cout, impl)] = (jax.jit(layer.apply), (params, x))
            lat = measure_latencies(calls, repeats=repeats)
            for cin, cout in GRID_CHANNELS:
                xla, wide = lat[(cin, cout, "xla")], lat[(cin, cout, "wide")]
                rows.append(
                    {
                        "input": f"{hw}x{hw} s{stride}",
                        "C_in->C_out": f"{cin}->{cout}",
                        "CPU ms, xla": xla.cpu_s * 1e3,
                        "CPU ms, wide": wide.cpu_s * 1e3,
                        "wide / xla": wide.cpu_s / xla.cpu_s,
                        "auto picks": "wide" if wide_pays(cin, cout) else "xla",
                    }
                )
    return rows


def grid_summary(rows) -> str:
    """The range of ``wide / xla`` over the shapes ``auto`` pads and over those it leaves."""
    out = []
    for pick in ("wide", "xla"):
        r = [row["wide / xla"] for row in rows if row["auto picks"] == pick]
        if r:
            out.append(
                f"auto picks {pick}: wide / xla CPU time {min(r):.2f}-{max(r):.2f} "
                f"(median {np.median(r):.2f}, {len(r)} shapes)"
            )
    return "; ".join(out)


WIDTH_OUTS = (12, 13, 20, 24, 25, 26, 28, 36, 40, 44, 52, 56, 60)


def width_grid(repeats, batch=64, sizes=(4, 8, 16, 32), ins=(32, 64), outs=WIDTH_OUTS):
    """Wide-input convs (stride 1) at their own width against the filters padded to the next
    multiple of 8 and 16, CPU time (interleaved, median); what ``"auto"`` computes."""
    rng = np.random.default_rng(2)
    rows = []
    for hw in sizes:
        calls = {}
        for cin in ins:
            for cout in outs:
                if cout > cin:
                    continue
                x, params = _inputs(rng, batch, hw, cin, cout)
                for impl in ("xla", "pad8", "pad16"):
                    width = computed_width(cin, cout, impl)
                    if (cin, cout, width) not in calls:
                        layer = conv_layer(cin, cout, 1, impl)
                        calls[(cin, cout, width)] = (jax.jit(layer.apply), (params, x))
        lat = measure_latencies(calls, repeats=repeats)
        for cin, cout, width in calls:
            if width != cout:
                continue
            base = lat[(cin, cout, cout)].cpu_s
            ratio = {i: lat[(cin, cout, computed_width(cin, cout, i))].cpu_s / base for i in (
                "pad8", "pad16")}  # fmt: skip
            rows.append(
                {
                    "input": f"{hw}x{hw}",
                    "C_in->C_out": f"{cin}->{cout}",
                    "CPU ms, own width": base * 1e3,
                    "pad8 / own": ratio["pad8"],
                    "pad16 / own": ratio["pad16"],
                    "auto computes": computed_width(cin, cout, "auto"),
                }
            )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--parts", default="profile,wide,widths", help="comma list of tables")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    if "profile" in parts:
        rows = conv_profile(args.repeats)
        print(write_results_table(None, rows, title="ResNet-56 convs", float_format=".3g"))
    if "wide" in parts:
        grid = wide_grid(args.repeats)
        print(write_results_table(None, grid, title="wide vs xla", float_format=".3g"))
        print(grid_summary(grid))
    if "widths" in parts:
        rows = width_grid(args.repeats)
        print(write_results_table(None, rows, title="padded widths", float_format=".3g"))


if __name__ == "__main__":
    main()
