"""WGSEF prox time against the number of groups m (groups of 9 parameters, float32).

Lines, all on the same data in the same run:

* ``jit sort``        — ``memjax.sparsity.prox_wgsef`` (the spec §6 sort-based root finder), jitted;
* ``jit bisection``   — the same operator with ``method="bisection"`` (no sort), jitted;
* ``host linear``     — ``memjax.sparsity.prox_wgsef_linear_time`` (NumPy, median of medians,
  worst-case O(n + m)), writing into a preallocated ``out=`` array with a
  ``memjax.sparsity.ProxWorkspace`` reused between repeats (the way a training loop calls it:
  no m- or n-sized array is allocated per call, so no page is faulted in afresh);
* ``jit group lasso`` — ``memjax.sparsity.prox_group_lasso``, jitted: the closed-form floor, one
  pass over the data (the ratios' denominator);
* ``numpy group lasso`` — the same closed form in NumPy with the host path's own group
  primitives (float64 squares, ``np.add.reduceat``, a broadcast scale) and the same reused
  ``out=`` array and workspace: the host path's floor, for context.

Protocol: for every m a compile (``jit(...).lower(...).compile()``, timed separately), one
warm-up call per line, then 3–7 repeats (7 unless a size's repeats exceed ``--budget``
seconds) taken round-robin over the lines (so a load spike on the
shared machine hits every line alike), ``block_until_ready`` on JAX outputs; the median is
reported. ``k = m // 10``, ``λ = 0.5``, group scales log-uniform over a factor e² so the norms
differ. Every jitted call validates its arguments (finite ``x``, ``segment_ids`` in range:
two extra reductions), as a user's call does. Fitted slopes of log wall time against log m
are given over all of ``10³ ≤ m ≤ 10⁷`` (the slope target uses this fit), and for context
over ``m ≥ 10⁵`` (the problem no longer fits in a core's L2 cache); ``ratio slope`` is the
slope of (line ÷ floor), 0 when a line scales exactly like the one-pass floor. Process CPU
time (user and system separately, all threads; ``getrusage``) is recorded beside wall time
and fitted too: on a
loaded machine wall time also counts the time spent waiting for a core, and system time the
kernel's page handling for fresh memory.

Targets (issue 10): host linear within 3× of the group-lasso prox at m = 10⁶, jitted within 5×,
fitted slope ≤ 1.1 for the host linear path. The closing line prints the measured ratios.

    python -m experiments.benchmarks.wgsef_prox            # m = 10³ … 10⁷ (a few minutes)
    python -m experiments.benchmarks.wgsef_prox --quick    # m ≤ 10⁶
    python -m experiments.benchmarks.wgsef_prox --sizes 1000 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from memjax.sparsity import ProxWorkspace, prox_group_lasso, prox_wgsef, prox_wgsef_linear_time
from memjax.sparsity._linear_time import apply_group_scale, group_squares

GROUP = 9
LAM = 0.5
FULL_SIZES = (1_000, 10_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)
QUICK_SIZES = (1_000, 10_000, 100_000, 300_000, 1_000_000)
LINES = ("jit sort", "jit bisection", "host linear", "jit group lasso", "numpy group lasso")
FLOOR = "jit group lasso"
MIN_REPEATS = 3
FIT_FROM = 1_000  # the slope target: the fit over every size, 10³ ≤ m ≤ 10⁷
FIT_BIG = 100_000  # for context: data beyond the 2 MB per-core L2


def make_problem(m: int, seed: int = 0):
    """``x`` (float32, 9m entries), sorted ``segment_ids`` (int32), ``k = m // 10``."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(-1.0, 1.0, m)).astype(np.float32)
    x = (rng.standard_normal((m, GROUP), dtype=np.float32) * scales[:, None]).ravel()
    ids = np.repeat(np.arange(m, dtype=np.int32), GROUP)
    return x, ids, max(1, m // 10)


def numpy_group_lasso(x, ids, m, lam, out=None, workspace=None):
    """Block soft thresholding with exactly the host path's group primitives (``out`` and
    ``workspace`` as in :func:`memjax.sparsity.prox_wgsef_linear_time`)."""
    sq, layout = group_squares(x, ids, m, workspace=workspace)
    nu = np.sqrt(sq, out=sq)
    scale = np.where(nu > lam, 1.0 - lam / np.where(nu > 0, nu, 1.0), 0.0)
    return apply_group_scale(x, ids, scale, layout, out, workspace)


def build_lines(x, ids, m, k):
    """Each line: (call, compile seconds or None). Jitted lines take (x, ids, k, lam) traced."""
    xj, idj = jnp.asarray(x), jnp.asarray(ids)
    kj, lj = jnp.asarray(k, jnp.int32), jnp.asarray(LAM, jnp.float32)
    jitted = {
        "jit sort": lambda a, i, kk, lam: prox_wgsef(a, i, m, kk, lam, method="sort"),
        "jit bisection": lambda a, i, kk, lam: prox_wgsef(a, i, m, kk, lam, method="bisection"),
        "jit group lasso": lambda a, i, kk, lam: prox_group_lasso(a, i, m, lam),
    }
    lines = {}
    for name, fn in jitted.items():
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(xj, idj, kj, lj).compile()
        compile_s = time.perf_counter() - t0
        lines[name] = (lambda c=compiled: c(xj, idj, kj, lj).block_until_ready(), compile_s)
    # the host lines write into preallocated results with workspaces reused between repeats
    out_lin, ws_lin = np.empty_like(x), ProxWorkspace()
    out_np, ws_np = np.empty_like(x), ProxWorkspace()
    lines["host linear"] = (
        lambda: prox_wgsef_linear_time(x, ids, m, k, LAM, out=out_lin, workspace=ws_lin),
        None,
    )
    lines["numpy group lasso"] = (
        lambda: numpy_group_lasso(x, ids, m, LAM, out=out_np, workspace=ws_np),
        None,
    )
    return {name: lines[name] for name in LINES}


def check_agreement(x, ids, m, k) -> float:
    """max |jit sort − host linear| / max |x| (the benchmark times correct code)."""
    a = np.asarray(prox_wgsef(jnp.asarray(x), jnp.asarray(ids), m, k, LAM))
    b = prox_wgsef_linear_time(x, ids, m, k, LAM)
    return float(np.max(np.abs(a - b)) / max(1e-30, float(np.max(np.abs(x)))))


def measure(m: int, repeats: int, budget_s: float) -> dict:
    x, ids, k = make_problem(m)
    lines = build_lines(x, ids, m, k)
    for call, _ in lines.values():  # warm-up
        call()
    times = {name: [] for name in lines}
    user = {name: [] for name in lines}
    system = {name: [] for name in lines}
    start = time.perf_counter()
    while True:
        for name, (call, _) in lines.items():
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            user[name].append(r1.ru_utime - r0.ru_utime)
            system[name].append(r1.ru_stime - r0.ru_stime)
        done = len(times[FLOOR])
        if done >= repeats or (done >= MIN_REPEATS and time.perf_counter() - start > budget_s):
            break
    return {
        "m": m,
        "n": m * GROUP,
        "k": k,
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "times_s": times,
        "median_cpu_s": {
            name: statistics.median(u + v for u, v in zip(user[name], system[name]))
            for name in lines
        },
        "median_user_s": {name: statistics.median(t) for name, t in user.items()},
        "median_system_s": {name: statistics.median(t) for name, t in system.items()},
        "user_s": user,
        "system_s": system,
        "compile_s": {name: c for name, (_, c) in lines.items() if c is not None},
        "agreement": check_agreement(x, ids, m, k),
    }


def fitted_slopes(records, fit_from=FIT_FROM, over=None, key="median_s") -> dict:
    """Least-squares slope of log(time) — or of log(time ÷ ``over``) — against log(m), over
    ``m ≥ fit_from`` (NaN with fewer than two sizes). ``key="median_cpu_s"``: process CPU
    time (user + system, all threads) instead of wall time."""
    use = [r for r in records if r["m"] >= fit_from]
    slopes = {}
    for name in LINES:
        if len(use) < 2:
            slopes[name] = float("nan")
            continue
        t = np.array([r[key][name] for r in use])
        if over is not None:
            t = t / np.array([r[key][over] for r in use])
        slopes[name] = float(np.polyfit(np.log([r["m"] for r in use]), np.log(t), 1)[0])
    return slopes


def all_slopes(records) -> dict:
    return {
        f"m >= {FIT_FROM:.0e}": fitted_slopes(records, FIT_FROM),
        f"m >= {FIT_BIG:.0e}": fitted_slopes(records, FIT_BIG),
        f"ratio, m >= {FIT_FROM:.0e}": fitted_slopes(records, FIT_FROM, over=FLOOR),
        f"ratio to numpy floor, m >= {FIT_FROM:.0e}": fitted_slopes(
            records, FIT_FROM, over="numpy group lasso"
        ),
        f"CPU time, m >= {FIT_FROM:.0e}": fitted_slopes(records, FIT_FROM, key="median_cpu_s"),
        f"CPU time, m >= {FIT_BIG:.0e}": fitted_slopes(records, FIT_BIG, key="median_cpu_s"),
    }


def format_ms(s: float) -> str:
    ms = 1e3 * s
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def table(records, slopes) -> str:
    head = "| m | " + " | ".join(f"{name} (ms)" for name in LINES)
    head += " | sort ÷ floor | bisection ÷ floor | linear ÷ floor | linear ÷ numpy floor"
    head += " | compile sort / bis / gl (s) |"
    rows = [head, "|" + "---|" * (len(LINES) + 6)]
    for r in records:
        t = r["median_s"]
        floor = t[FLOOR]
        c = r["compile_s"]
        rows.append(
            f"| {r['m']:.0e} | "
            + " | ".join(format_ms(t[name]) for name in LINES)
            + f" | {t['jit sort'] / floor:.2f} | {t['jit bisection'] / floor:.2f}"
            + f" | {t['host linear'] / floor:.2f} | {t['host linear'] / t['numpy group lasso']:.2f}"
            + f" | {c['jit sort']:.2f} / {c['jit bisection']:.2f} / {c['jit group lasso']:.2f} |"
        )
    for label, fit in slopes.items():
        rows.append(
            f"| slope ({label}) | " + " | ".join(f"{fit[n]:.2f}" for n in LINES) + " | | | | | |"
        )
    return "\n".join(rows)


def closing_line(records, slopes) -> str:
    at = [r for r in records if r["m"] == 1_000_000]
    r = at[0] if at else max(records, key=lambda rec: rec["m"])
    t, floor = r["median_s"], r["median_s"][FLOOR]
    lin, srt, bis = t["host linear"] / floor, t["jit sort"] / floor, t["jit bisection"] / floor
    ms = [rec["m"] for rec in records]
    span = f"{min(ms):.0e} <= m <= {max(ms):.0e}"
    wall, big = slopes[f"m >= {FIT_FROM:.0e}"], slopes[f"m >= {FIT_BIG:.0e}"]
    cpu = slopes[f"CPU time, m >= {FIT_FROM:.0e}"]
    slope = wall["host linear"]
    verdict = lambda ok: "met" if ok else "MISSED"
    where = "m = 1e6" if at else f"m = {r['m']:.0e} (1e6 not measured)"
    return (
        f"targets at {where}, against the jitted group-lasso prox: host linear-time "
        f"{lin:.2f}x (target <= 3: {verdict(lin <= 3)}); jitted sort-based {srt:.2f}x "
        f"(target <= 5: {verdict(srt <= 5)}); jitted bisection {bis:.2f}x "
        f"({verdict(bis <= 5)}); wall-time slopes fitted over {span}: host linear-time "
        f"{slope:.2f} (target <= 1.1: {verdict(slope <= 1.1)}), jitted sort-based "
        f"{wall['jit sort']:.2f}, jitted group-lasso floor {wall[FLOOR]:.2f} (numpy floor "
        f"{wall['numpy group lasso']:.2f}); over m >= {FIT_BIG:.0e}: host linear "
        f"{big['host linear']:.2f}, jitted sort {big['jit sort']:.2f}, jitted floor "
        f"{big[FLOOR]:.2f}; CPU-time slopes over {span}: host linear {cpu['host linear']:.2f}, "
        f"jitted sort {cpu['jit sort']:.2f}, jitted floor {cpu[FLOOR]:.2f}"
    )


def plot(records, slopes, path: Path, load: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fit = slopes[f"m >= {FIT_FROM:.0e}"]
    ms = np.array([r["m"] for r in records], float)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12.5, 5.0), gridspec_kw={"width_ratios": [1.35, 1]})
    styles = {
        "jit sort": ("C0", "o", "-"),
        "jit bisection": ("C2", "s", "-"),
        "host linear": ("C3", "^", "-"),
        "jit group lasso": ("k", "D", "--"),
        "numpy group lasso": ("0.5", "v", ":"),
    }
    for name in LINES:
        color, marker, ls = styles[name]
        ts = np.array([r["median_s"][name] for r in records]) * 1e3
        ax.loglog(
            ms, ts, marker=marker, ls=ls, color=color, label=f"{name} (slope {fit[name]:.2f})"
        )
        if name != FLOOR:
            floor = np.array([r["median_s"][FLOOR] for r in records]) * 1e3
            bx.semilogx(ms, ts / floor, marker=marker, ls=ls, color=color, label=name)
    big = ms >= FIT_FROM
    if big.sum() >= 2:  # slope-1 guide through the host line's first fitted point
        m0 = ms[big][0]
        t0 = next(r["median_s"]["host linear"] for r in records if r["m"] == m0) * 1e3
        ax.loglog(
            ms[big],
            t0 * ms[big] / m0,
            color="C3",
            lw=6,
            alpha=0.15,
            zorder=0,
            label="slope 1 through host linear",
        )
        ax.axvspan(m0, ms[-1], color="0.9", zorder=-1, lw=0)
    ax.set_xlabel("m (groups of 9 float32 parameters)")
    ax.set_ylabel("median time per prox (ms)")
    ax.set_title(f"time per prox (slopes fitted on all m ≥ {FIT_FROM:.0e})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    for level, color, text in ((3, "C3", "host target 3×"), (5, "C0", "jit target 5×")):
        bx.axhline(level, color=color, lw=1, ls="--")
        bx.text(ms[-1], level, text + " ", color=color, va="bottom", ha="right", fontsize=8)
    bx.axhline(1, color="k", lw=1)
    bx.set_yscale("log")
    ratios = [r["median_s"][n] / r["median_s"][FLOOR] for r in records for n in LINES]
    bx.set_ylim(min(0.3, 0.8 * min(ratios)), max(12, 1.25 * max(ratios)))
    ticks = [0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50]
    bx.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    bx.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    bx.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    bx.set_xlabel("m")
    bx.set_ylabel("time ÷ jitted group-lasso prox")
    bx.set_title("ratio to the one-pass floor (targets at m = 1e6)", fontsize=10)
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=8, loc="upper left", ncol=2)
    load = os.getloadavg()[0] if load is None else load
    fig.suptitle(
        f"WGSEF prox, k = m/10, λ = {LAM}, float32 — {os.cpu_count()}-core "
        f"{platform.machine()} CPU, load average {load:.1f}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="m capped at 10^6")
    p.add_argument("--sizes", type=int, nargs="+", help="explicit list of m")
    p.add_argument("--repeats", type=int, default=7, help="repeats per line at most (at least 3)")
    p.add_argument(
        "--budget",
        type=float,
        default=3.0,
        help="seconds per m before stopping at the minimum number of repeats",
    )
    p.add_argument("--out", type=Path, default=Path("runs/benchmarks/wgsef_prox"))
    args = p.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f}; groups of {GROUP}, float32, k = m // 10, λ = {LAM}"
    )
    records = []
    for m in sizes:
        print(f"m = {m:.0e}: compiling …", flush=True)
        rec = measure(m, args.repeats, args.budget)
        records.append(rec)
        t = rec["median_s"]
        print(
            "  "
            + ", ".join(f"{name} {format_ms(t[name])} ms" for name in LINES)
            + f"  (agreement {rec['agreement']:.1e})",
            flush=True,
        )
    slopes = all_slopes(records)
    text = table(records, slopes)
    line = closing_line(records, slopes)
    print()
    print(text)
    print()
    print(line)
    plot(records, slopes, args.out / "wgsef_prox.png", load=load[0])
    summary = {
        "records": records,
        "slopes": slopes,
        "closing_line": line,
        "load_before": load,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "numpy": np.__version__,
    }
    (args.out / "wgsef_prox.json").write_text(json.dumps(summary, indent=1))
    (args.out / "wgsef_prox.md").write_text(text + "\n\n" + line + "\n")
    print(f"wrote {args.out / 'wgsef_prox.png'}, .json, .md")
    return summary


if __name__ == "__main__":
    main()
