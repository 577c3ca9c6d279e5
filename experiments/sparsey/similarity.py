"""Similar inputs get similar codes (SISC): input overlap vs code overlap, one mac, many seeds.

    python -m experiments.sparsey.similarity            # cpu preset (the default)

Setup (spec §5, the canonical CSA's reference behaviour): one mac, N = 400 binary inputs with
20 active (5%), Q = 20, K = 20, G⁻ = 0.2, γ = 2, χ = 100, logistic λ = 10, θ = 0.7, no freezing.
20 random patterns are stored in one trial each. Every stored pattern A is then perturbed so a
fraction s of its active bits is kept (the rest moved to random inactive positions) and coded
in *learning* mode (sampled, as the spec's table) and in recognition mode (max-V); the mean
intersection |C(X) ∩ C(A)| of Q = 20 and the mean familiarity G are averaged over stored
patterns and seeds. Writes ``results.md``, ``metrics.jsonl`` and ``similarity.png`` into
``runs/sparsey/similarity/``.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.sparsey.common import parser, random_patterns, write
from memjax.memories.sparsey import SparseyMac, code_overlap
from memjax.train import enable_compilation_cache

N, ACTIVE, Q, K, N_STORED = 400, 20, 20, 20, 20
LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
# shared/papers/sparsey.md §5: NumPy reference of the canonical CSA, one seed, learning mode.
SPEC_OVERLAP = (19.16, 18.98, 18.84, 18.10, 16.05, 12.12, 5.93, 2.12, 1.10, 1.09, 0.97)
SPEC_G = (1.000, 0.904, 0.809, 0.714, 0.617, 0.520, 0.426, 0.331, 0.248, 0.210, 0.202)


def perturb(rng, x, s):
    keep = round(s * ACTIVE)
    p = x.copy()
    p[rng.choice(np.flatnonzero(x), ACTIVE - keep, replace=False)] = 0
    p[rng.choice(np.flatnonzero(x == 0), ACTIVE - keep, replace=False)] = 1
    return p


def measure(mac, seed):
    """Mean code overlap (learn, recognise) and G at every level of s, for one seed."""
    rng = np.random.default_rng(seed)
    stored = random_patterns(rng, N_STORED, N, ACTIVE)
    state, learned = mac.learn(mac.init_state(), stored, key=jax.random.key(seed))
    probes = np.stack([perturb(rng, x, s) for s in LEVELS for x in stored])
    ref = np.tile(np.asarray(learned.code), (len(LEVELS), 1))
    # Each probe coded from the stored state on its own (sampled, nothing written).
    sampled = mac.propose(state, probes, key=jax.random.key(10_000 + seed))
    found = mac.recognize(state, probes, key=jax.random.key(20_000 + seed), ties="per_item")
    shape = (len(LEVELS), N_STORED)
    return (
        np.asarray(code_overlap(sampled.code, ref)).reshape(shape).mean(1),
        np.asarray(code_overlap(found.code, ref)).reshape(shape).mean(1),
        np.asarray(sampled.familiarity).reshape(shape).mean(1),
    )


def main(argv=None):
    p = parser(__doc__, "similarity")
    p.add_argument("--seeds", type=int, default=None, help="default: 20 (cpu), 100 (gpu/tpu)")
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'
    seeds = args.seeds or (20 if args.preset == "cpu" else 100)
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None)
    t0 = time.perf_counter()
    runs = [measure(mac, args.seed + i) for i in range(seeds)]
    learn_ov, rec_ov, g = (np.stack(r) for r in zip(*runs))
    rows = []
    for i, s in enumerate(LEVELS):
        rows.append(
            {
                "s (input overlap)": s,
                "code overlap, learn (of 20)": float(learn_ov[:, i].mean()),
                "± sd over seeds": float(learn_ov[:, i].std()),
                "code overlap, recognise": float(rec_ov[:, i].mean()),
                "G": float(g[:, i].mean()),
                "spec §5 overlap": SPEC_OVERLAP[i],
                "spec §5 G": SPEC_G[i],
            }
        )
    ov = learn_ov.mean(0)
    corr = float(np.corrcoef(LEVELS, ov)[0, 1])
    write(
        args.out,
        rows,
        title="Sparsey SISC: input overlap vs code overlap",
        notes={
            "preset": args.preset,
            "seeds": seeds,
            "setup": f"one mac N={N} ({ACTIVE} active), Q={Q}, K={K}, {N_STORED} stored, "
            "G⁻=0.2, γ=2, χ=100, λ=10, θ=0.7",
            "Pearson r(s, code overlap)": round(corr, 3),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        series={
            "memjax, learn mode": (LEVELS, ov),
            "memjax, recognition": (LEVELS, rec_ov.mean(0)),
            "spec §5 (NumPy reference)": (LEVELS, SPEC_OVERLAP),
        },
        xlabel="input overlap s = |X∩A|/|A|",
        ylabel="mean |C(X) ∩ C(A)| (of Q = 20)",
        png="similarity.png",
    )
    print(
        f"similarity: overlap at s=1 {ov[0]:.2f}, s=0.5 {ov[5]:.2f}, s=0 {ov[-1]:.2f}; r={corr:.3f}"
    )
    return rows


if __name__ == "__main__":
    main()
