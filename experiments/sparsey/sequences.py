"""Sequence memory through the H (horizontal, t−1) path: store sequences, recall from a prefix.

    python -m experiments.sparsey.sequences             # cpu preset (the default)

Setup: one mac (N = 200 binary inputs, Q = 16, K = 16, no freezing) whose H input is its own
code at t−1 (``SparseyHierarchy`` of one level, ``h_rf`` = the mac's cells). Frames come from an
alphabet of 20 random patterns (10 active bits); S sequences of T = 8 frames are drawn from it, so
frames recur across sequences and inside them. Each sequence is learned once (single trial,
``reset_time`` between sequences). Recall: the first ``p`` frames are presented, then blank
frames; with no U input the CSA runs on H alone, so each code is chosen from the previous code.
Scores over the recalled steps t ≥ p: the code equals the stored one (exact), and the frame read
from the code (the alphabet frame whose stored codes share most cells with it) is right. The
first-order baseline predicts each next frame as the most frequent successor of the current frame
in the stored sequences (what a memory without context could do). Writes ``results.md``,
``metrics.jsonl`` and ``sequences.png`` into ``runs/sparsey/sequences/``.
"""

from __future__ import annotations

import time
from collections import Counter
from itertools import pairwise

import jax
import numpy as np

from experiments.sparsey.common import parser, write
from memjax.memories.sparsey import SparseyMac
from memjax.memories.sparsey.hierarchy import SparseyHierarchy, SparseyLevel, mac_cells
from memjax.train import enable_compilation_cache

N, ACTIVE, Q, K, ALPHABET, T = 200, 10, 16, 16, 20, 8


def build() -> SparseyHierarchy:
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, n_h=Q * K, gate_min=0, saturation=None)
    return SparseyHierarchy((SparseyLevel(mac, (tuple(range(N)),), h_rf=mac_cells(((0,),), Q, K)),))


def first_order(seqs, prefix):
    succ: dict[int, Counter] = {}
    for s in seqs:
        for a, b in pairwise(s):
            succ.setdefault(int(a), Counter())[int(b)] += 1
    right = total = 0
    for s in seqs:
        cur = int(s[prefix - 1])
        for t in range(prefix, T):
            cur = succ[cur].most_common(1)[0][0] if cur in succ else -1
            right += cur == int(s[t])
            total += 1
    return right / total


def trial(hier, n_seqs, prefixes, seed):
    rng = np.random.default_rng(seed)
    alphabet = np.zeros((ALPHABET, N), np.uint8)
    for a in alphabet:
        a[rng.choice(N, ACTIVE, replace=False)] = 1
    seqs = rng.integers(0, ALPHABET, (n_seqs, T))
    carry = hier.init_carry()
    stored = []
    for i, s in enumerate(seqs):
        carry, out = hier.run(hier.reset_time(carry), alphabet[s], key=jax.random.key(seed + i))
        stored.append(np.asarray(out[0].code[:, 0]))  # (T, Q)
    stored = np.stack(stored)  # (S, T, Q)
    flat_codes, flat_frames = stored.reshape(-1, Q), seqs.reshape(-1)
    res = {}
    for p in prefixes:
        exact = frame_ok = 0
        for i, s in enumerate(seqs):
            frames = alphabet[s].copy()
            frames[p:] = 0
            _, out = hier.run(
                hier.reset_time(carry), frames, key=jax.random.key(10_000 + i), mode="recognize"
            )
            got = np.asarray(out[0].code[:, 0])  # (T, Q)
            exact += int((got[p:] == stored[i, p:]).all(1).sum())
            overlap = (got[p:, None, :] == flat_codes[None]).sum(-1)  # (T-p, S*T)
            votes = np.zeros((T - p, ALPHABET))
            for f in range(ALPHABET):
                votes[:, f] = overlap[:, flat_frames == f].max(1, initial=-1)
            frame_ok += int((votes.argmax(1) == s[p:]).sum())
        n = n_seqs * (T - p)
        res[p] = (exact / n, frame_ok / n, first_order(seqs, p))
    return res


def main(argv=None):
    p = parser(__doc__, "sequences")
    p.add_argument("--seeds", type=int, default=None, help="default: 2 (cpu), 5 (gpu/tpu)")
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'
    cpu = args.preset == "cpu"
    seeds = args.seeds or (2 if cpu else 5)
    sizes = (5, 10, 20, 40) if cpu else (5, 10, 20, 40, 80, 160)
    prefixes = (1, 2)
    hier = build()
    t0 = time.perf_counter()
    rows, series = [], {}
    for n in sizes:
        runs = [trial(hier, n, prefixes, args.seed + 100 * s) for s in range(seeds)]
        for pre in prefixes:
            ex, fr, fo = (float(np.mean([r[pre][j] for r in runs])) for j in range(3))
            rows.append(
                {
                    "sequences stored": n,
                    "frames stored": n * T,
                    "prefix": pre,
                    "exact code recall": ex,
                    "frame recall": fr,
                    "first-order baseline": fo,
                }
            )
            series.setdefault(f"Sparsey, prefix {pre}", ([], []))
            series[f"Sparsey, prefix {pre}"][0].append(n)
            series[f"Sparsey, prefix {pre}"][1].append(fr)
            series.setdefault(f"first-order, prefix {pre}", ([], []))
            series[f"first-order, prefix {pre}"][0].append(n)
            series[f"first-order, prefix {pre}"][1].append(fo)
            print(rows[-1], flush=True)
    write(
        args.out,
        rows,
        title="Sparsey sequence recall from a prefix (H path)",
        notes={
            "preset": args.preset,
            "seeds": seeds,
            "setup": f"one mac N={N} ({ACTIVE} active), Q={Q}, K={K}, H = own code at t−1; "
            f"alphabet {ALPHABET} frames, sequences of {T}",
            "seconds": round(time.perf_counter() - t0, 1),
        },
        series=series,
        xlabel="sequences stored",
        ylabel="frames recalled after the prefix",
        png="sequences.png",
    )
    return rows


if __name__ == "__main__":
    main()
