"""Capacity of one mac: how many items it stores before recall degrades, against Q and K.

    python -m experiments.sparsey.capacity              # cpu preset (the default)

Setup: one mac, N = 400 binary inputs with 20 active (5%), the memjax default CSA constants
(G⁻ = 0.2, γ = 2, χ = 100, λ = 10, θ = 0.7), no freezing (so capacity is the weights' own).
Random patterns are learned one trial each, in chunks; after every chunk all items stored so far
are re-presented in recognition mode (max-V, random tie-break). With binary weights a stored
item's cells always have V = 1, so recall fails only when crosstalk gives another cell of a CM
V = 1 too (a tie). "Capacity" is the largest number stored with ≥ 99% of the items recalled
exactly (all Q winners), averaged over seeds. Writes ``results.md``, ``metrics.jsonl`` and
``capacity.png`` into ``runs/sparsey/capacity/``.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.sparsey.common import parser, random_patterns, write
from memjax.memories.sparsey import SparseyMac
from memjax.train import enable_compilation_cache

N, ACTIVE = 400, 20


def curve(mac, n_max, chunk, seed):
    """Exact-recall fraction, per-CM accuracy and novel-input G after every chunk."""
    rng = np.random.default_rng(seed)
    xs = random_patterns(rng, n_max, N, ACTIVE)
    novel = random_patterns(rng, 100, N, ACTIVE)
    state, codes = mac.init_state(), []
    out = []
    for i, start in enumerate(range(0, n_max, chunk)):
        state, res = mac.learn(state, xs[start : start + chunk], key=jax.random.key(seed * 997 + i))
        codes.append(np.asarray(res.code))
        n = start + chunk
        found = mac.recognize(state, xs, key=jax.random.key(i), ties="per_item").code
        found = np.asarray(found)[:n]
        ref = np.concatenate(codes)
        g_novel = float(np.asarray(mac.recognize(state, novel).familiarity).mean())
        out.append((n, float((found == ref).all(1).mean()), float((found == ref).mean()), g_novel))
    return out


def docstring_curve(seeds: int, out: str) -> list:
    """The curve quoted in ``SparseyMac``'s docstring: N = 300 (24 active), Q = 20, K = 10."""
    global N, ACTIVE
    N, ACTIVE = 300, 24
    mac = SparseyMac(n_inputs=N, Q=20, K=10, saturation=None)
    runs = [curve(mac, 150, 10, s) for s in range(seeds)]
    rows = [
        {"items stored": run0[0], "exact recall": float(np.mean([r[i][1] for r in runs]))}
        for i, run0 in enumerate(runs[0])
    ]
    write(
        out,
        rows,
        title="Sparsey capacity, one mac N=300 (24 active), Q=20, K=10",
        notes={"seeds": seeds, "setup": "default CSA constants, no freezing, per-item ties"},
    )
    return rows


def main(argv=None):
    p = parser(__doc__, "capacity")
    p.add_argument("--seeds", type=int, default=None, help="default: 2 (cpu), 5 (gpu/tpu)")
    p.add_argument("--curve", action="store_true", help="only the docstring's N=300 curve")
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'
    if args.curve:
        return docstring_curve(args.seeds or 3, args.out + "_curve")
    cpu = args.preset == "cpu"
    seeds = args.seeds or (2 if cpu else 5)
    grid_q, grid_k = ((5, 10, 20), (5, 10, 20)) if cpu else ((5, 10, 20, 40), (5, 10, 20, 40))
    n_max, chunk = (1200, 50) if cpu else (4000, 100)
    t0 = time.perf_counter()
    rows, series = [], {}
    for q in grid_q:
        for k in grid_k:
            mac = SparseyMac(n_inputs=N, Q=q, K=k, saturation=None)
            runs = [curve(mac, n_max, chunk, args.seed + s) for s in range(seeds)]
            ns = [r[0] for r in runs[0]]
            exact = np.mean([[r[1] for r in run] for run in runs], axis=0)
            per_cm = np.mean([[r[2] for r in run] for run in runs], axis=0)
            g_nov = np.mean([[r[3] for r in run] for run in runs], axis=0)
            cap = 0
            for n, e in zip(ns, exact):
                if e < 0.99:
                    break
                cap = n
            at = ns.index(cap) if cap else 0
            rows.append(
                {
                    "Q": q,
                    "K": k,
                    "weights": N * q * k,
                    "capacity (≥99% exact)": f"{cap}" + ("+" if cap == n_max else ""),
                    f"exact recall @ {n_max}": float(exact[-1]),
                    f"per-CM recall @ {n_max}": float(per_cm[-1]),
                    "G novel @ capacity": float(g_nov[at]),
                }
            )
            if k == grid_k[-1] or q == grid_q[-1]:
                series[f"Q={q}, K={k}"] = (ns, exact)
            print(rows[-1], flush=True)
    write(
        args.out,
        rows,
        title="Sparsey capacity: items stored before recall degrades",
        notes={
            "preset": args.preset,
            "seeds": seeds,
            "setup": f"one mac, N={N} inputs ({ACTIVE} active), chunks of {chunk} up to "
            f"{n_max}, no freezing, default CSA constants",
            "seconds": round(time.perf_counter() - t0, 1),
        },
        series=series,
        xlabel="items stored",
        ylabel="fraction recalled exactly",
        png="capacity.png",
    )
    return rows


if __name__ == "__main__":
    main()
