"""Compile time against its targets: the Titans step, the Sparsey MNIST pipeline, and the first
step of a second run through the persistent compilation cache.

    python -m experiments.benchmarks.compile_time [--only titans,sparsey,cache] [--json PATH]
                                                  [--pythonpath TREE] [--label NAME]

Every measurement runs in a fresh subprocess (nothing compiled earlier in this process helps):

* **titans** — ``jax.jit(jax.value_and_grad(loss))`` of
  ``TitansLMM(d_model=32, num_heads=2, chunk_size=8)`` at batch 8, T = 32 (the loss: mean square
  of the layer's outputs over a batch vmapped from the initial state). Timed apart: tracing
  (``jit(...).trace``), lowering, XLA compilation, then the median of 5 steps, and the program's
  size (jaxpr equations counted into nested jaxprs, instructions of the lowered and of the
  optimized HLO module). **Target: trace + lower + compile ≤ 8 s.** Persistent cache off.
* **sparsey** — the Sparsey MNIST pipeline of :mod:`experiments.sparsey.mnist` at its defaults
  (``--no-baselines``): its ``main`` runs :func:`~experiments.sparsey.mnist.run_once` twice with
  the same shapes; compile = first call − second call. **Target: ≤ 8 s.** Persistent cache off.
* **cache** — each experiment twice, in two processes sharing a new, empty cache folder
  (``MEMJAX_CACHE_DIR``): ``experiments.titans.recall`` (the README's main job, ``--steps 2``) and
  ``experiments.associative_recall`` (``--steps 2``) through :func:`memjax.train.train`, where the
  time to the first step is from entering ``train`` to the end of the first update (parameter
  init, compile or cache read, the step) per variant; and the Sparsey MNIST pipeline, where it is
  the first pipeline call's overhead over the second (the cache is switched on by the benchmark
  when the script does not do so itself). **Target: the second run's first step ≤ 2 s.** The
  experiments' command line also turns on the ``jax.export`` cache of the train step and of the
  initial state (:mod:`memjax.train.export_cache`), so a second run neither traces nor
  initializes; ``titans.recall --no-export-cache`` runs the main job without it (only the
  persistent compilation cache: the state before that cache existed), for a before/after in the
  same run. The ``before`` column is the idle run before the export cache (:data:`BEFORE`).

``--pythonpath TREE`` measures another checkout (e.g. an older commit unpacked with
``git archive``) with this script; ``--label`` names it in the output. Results print as a table
against the targets; ``--json`` keeps them. The measured tables are in ``compile_time.md``
beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TARGETS = {"titans": 8.0, "sparsey": 8.0, "cache": 2.0}
BEFORE = {  # the idle run of 2026-12-01 17:02 UTC, before the export cache: (wall, CPU) seconds
    "titans": (6.83, 11.29),
    "sparsey": (5.65, 8.67),
    "titans.recall": (3.57, 3.62),
    "associative_recall": (1.78, 1.86),
    "sparsey.mnist": (1.63, 1.94),
}
"""What each row measured before, printed beside it (``compile_time.md``, "Idle run")."""
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- probes (subprocess)


def _probe_titans() -> dict:
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from memjax.models.titans.lmm import TitansLMM

    imported = time.perf_counter() - t0
    layer = TitansLMM(d_model=32, num_heads=2, chunk_size=8)
    params = layer.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (8, 32, 32))
    jax.block_until_ready((params, xs))

    def loss(p, x):
        def one(seq):
            return layer.apply(p, layer.init_state(p), seq)[0]

        return jnp.mean(jax.vmap(one)(x) ** 2)

    step = jax.jit(jax.value_and_grad(loss))
    t1, c1 = time.perf_counter(), time.process_time()
    traced = step.trace(params, xs)
    t2, c2 = time.perf_counter(), time.process_time()
    lowered = traced.lower()
    t3, c3 = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    t4, c4 = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(params, xs))
    t5 = time.perf_counter()
    sizes = {
        "jaxpr_eqns": _count_eqns(traced.jaxpr.jaxpr),
        "hlo_ops": _count_ops(lowered.as_text(dialect="hlo")),
        "optimized_hlo_ops": _count_ops(compiled.as_text()),
    }
    runs = []
    for _ in range(5):
        s = time.perf_counter()
        jax.block_until_ready(compiled(params, xs))
        runs.append(time.perf_counter() - s)
    return {
        "import_s": imported,
        "trace_s": t2 - t1,
        "lower_s": t3 - t2,
        "xla_compile_s": t4 - t3,
        "compile_s": t4 - t1,
        "trace_cpu_s": c2 - c1,
        "lower_cpu_s": c3 - c2,
        "xla_compile_cpu_s": c4 - c3,
        "compile_cpu_s": c4 - c1,
        "first_call_s": t5 - t4,
        "step_s": statistics.median(runs),
        **sizes,
    }


def _count_eqns(jaxpr) -> int:
    """Equations of ``jaxpr`` and of every jaxpr nested in its equations (scan bodies, calls)."""
    from jax.extend import core

    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else (param,):
                if isinstance(sub, core.ClosedJaxpr):
                    total += _count_eqns(sub.jaxpr)
                elif isinstance(sub, core.Jaxpr):
                    total += _count_eqns(sub)
    return total


def _count_ops(hlo_text: str) -> int:
    """Instructions of an HLO module's text (every computation, fusions included)."""
    return sum(1 for line in hlo_text.splitlines() if " = " in line)


def _probe_sparsey(out: str, enable_cache: bool) -> dict:
    import jax

    import experiments.sparsey.mnist as mnist

    if enable_cache:
        from memjax.train import enable_compilation_cache

        enable_compilation_cache()
    calls, cpu = [], []
    # the pipeline function mnist.main calls twice: run_pipeline (experiments.sparsey.pipeline),
    # or run_once in older trees
    name = "run_pipeline" if hasattr(mnist, "run_pipeline") else "run_once"
    original = getattr(mnist, name)

    def timed(*args, **kwargs):
        s, c = time.perf_counter(), time.process_time()
        result = original(*args, **kwargs)
        jax.block_until_ready([x for x in jax.tree.leaves(result) if isinstance(x, jax.Array)])
        calls.append(time.perf_counter() - s)
        cpu.append(time.process_time() - c)
        return result

    setattr(mnist, name, timed)
    mnist.main(["--no-baselines", "--out", out])
    if len(calls) < 2:
        raise RuntimeError(f"experiments.sparsey.mnist.main called {name} {len(calls)} times")
    return {
        "first_s": calls[0],
        "second_s": calls[1],
        "compile_s": calls[0] - calls[1],
        "compile_cpu_s": cpu[0] - cpu[1],
        "cache_dir": jax.config.jax_compilation_cache_dir,
        "pipeline": f"experiments.sparsey.mnist.{name}",
    }


def _probe_experiment(module: str, argv: list[str]) -> dict:
    """Runs ``module.main(argv)`` with :func:`memjax.train.train` timed to its first step."""
    import importlib

    import memjax.train.loop as loop
    from memjax.train import compilation_cache_hits

    starts, firsts, hows = [], [], []
    original_compile = loop.compile_step

    def compile_step(*args, **kwargs):
        out = original_compile(*args, **kwargs)
        hows.append(out[1])
        return out

    loop.compile_step = compile_step
    original_train, original_update = loop.train, loop.Progress.update

    def now():
        return time.perf_counter(), time.process_time()

    def train(*args, **kwargs):
        starts.append(now())
        firsts.append(None)
        return original_train(*args, **kwargs)

    def update(self, step, metrics=None):
        if firsts and firsts[-1] is None:
            firsts[-1] = now()
        return original_update(self, step, metrics)

    loop.Progress.update = update
    mod = importlib.import_module(module)
    # the experiments call memjax.train.train through the name they imported
    for name in ("train",):
        for m in list(sys.modules.values()):
            if getattr(m, name, None) is original_train and m is not loop:
                setattr(m, name, train)
    t0 = time.perf_counter()
    mod.main(argv)
    pairs = [(s, f) for s, f in zip(starts, firsts, strict=True) if f is not None]
    firsts_s = [f[0] - s[0] for s, f in pairs]
    cpu_s = [f[1] - s[1] for s, f in pairs]
    return {
        "first_step_s": firsts_s,
        "max_first_step_s": max(firsts_s),
        "first_step_cpu_s": cpu_s,
        "max_first_step_cpu_s": max(cpu_s),
        "wall_s": time.perf_counter() - t0,
        "cache_hits": compilation_cache_hits(),
        "export_cache": hows,
    }


def _probe(args) -> None:
    if args.probe == "titans":
        result = _probe_titans()
    elif args.probe == "sparsey":
        result = _probe_sparsey(args.out, args.enable_cache)
    else:
        module, *argv = args.probe_args
        result = _probe_experiment(module, [*argv, "--out", args.out])
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------- driver


def _spawn(probe: list[str], *, env: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", *probe]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tempfile.gettempdir()
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"probe {probe} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result["process_s"] = time.perf_counter() - t0
    return result


def _env(pythonpath: str, cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["PYTHONPATH"] = pythonpath + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["MEMJAX_CACHE_DIR"] = cache
    env["CI"] = "1"  # plain progress lines
    return env


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


EXPERIMENTS = {
    "titans.recall": ["experiments.titans.recall", "--steps", "2", "--no-progress"],
    "titans.recall --no-export-cache": [
        "experiments.titans.recall",
        "--steps",
        "2",
        "--no-progress",
        "--no-export-cache",
    ],
    "associative_recall": ["experiments.associative_recall.run", "--steps", "2", "--no-progress"],
}


def _fingerprint(pythonpath: str) -> str:
    """A hash of the ``.py`` files of ``memjax`` and ``experiments`` in the tree: a cold and a
    warm run of different code cannot share the cache, and the report says so."""
    import hashlib

    digest = hashlib.sha256()
    for top in ("memjax", "experiments"):
        for path in sorted((Path(pythonpath) / top).rglob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def run(
    only: set[str],
    pythonpath: str,
    timeout: float,
    save=None,
    experiments: Sequence[str] | None = None,
) -> dict:
    """The measurements of ``only``; ``save(results)`` after each (a failed probe is recorded
    under ``"errors"`` and the others still run)."""
    results: dict = {"loads": [_load()]}

    def measure(key, probe, env, where=results):
        try:
            before = _fingerprint(pythonpath)
            where[key] = _spawn(probe, env=env, timeout=timeout)
            where[key]["tree"] = before if before == _fingerprint(pythonpath) else "changed"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            results.setdefault("errors", {})[" ".join(probe)] = str(e)[-1500:]
        results["loads"].append(_load())
        if save is not None:
            save(results)
        return key in where

    with tempfile.TemporaryDirectory() as tmp:
        off = _env(pythonpath, "off")
        if "titans" in only:
            measure("titans", ["titans"], off)
        if "sparsey" in only:
            measure("sparsey", ["sparsey", "--out", f"{tmp}/s0"], off)
        if "cache" in only:
            cache = results.setdefault("cache", {})
            runs = {
                name: ["experiment", "--out", f"{tmp}/{name.split()[0]}_{i}_{{}}", "--", *probe]
                for i, (name, probe) in enumerate(EXPERIMENTS.items())
            }
            runs["sparsey.mnist"] = ["sparsey", "--out", f"{tmp}/s_{{}}", "--enable-cache"]
            if experiments:
                runs = {k: v for k, v in runs.items() if k in experiments}
            for name, probe in runs.items():
                env = _env(pythonpath, f"{tmp}/cache_{len(cache)}")
                both = cache.setdefault(name, {})
                if measure("cold", [a.format(1) for a in probe], env, both):
                    measure("warm", [a.format(2) for a in probe], env, both)
                if "warm" not in both:
                    del cache[name]
    return results


def report(results: dict, label: str) -> str:
    rows = [
        f"## {label}",
        "",
        "| measurement | wall | CPU (this process) | target | met (wall / CPU) "
        "| before: wall / CPU |",
        "|---|---|---|---|---|---|",
    ]

    def met(value, target):
        return "yes" if value <= target else "**no**"

    def row(what, value, cpu, target, before=None):
        was = "" if before is None else f"{before[0]:.2f} / {before[1]:.2f} s"
        rows.append(
            f"| {what} | {value:.2f} s | {cpu:.2f} s | ≤ {target:g} s | "
            f"{met(value, target)} / {met(cpu, target)} | {was} |"
        )

    def note(what, text):
        rows.append(f"| {what} | {text} | | | | |")

    if "titans" in results:
        t = results["titans"]
        row(
            "Titans step: trace + lower + compile",
            t["compile_s"],
            t["compile_cpu_s"],
            TARGETS["titans"],
            BEFORE["titans"],
        )
        note(
            "… trace / lower / XLA (wall)",
            f"{t['trace_s']:.2f} / {t['lower_s']:.2f} / {t['xla_compile_s']:.2f} s",
        )
        note(
            "… trace / lower / XLA (CPU)",
            f"{t['trace_cpu_s']:.2f} / {t['lower_cpu_s']:.2f} / {t['xla_compile_cpu_s']:.2f} s",
        )
        note("Titans step run (median of 5)", f"{t['step_s'] * 1e3:.1f} ms")
        if "jaxpr_eqns" in t:
            note(
                "… jaxpr equations / HLO ops / optimized HLO ops",
                f"{t['jaxpr_eqns']} / {t['hlo_ops']} / {t['optimized_hlo_ops']}",
            )
    if "sparsey" in results:
        s = results["sparsey"]
        row(
            "Sparsey MNIST pipeline: compile (1st − 2nd call)",
            s["compile_s"],
            s.get("compile_cpu_s", float("nan")),
            TARGETS["sparsey"],
            BEFORE["sparsey"],
        )
        note("… pipeline call 1 / call 2 (wall)", f"{s['first_s']:.2f} / {s['second_s']:.2f} s")
    for name, both in results.get("cache", {}).items():
        cold, warm = both["cold"], both["warm"]
        if "max_first_step_s" in warm:
            what, key, cpu = "first step", "max_first_step_s", "max_first_step_cpu_s"
        else:
            what, key, cpu = "pipeline compile overhead", "compile_s", "compile_cpu_s"
        note(
            f"{name}, 1st run (empty cache): {what}",
            f"{cold[key]:.2f} s (CPU {cold.get(cpu, float('nan')):.2f} s)",
        )
        row(
            f"{name}, 2nd run (cache): {what}",
            warm[key],
            warm.get(cpu, float("nan")),
            TARGETS["cache"],
            BEFORE.get(name),
        )
        if warm.get("export_cache"):
            note("… 2nd run: train step", ", ".join(sorted(set(map(str, warm["export_cache"])))))
        if cold.get("tree") != warm.get("tree") or warm.get("tree") == "changed":
            note("… INVALID", "the code changed between or during the two runs (no cache reuse)")
        if key == "max_first_step_s":
            per = ", ".join(f"{v:.2f}" for v in warm["first_step_s"])
            note(
                "… 2nd run: per variant / process wall",
                f"{per} s / {warm['process_s']:.1f} s (1st run {cold['process_s']:.1f} s)",
            )
    for what, error in results.get("errors", {}).items():
        note(f"{what}: FAILED", error.strip().splitlines()[-1][:120])
    loads = results.get("loads") or [results[k] for k in results if k.startswith("load")]
    rows += [
        "",
        f"1-minute load average, before and after each measurement: {', '.join(loads)}",
        "",
        "before: the idle run of 2026-12-01 17:02 UTC, before the jax.export cache of the train "
        "step (compile_time.md); 'titans.recall --no-export-cache' measures the same job without "
        "it in this run.",
    ]
    return "\n".join(rows)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        default="titans,sparsey,cache",
        help="comma-separated: titans, sparsey, cache (default: all)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument(
        "--pythonpath", default=str(ROOT), help="the checkout to measure (default: this one)"
    )
    p.add_argument("--label", default=None, help="a name for the checkout in the output")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per subprocess")
    p.add_argument(
        "--experiments",
        default=None,
        help=f"the cache measurement's experiments (default all: "
        f"{', '.join([*EXPERIMENTS, 'sparsey.mnist'])})",
    )
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--enable-cache", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("probe_args", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        _probe(args)
        return {}
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(TARGETS)
    if unknown:
        p.error(f"--only: unknown {sorted(unknown)}; expected names from {sorted(TARGETS)}")
    label = args.label or f"tree {args.pythonpath}"

    def save(partial):
        if args.json:
            args.json.write_text(json.dumps({"label": label, **partial}, indent=2) + "\n")

    chosen = args.experiments.split(",") if args.experiments else None
    results = run(only, args.pythonpath, args.timeout, save, chosen)
    text = report(results, label)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"label": label, **results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
