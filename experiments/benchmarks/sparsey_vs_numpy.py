"""Sparsey CSA throughput: memjax (jit + lax.scan / vmap) against a straightforward NumPy CSA.

    python -m experiments.benchmarks.sparsey_vs_numpy [--items 2000] [--repeats 3]

Same mac (N = 400 inputs, 20 active, Q = K = 20, the reference setting of Rinkus's Sparsey
benchmarks), same inputs, same run: items/s for learning (sequential, one item at a time) and for
recognition of a batch, each twice: ``SparseyMac.learn(report="scalars")`` (codes, stored
flags, G and η: what the NumPy reference keeps, and more) and ``SparseyMac.learn`` (the full
``CSAResult``, V and ρ of every item too), ``SparseyMac.encode`` (the codes: what the NumPy
reference computes) and ``SparseyMac.recognize`` (the full ``CSAResult``: codes plus G, η, V and
ρ of every item) — warm-up first, ``block_until_ready``; the memjax and NumPy repeats are
interleaved (load on a shared machine drifts) and each figure is the median of ``--repeats``, in
wall time and in process CPU time (``time.process_time``, less sensitive to other processes'
load); compile time reported separately. Then the cost per item as stored items grow (10² → 10⁴
already stored): it must stay flat, the model's fixed-time storage and retrieval claim. Prints
ratios; absolute times only as context. The closing line judges both targets on the like-for-like
calls (``report="scalars"``, ``encode``) and states the full-result ratios beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np

from experiments.sparsey.common import random_patterns
from memjax.memories.sparsey import SparseyMac


class NumpyCSA:
    """The CSA (steps 1–10 of Rinkus's Code Selection Algorithm, U only, binary weights) in plain
    vectorised NumPy."""

    def __init__(self, n, Q, K, g_minus=0.2, gamma=2.0, chi=100.0, slope=10.0, inflection=0.7):
        self.w = np.zeros((n, Q, K), bool)
        self.Q, self.K = Q, K
        self.g_minus, self.gamma, self.chi = g_minus, gamma, chi
        self.slope, self.inflection = slope, inflection
        self.rng = np.random.default_rng(0)

    def support(self, x):
        active = np.flatnonzero(x)
        v = self.w[active].sum(axis=0) / max(len(active), 1)
        g = v.max(axis=1).mean()
        excess = max(0.0, (g - self.g_minus) / (1 - self.g_minus))
        eta = 1 + excess**self.gamma * self.chi * self.K
        return active, v, eta

    def learn(self, x):
        active, v, eta = self.support(x)
        psi = (eta - 1) / (1 + np.exp(-self.slope * (v - self.inflection))) + 1
        cdf = np.cumsum(psi / psi.sum(axis=1, keepdims=True), axis=1)
        code = np.minimum((cdf < self.rng.random((self.Q, 1))).sum(axis=1), self.K - 1)
        self.w[active[:, None], np.arange(self.Q)[None, :], code[None, :]] = True
        return code

    def recognize(self, x):
        _, v, _ = self.support(
            x
        )  # max-V with a random tie-break (one shared order is the same work)
        ties = np.where(v == v.max(axis=1, keepdims=True), self.rng.random(v.shape), -1)
        return ties.argmax(axis=1)


def patterns(n, size=400, active=20, seed=0):
    return random_patterns(np.random.default_rng(seed), n, size, active)


def timed(fn, repeats):
    """Median process CPU time of ``fn`` (warm-up first: compiles a new shape)."""
    jax.block_until_ready(fn())
    out = []
    for _ in range(repeats):
        t = time.process_time()
        jax.block_until_ready(fn())
        out.append(time.process_time() - t)
    return statistics.median(out)


def first_call(fn):
    """``(fn(), (wall s, CPU s))`` of a first call: compilation included."""
    t, c = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return out, (time.perf_counter() - t, time.process_time() - c)


def interleaved(fns: dict, repeats: int) -> dict:
    """``{name: (median wall s, median CPU s)}``, the callables run in turn ``repeats`` times."""
    for fn in fns.values():
        jax.block_until_ready(fn())  # warm-up
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fill", type=int, nargs="+", default=[100, 1000, 10000])
    args = p.parse_args(argv)
    mac = SparseyMac(n_inputs=400, Q=20, K=20, saturation=None)
    xs = patterns(args.items)
    key = jax.random.key(0)

    (state, _), compile_learn = first_call(lambda: mac.learn(mac.init_state(), xs, key=key))
    _, compile_enc = first_call(lambda: mac.encode(state, xs))
    _, compile_rec = first_call(lambda: mac.recognize(state, xs))

    def np_learn():
        ref = NumpyCSA(400, 20, 20)
        for x in xs:
            ref.learn(x)
        return ref

    ref = np_learn()
    times = interleaved(
        {
            "jl": lambda: mac.learn(mac.init_state(), xs, key=key),
            "js": lambda: mac.learn(mac.init_state(), xs, key=key, report="scalars"),
            "nl": np_learn,
            "je": lambda: mac.encode(state, xs),
            "jr": lambda: mac.recognize(state, xs),
            "nr": lambda: [ref.recognize(x) for x in xs],
        },
        args.repeats,
    )
    (jl, jl_cpu), (nl, nl_cpu) = times["jl"], times["nl"]
    js, js_cpu = times["js"]
    (jr, jr_cpu), (nr, nr_cpu) = times["jr"], times["nr"]
    je, je_cpu = times["je"]
    n = args.items
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"items={n} (N=400, 20 active, Q=K=20); load average (1/5/15 min) {load}")
    print(
        "compile (first call, incl. run; wall / CPU): "
        + ", ".join(
            f"{name} {w:.2f}s / {c:.2f}s"
            for name, (w, c) in (
                ("learn", compile_learn),
                ("encode", compile_enc),
                ("recognize", compile_rec),
            )
        )
    )
    print(
        f"learn (codes, flags, G, eta: report='scalars'): memjax {n / js:10.0f} items/s  numpy "
        f"{n / nl:10.0f} items/s  ratio {nl / js:.1f}x (CPU time: {n / js_cpu:.0f} vs "
        f"{n / nl_cpu:.0f} items/s, {nl_cpu / js_cpu:.1f}x)"
    )
    print(
        f"learn (full CSAResult): memjax {n / jl:10.0f} items/s  numpy {n / nl:10.0f} items/s  "
        f"ratio {nl / jl:.1f}x (CPU time: {n / jl_cpu:.0f} vs {n / nl_cpu:.0f} items/s, "
        f"{nl_cpu / jl_cpu:.1f}x)"
    )
    print(
        f"recognize (codes, encode): memjax {n / je:10.0f} items/s  numpy {n / nr:10.0f} items/s"
        f"  ratio {nr / je:.1f}x (CPU time: {n / je_cpu:.0f} vs {n / nr_cpu:.0f} items/s, "
        f"{nr_cpu / je_cpu:.1f}x)"
    )
    print(
        f"recognize (full CSAResult): memjax {n / jr:10.0f} items/s  numpy {n / nr:10.0f} "
        f"items/s  ratio {nr / jr:.1f}x (CPU time: {n / jr_cpu:.0f} vs {n / nr_cpu:.0f} "
        f"items/s, {nr_cpu / jr_cpu:.1f}x)"
    )

    # Fixed-time claim: per-item cost of learning 1,000 more items into macs already holding F.
    probe = patterns(1000, seed=1)
    print("per-item learn cost (CPU time) as stored items grow (memjax; must stay flat):")
    base, ratios = None, []
    for fill in args.fill:
        st, _ = mac.learn(mac.init_state(), patterns(fill, seed=2), key=key)
        sec = timed(lambda st=st: mac.learn(st, probe, key=key), args.repeats) / 1000
        rec = timed(lambda st=st: mac.recognize(st, probe), args.repeats) / 1000
        enc = timed(lambda st=st: mac.encode(st, probe), args.repeats) / 1000
        base = base or sec
        ratios.append(sec / base)
        print(
            f"  stored={fill:6d}: learn {sec * 1e6:7.1f} us/item (x{sec / base:.2f}), "
            f"encode {enc * 1e6:6.1f} us/item, recognize {rec * 1e6:6.1f} us/item"
        )
    learn_x, scal_x, enc_x, rec_x = nl / jl, nl / js, nr / je, nr / jr
    print(
        f"targets: learn >= 10x numpy: {scal_x:.1f}x codes and flags "
        f"({'met' if scal_x >= 10 else 'missed'}), {learn_x:.1f}x full CSAResult "
        f"({'met' if learn_x >= 10 else 'missed'}); "
        f"recognize >= 20x: {enc_x:.1f}x codes ({'met' if enc_x >= 20 else 'missed'}), "
        f"{rec_x:.1f}x full CSAResult; per-item learn cost flat: max x{max(ratios):.2f} "
        f"({'met' if max(ratios) <= 1.5 else 'missed'})"
    )
    return scal_x, enc_x


if __name__ == "__main__":
    main()
