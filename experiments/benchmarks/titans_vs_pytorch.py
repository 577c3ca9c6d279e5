"""Titans LMM layer throughput and peak memory: memjax against titans-pytorch 0.5.5 (CPU).

    python -m experiments.benchmarks.titans_vs_pytorch [--quick] [--repeats 3] [--json PATH]

Matched configuration (paper notes §3.5): d_model 256, 4 heads of 64, chunk 64, depth-2 MLP of
expansion 4, float32 input ``randn(B, L, 256)``; B ∈ {1, 4}, L ∈ {512, 2048, 8192} (``--quick``:
B = 1, L ∈ {512, 2048}, fewer repeats). Two settings of the peer, each against the memjax
``memjax.compat.titans_pytorch.titans_pytorch_lmm`` layer with the same arguments — the **same
computation** as the port (its outputs agree to ≤ 1e-5 in float32 after converting the weights,
``tests/titans/test_titans_pytorch_parity.py``):

* ``default``  — the port's default ``NeuralMemory(..., batch_size=None)``: every chunk's gradient
  at the learned initial weights; memjax ``grad_point="initial"``.
* ``faithful`` — ``batch_size=64`` (= chunk): gradients at the chunk-start weights, the paper's
  mini-batch form; memjax ``grad_point="chunk_start"``.

The memjax paper preset (the layer's defaults at these sizes) is one more line, memjax only,
**not** the same configuration. Then memjax alone: tokens/s from 1K to 64K tokens
(B = 1, forward; linear cost means flat tokens/s) and against memory depth 1..4 (L = 2048).

Protocol: a fresh subprocess per (framework, setting, L, B) measures ``fwd`` then ``fwd_bwd``;
port and memjax subprocesses alternate per configuration. ``fwd``: memjax jitted forward, the port
under ``torch.no_grad()``; ``fwd_bwd``: gradient of ``sum(outputs)`` w.r.t. all parameters.
One warm-up call (its time minus the median = memjax compile time, reported separately), one
calibration call (short steps are grouped so a repeat lasts ≥ ``--min-repeat`` s), then the median
of ``--repeats`` timed repeats, ``block_until_ready`` on JAX outputs, ``torch.set_num_threads(2)``.
Peak memory: ``ru_maxrss`` of the subprocess, per mode (the peak is reset through
``/proc/self/clear_refs`` before each mode's warm-up and again before its timed repeats, so
``peak`` includes JAX compilation and ``run`` does not); Δ = peak minus the RSS just before the
warm-up. Also recorded: the CPU cores used by *other* processes during the timed repeats (the
machine is shared: ratios, not absolute times, are the result).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

D_MODEL, NUM_HEADS, D_HEAD, CHUNK, EXPANSION = 256, 4, 64, 64, 4
MODES = ("fwd", "fwd_bwd")
PEER_SETTINGS = ("default", "faithful")
PEER_VERSION = "0.5.5"
PEER_MISSING = (
    "titans-pytorch {want} (torch) not importable: {err} -- the peer is SKIPPED. Install it with "
    "`pip install torch==2.13.0` then `pip install titans-pytorch==0.5.5` (kept out of memjax's "
    "dependencies); memjax lines are still measured."
)
# The port's paper-faithful backward at 8192 x 4 would need ~18 GB RSS (4.8 GB at 8192 x 1,
# §3.5 of the paper notes), too close to the machine's 23 GB: not run.
PORT_MAX_FAITHFUL_BWD_TOKENS = 8192


class PeerMissing(RuntimeError):
    """titans-pytorch or torch cannot be imported."""


# -- machine helpers ------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


def peak_mb() -> float:
    """``ru_maxrss`` in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux ``clear_refs`` 5); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class OtherLoad:
    """CPU cores used by other processes between ``start()`` and ``stop()`` (Linux /proc)."""

    def _read(self):
        try:
            with open("/proc/stat") as f:
                cpu = [int(x) for x in f.readline().split()[1:]]
            busy = sum(cpu) - cpu[3] - (cpu[4] if len(cpu) > 4 else 0)
            with open("/proc/self/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            own = int(fields[11]) + int(fields[12])
            return busy, own, time.perf_counter()
        except (OSError, ValueError, IndexError):
            return None

    def start(self):
        self.t0 = self._read()

    def stop(self) -> float | None:
        t1 = self._read()
        if self.t0 is None or t1 is None or t1[2] <= self.t0[2]:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        others = (t1[0] - self.t0[0]) - (t1[1] - self.t0[1])
        return max(others, 0) / hz / (t1[2] - self.t0[2])


def time_call(fn, sync, repeats: int, min_repeat_s: float, budget_s: float = 12.0) -> dict:
    """Warm-up, calibration, then the median of timed repeats (seconds per call).

    Short calls are grouped so a repeat lasts ≥ ``min_repeat_s``; long calls get fewer repeats
    (never fewer than 3) so one mode stays within ~``budget_s``; when one call already lasts
    ``min_repeat_s`` the calibration call counts as the first repeat.
    """
    t = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t
    warm_peak = peak_mb()
    reset_peak()
    run_base = rss_mb()
    meter = OtherLoad()
    meter.start()
    t = time.perf_counter()
    sync(fn())
    one = time.perf_counter() - t
    steps = max(1, math.ceil(min_repeat_s / max(one, 1e-6)))
    repeats = max(3, min(repeats, math.ceil(budget_s / max(one * steps, 1e-6))))
    times, load = [], []
    if steps == 1:
        times.append(one)
        load.append(meter.stop())
    while len(times) < repeats:
        meter.start()
        t = time.perf_counter()
        for _ in range(steps):
            sync(fn())
        times.append((time.perf_counter() - t) / steps)
        load.append(meter.stop())
    med = statistics.median(times)
    loads = [x for x in load if x is not None]
    return {
        "median_s": med,
        "times_s": times,
        "steps": steps,
        "first_s": first,
        "compile_s": max(first - med, 0.0),
        "warm_peak_mb": warm_peak,
        "run_peak_mb": peak_mb(),
        "run_base_mb": run_base,
        "others_cores": statistics.mean(loads) if loads else None,
    }


def _record(framework, setting, length, batch, mode, depth, timing, before_mb):
    peak = max(timing["warm_peak_mb"], timing["run_peak_mb"])
    return {
        "framework": framework,
        "setting": setting,
        "L": length,
        "B": batch,
        "mode": mode,
        "depth": depth,
        "status": "ok",
        "tokens_per_s": batch * length / timing["median_s"],
        "rss_before_mb": before_mb,
        "peak_mb": peak,
        "delta_mb": peak - before_mb,
        "run_delta_mb": timing["run_peak_mb"] - before_mb,
        **timing,
    }


def _skip(framework, setting, length, batch, mode, depth, message):
    return {
        "framework": framework,
        "setting": setting,
        "L": length,
        "B": batch,
        "mode": mode,
        "depth": depth,
        "status": "skipped",
        "message": message,
    }


# -- memjax ---------------------------------------------------------------------------------
def memjax_layer(
    setting: str,
    *,
    d_model=D_MODEL,
    num_heads=NUM_HEADS,
    d_head=D_HEAD,
    chunk_size=CHUNK,
    depth=2,
    expansion=EXPANSION,
):
    """The memjax ``TitansLMM`` for ``setting`` (``default`` / ``faithful`` / ``paper``).

    ``default`` / ``faithful``: :func:`memjax.compat.titans_pytorch.titans_pytorch_lmm` with the
    port's ``batch_size`` ``None`` / ``chunk_size`` — the port's computation; ``paper``: the
    layer's defaults."""
    from memjax.compat.titans_pytorch import titans_pytorch_lmm
    from memjax.models.titans import TitansLMM

    if setting == "paper":
        return TitansLMM(
            d_model=d_model,
            num_heads=num_heads,
            d_head=d_head,
            chunk_size=chunk_size,
            depth=depth,
            expansion=expansion,
        )
    if setting not in PEER_SETTINGS:
        raise ValueError(f"setting: expected default, faithful or paper, got {setting!r}")
    return titans_pytorch_lmm(
        d_model,
        num_heads,
        d_head,
        chunk_size,
        batch_size=None if setting == "default" else chunk_size,
        depth=depth,
        expansion=expansion,
    )


def measure_memjax(
    setting,
    length,
    batch,
    *,
    modes=MODES,
    depth=2,
    repeats=3,
    min_repeat_s=0.3,
    d_model=D_MODEL,
    num_heads=NUM_HEADS,
    d_head=D_HEAD,
    chunk_size=CHUNK,
):
    """Records (one per mode) for the memjax layer; runs in the calling process."""
    import jax
    import jax.numpy as jnp

    layer = memjax_layer(
        setting,
        d_model=d_model,
        num_heads=num_heads,
        d_head=d_head,
        chunk_size=chunk_size,
        depth=depth,
    )
    params = layer.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (batch, length, d_model), jnp.float32)

    def forward(params, xs):
        state = layer.init_state(params)
        return jax.vmap(lambda x: layer.apply(params, state, x)[0])(xs)

    fns = {
        "fwd": jax.jit(forward),
        "fwd_bwd": jax.jit(jax.grad(lambda p, x: jnp.sum(forward(p, x)))),
    }
    out = []
    for mode in modes:
        fn = fns[mode]
        reset_peak()
        before = rss_mb()
        timing = time_call(
            lambda fn=fn: fn(params, xs), jax.block_until_ready, repeats, min_repeat_s
        )
        out.append(_record("memjax", setting, length, batch, mode, depth, timing, before))
    return out


# -- titans-pytorch -------------------------------------------------------------------------
def check_peer() -> tuple[dict | None, str | None]:
    """``(versions, None)`` if torch and titans-pytorch import, else ``(None, skip message)``."""
    try:
        import titans_pytorch  # noqa: F401
        import torch
    except ImportError as err:  # also raised for modules set to None in sys.modules
        return None, PEER_MISSING.format(want=PEER_VERSION, err=err)
    from importlib.metadata import PackageNotFoundError, version

    try:
        peer = version("titans-pytorch")
    except PackageNotFoundError:
        peer = "unknown"
    return {"torch": torch.__version__, "titans_pytorch": peer}, None


def measure_port(setting, length, batch, *, modes=MODES, repeats=3, min_repeat_s=0.3, threads=2):
    """Records (one per mode) for titans-pytorch ``NeuralMemory``; raises :class:`PeerMissing`."""
    versions, message = check_peer()
    if versions is None:
        raise PeerMissing(message)
    import torch
    from titans_pytorch import NeuralMemory

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mem = NeuralMemory(
        dim=D_MODEL,
        heads=NUM_HEADS,
        dim_head=D_HEAD,
        chunk_size=CHUNK,
        batch_size=None if setting == "default" else CHUNK,
    )
    xs = torch.randn(batch, length, D_MODEL)

    def fwd():
        with torch.no_grad():
            return mem(xs)[0]

    def fwd_bwd():
        mem.zero_grad(set_to_none=True)
        out = mem(xs)[0]
        out.sum().backward()
        return out

    out = []
    for mode in modes:
        if (
            mode == "fwd_bwd"
            and setting == "faithful"
            and batch * length > PORT_MAX_FAITHFUL_BWD_TOKENS
        ):
            out.append(
                _skip(
                    "port",
                    setting,
                    length,
                    batch,
                    mode,
                    2,
                    "~18 GB projected RSS (4.8 GB at 8192 x 1) on a 23 GB machine",
                )
            )
            continue
        reset_peak()
        before = rss_mb()
        timing = time_call(fwd if mode == "fwd" else fwd_bwd, lambda _: None, repeats, min_repeat_s)
        out.append(_record("port", setting, length, batch, mode, 2, timing, before))
    return out


# -- orchestration --------------------------------------------------------------------------
def _worker(spec: dict) -> list[dict]:
    kind = spec.pop("framework")
    if kind == "check":
        versions, message = check_peer()
        return [{"versions": versions, "message": message}]
    if kind == "memjax":
        import jax

        recs = measure_memjax(**spec)
        for r in recs:
            r["jax"] = jax.__version__
        return recs
    try:
        return measure_port(**spec)
    except PeerMissing as err:
        return [
            _skip("port", spec["setting"], spec["length"], spec["batch"], m, 2, str(err))
            for m in spec.get("modes", MODES)
        ]


def run_worker(spec: dict, timeout: float = 900) -> list[dict]:
    """Run one measurement in a fresh subprocess; returns its records."""
    cmd = [
        sys.executable,
        "-m",
        "experiments.benchmarks.titans_vs_pytorch",
        "--worker",
        json.dumps(spec),
    ]
    env = dict(os.environ)
    # OpenMP's default active spin-wait makes torch 10-30x slower when the 2 cores are shared
    # with other processes (measured here); passive waiting keeps it near its idle-machine speed.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return [{**spec, "status": "error", "message": f"timeout after {timeout}s"}]
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return [{**spec, "status": "error", "message": " | ".join(tail)}]


def _fmt_tps(r):
    return f"{r['tokens_per_s']:,.0f}" if r and r.get("status") == "ok" else "—"


def _fmt_mem(r):
    if not r or r.get("status") != "ok":
        return "—"
    return f"{r['peak_mb']:,.0f} (+{r['delta_mb']:,.0f}; run +{r['run_delta_mb']:,.0f})"


def _geo(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def _print(line, log):
    print(line, flush=True)
    log.append(line)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="L ∈ {512, 2048}, B = 1, small sweeps")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; quick 3)")
    p.add_argument(
        "--min-repeat",
        type=float,
        default=None,
        help="group short steps so a repeat lasts at least this (s)",
    )
    p.add_argument("--no-peer", action="store_true", help="memjax lines only")
    p.add_argument("--no-scaling", action="store_true", help="skip the memjax-alone sweeps")
    p.add_argument("--json", help="also write every record to this file (JSON lines)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return None

    repeats = args.repeats or (3 if args.quick else 5)
    min_rep = args.min_repeat if args.min_repeat is not None else (0.2 if args.quick else 0.3)
    lengths = (512, 2048) if args.quick else (512, 2048, 8192)
    batches = (1,) if args.quick else (1, 4)
    scale_lengths = (
        (1024, 4096, 16384) if args.quick else (1024, 2048, 4096, 8192, 16384, 32768, 65536)
    )
    depths = (1, 2) if args.quick else (1, 2, 3, 4)
    log: list[str] = []
    records: list[dict] = []

    import jax

    peer_versions, peer_msg = (None, "disabled by --no-peer")
    if not args.no_peer:
        chk = run_worker({"framework": "check"}, timeout=300)[0]
        peer_versions, peer_msg = chk.get("versions"), chk.get("message")
    _print(f"# Titans LMM: memjax vs titans-pytorch {PEER_VERSION} (CPU, same run)", log)
    _print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, jax {jax.__version__}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        log,
    )
    if peer_versions:
        _print(
            f"peer: torch {peer_versions['torch']}, titans-pytorch "
            f"{peer_versions['titans_pytorch']} (set_num_threads(2))",
            log,
        )
    else:
        _print(f"PEER SKIPPED: {peer_msg}", log)
    _print(
        f"config: d_model {D_MODEL}, {NUM_HEADS} heads x {D_HEAD}, chunk {CHUNK}, depth-2 MLP "
        f"x{EXPANSION}; repeats {repeats}, min repeat {min_rep}s",
        log,
    )

    # -- peer comparison, interleaved --------------------------------------------------------
    rows = []
    i = 0
    for length in lengths:
        for batch in batches:
            for setting in (*PEER_SETTINGS, "paper") if batch == 1 else PEER_SETTINGS:
                spec = {
                    "setting": setting,
                    "length": length,
                    "batch": batch,
                    "repeats": repeats,
                    "min_repeat_s": min_rep,
                }
                jobs = [("memjax", spec)]
                if setting != "paper" and peer_versions:
                    jobs.append(("port", spec))
                    if i % 2:
                        jobs.reverse()  # alternate who runs first
                    i += 1
                got = {}
                for fw, sp in jobs:
                    recs = run_worker({"framework": fw, **sp})
                    records.extend(recs)
                    got[fw] = {r.get("mode"): r for r in recs}
                for mode in MODES:
                    rows.append(
                        (
                            setting,
                            length,
                            batch,
                            mode,
                            got.get("port", {}).get(mode),
                            got["memjax"].get(mode),
                        )
                    )
                print(f"  .. {setting} L={length} B={batch} done", file=sys.stderr, flush=True)

    _print("", log)
    _print(
        "| setting | L | B | mode | port tok/s | memjax tok/s | ratio | port peak MB (Δ) "
        "| memjax peak MB (Δ) | Δ ratio (run) | memjax compile s | others' cores |",
        log,
    )
    _print("|---|---|---|---|---|---|---|---|---|---|---|---|", log)
    ratios: dict = {}
    mem_ratios, peak_ratios = [], []
    for setting, length, batch, mode, pr, mr in rows:
        ok = pr and pr.get("status") == "ok" and mr and mr.get("status") == "ok"
        ratio = mr["tokens_per_s"] / pr["tokens_per_s"] if ok else None
        mratio = (max(mr["run_delta_mb"], 1.0) / max(pr["run_delta_mb"], 1.0)) if ok else None
        if ok:
            ratios.setdefault((setting, mode), []).append(ratio)
            mem_ratios.append(mratio)
            peak_ratios.append(mr["peak_mb"] / pr["peak_mb"])
        load = [r["others_cores"] for r in (pr, mr) if r and r.get("others_cores") is not None]
        name = setting if setting != "paper" else "paper preset (memjax only)"
        comp = f"{mr['compile_s']:.1f}" if mr and mr.get("status") == "ok" else "—"
        _print(
            f"| {name} | {length} | {batch} | {mode} | {_fmt_tps(pr)} | {_fmt_tps(mr)} | "
            f"{f'{ratio:.2f}x' if ratio else '—'} | {_fmt_mem(pr)} | {_fmt_mem(mr)} | "
            f"{f'{mratio:.2f}' if mratio else '—'} | {comp} | "
            f"{'/'.join(f'{x:.2f}' for x in load) or '—'} |",
            log,
        )
    for r in records:
        if r.get("status") not in ("ok", None):
            _print(
                f"note: {r.get('framework')} {r.get('setting')} L={r.get('L')} "
                f"B={r.get('B')} {r.get('mode')}: {r.get('status')} {r.get('message', '')}",
                log,
            )

    # -- memjax alone: length and depth -------------------------------------------------------
    flat = None
    if not args.no_scaling:
        _print("", log)
        _print("memjax alone, B = 1, forward (linear cost: tokens/s should stay flat)", log)
        _print("| setting | L | tok/s | x vs first | peak MB (Δ) | compile s |", log)
        _print("|---|---|---|---|---|---|", log)
        for setting in ("faithful", "paper"):
            base = None
            tps = []
            sweep = (
                scale_lengths
                if setting == "faithful"
                else (scale_lengths[0], scale_lengths[len(scale_lengths) // 2], scale_lengths[-1])
            )
            for length in sweep:
                (r,) = run_worker(
                    {
                        "framework": "memjax",
                        "setting": setting,
                        "length": length,
                        "batch": 1,
                        "modes": ["fwd"],
                        "repeats": 3,
                        "min_repeat_s": min_rep,
                    }
                )
                records.append(r)
                if r.get("status") != "ok":
                    _print(f"| {setting} | {length} | error {r.get('message')} | | | |", log)
                    continue
                base = base or r["tokens_per_s"]
                tps.append(r["tokens_per_s"])
                _print(
                    f"| {setting} | {length} | {r['tokens_per_s']:,.0f} | "
                    f"{r['tokens_per_s'] / base:.2f} | {_fmt_mem(r)} | {r['compile_s']:.1f} |",
                    log,
                )
            if setting == "faithful" and len(tps) >= 2:
                flat = tps[-1] / tps[0]
        _print("", log)
        _print("memjax alone vs memory depth, faithful setting, L = 2048, B = 1", log)
        _print("| depth | fwd tok/s | fwd_bwd tok/s | fwd_bwd peak MB (Δ) |", log)
        _print("|---|---|---|---|", log)
        for depth in depths:
            recs = run_worker(
                {
                    "framework": "memjax",
                    "setting": "faithful",
                    "length": 2048,
                    "batch": 1,
                    "depth": depth,
                    "repeats": 3,
                    "min_repeat_s": min_rep,
                }
            )
            records.extend(recs)
            by = {r.get("mode"): r for r in recs}
            _print(
                f"| {depth} | {_fmt_tps(by.get('fwd'))} | {_fmt_tps(by.get('fwd_bwd'))} | "
                f"{_fmt_mem(by.get('fwd_bwd'))} |",
                log,
            )

    if args.json:
        with open(args.json, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")

    def head(setting, mode):
        xs = ratios.get((setting, mode))
        return f"{_geo(xs):.2f}x (min {min(xs):.2f}x)" if xs else "n/a"

    _print("", log)
    mem = (
        f"peak x{_geo(peak_ratios):.2f} (max x{max(peak_ratios):.2f}), Δ x{_geo(mem_ratios):.2f}"
        if mem_ratios
        else "n/a"
    )
    line = (
        f"HEADLINE memjax/titans-pytorch tokens/s, geo-mean over L,B: faithful fwd "
        f"{head('faithful', 'fwd')}, fwd_bwd {head('faithful', 'fwd_bwd')} [target >= 3x]; "
        f"default fwd {head('default', 'fwd')}, fwd_bwd {head('default', 'fwd_bwd')} "
        f"[target >= 1.5x]; memory memjax/port {mem} [target <= 1]"
    )
    if flat is not None:
        line += f"; memjax tok/s {scale_lengths[-1] // 1024}K vs 1K x{flat:.2f} [flat]"
    if not ratios:
        line += f" (peer skipped: {peer_msg})"
    _print(line, log)
    return records


if __name__ == "__main__":
    main()
