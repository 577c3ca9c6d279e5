"""NTM and MANN cells: memjax (jit + scan) against a PyTorch transcription, and SG vs BPTT time.

**The peer.** No maintained PyPI package of an NTM or MANN cell exists (the PyPI package list
has none; pytorch-ntm and the MANN reproductions are GitHub scripts), so the peer is a
*faithful minimal PyTorch transcription* written here of exactly the equations memjax
implements (:mod:`memjax.memories.ntm`, :mod:`memjax.memories.mann`, the shared head-cell loop
of :mod:`memjax.memories.head_cell`): LSTM controller on ``[x_t ‖ r_{t-1}]`` (gates i, f, g, o),
outputs and interface clipped at ±20; NTM content addressing with β = oneplus, interpolation,
circular shift, sharpening ``softmax(γ log(w + ε))`` with γ = oneplus, reads of ``M_{t-1}``
then erase/add; MANN LRUA (least-used slot zeroed, write weights ``σ(α) w^r_{t-1} + (1-σ(α))
w^lu``, cosine-softmax reads of ``M_t``, usage decay 0.95). It is batched (one ``(B, ...)``
tensor per state), eager PyTorch, float32. The benchmark first loads memjax's weights into it
and checks both give the same outputs (max abs difference printed).

**Protocol.** Canonical size (Santoro et al. 2016 / spec §4.1): LSTM 200, memory 128 × 40, 4
read heads (NTM: 1 write head), batch 16, 50 steps, input 405. Forward = outputs of the 50
steps; forward+backward = gradient of their sum of squares w.r.t. every parameter. Warm-up
calls first (jit compile time reported separately), ``block_until_ready``, median of ``repeats``
timed calls, both peers in the same process on the same machine. memjax runs three ways
(:data:`VARIANTS`): the plain step loop under ``jax.vmap``; ``unroll(precompute=True)`` (the
controller's input projection of all steps as one matmul outside the scan); and
``unroll(precompute=True, weight_grads="after_loop", batched=True)`` (the batch inside the loop,
and the gradients of the weights applied in the loop formed after it, each as one matmul over
batch × time); and the same with ``remat="dots"`` (each step checkpointed, keeping its weight
products); and the same with ``checkpoint_every=5`` (segment checkpointing: reverse mode keeps
the carry, e.g. the memory, every 5 steps only and re-runs each 5-step segment). Then the SG
update time (all with ``precompute=True``): one
:class:`memjax.controllers.SyntheticGradients` update (carry SG at windows of 10 steps, plus the
write tap) against one update of truncated BPTT at the same window and of full BPTT.

**Threads.** Both peers get the same cores: ``--cores N`` (default 1) pins the whole process to
``N`` CPUs with ``os.sched_setaffinity`` *before* JAX is imported (XLA sizes its CPU thread pool
from the affinity mask) and sets ``torch.set_num_threads(N)``. Times are wall and process CPU
time (``time.process_time``), medians of interleaved repeats (memjax, torch, memjax, ... so
drifting load from other jobs hits both alike).

``--keep-freed`` tells glibc to keep freed memory (``mallopt``; both peers, the whole process),
so XLA's per-call residual buffers reuse pages instead of faulting in fresh ones.

Run: ``/work/venvs/bench/bin/python -m experiments.benchmarks.memory_cells [--repeats N]``
(any Python with torch; prints the tables that ``memory_cells.md`` records).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _pin_cores(argv) -> int:
    """Pin this process to the first ``--cores`` allowed CPUs (before JAX starts its pool);
    with ``--keep-freed``, tell glibc to keep freed memory (no fresh pages per call)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--cores", type=int, default=1)
    pre.add_argument("--keep-freed", action="store_true")
    known = pre.parse_known_args(argv)[0]
    cores = known.cores
    if known.keep_freed:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: heap, not mmap, up to 1 GiB
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: never give freed heap back
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= cores <= len(allowed):
        raise SystemExit(f"--cores: expected 1..{len(allowed)}, got {cores}")
    os.sched_setaffinity(0, allowed[:cores])
    return cores


if __name__ == "__main__":
    _pin_cores(sys.argv[1:])

import jax  # noqa: E402  (after the pinning above)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from memjax.controllers import SyntheticGradients  # noqa: E402
from memjax.core.unroll import unroll  # noqa: E402
from memjax.memories.mann import MANNCell  # noqa: E402
from memjax.memories.ntm import NTMCell  # noqa: E402

B, T, D_IN, HIDDEN, N, W, HEADS = 16, 50, 405, 200, 128, 40, 4
CLIP, EPS, LOG_EPS = 20.0, 1e-8, 1e-30


# ----------------------------------------------------------------------------- torch peer
def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float32, requires_grad=True)


def _oneplus(x):
    return 1.0 + torch.nn.functional.softplus(x)


def _norm(x):
    return torch.sqrt((x * x).sum(-1) + EPS)


def _content(keys, memory, beta):
    """keys (B, H, W), memory (B, N, W), beta (B, H) -> (B, H, N)."""
    sim = torch.einsum("bhw,bnw->bhn", keys, memory)
    sim = sim / (_norm(keys)[..., None] * _norm(memory)[:, None, :])
    return torch.softmax(beta[..., None] * sim, -1)


class TorchHeadCell:
    """The shared loop: LSTM controller, clip, interface Dense, clip, memory access."""

    def __init__(self, params, d_in_total):
        c = params["controller"]
        self.w_x = _t(np.asarray(c["w_x"]).reshape(d_in_total, -1))
        self.w_h = _t(np.asarray(c["w_h"]).reshape(HIDDEN, -1))
        self.bias = _t(np.asarray(c["bias"]).reshape(-1))
        self.kernel = _t(params["interface"]["kernel"])
        self.ibias = _t(params["interface"]["bias"])

    def parameters(self):
        return [self.w_x, self.w_h, self.bias, self.kernel, self.ibias]

    def controller(self, u, h, c):
        z = (u @ self.w_x + h @ self.w_h + self.bias).view(u.shape[0], 4, HIDDEN)
        i, f, g, o = (
            torch.sigmoid(z[:, 0]),
            torch.sigmoid(z[:, 1]),
            torch.tanh(z[:, 2]),
            torch.sigmoid(z[:, 3]),
        )
        c = f * c + i * g
        h = o * torch.tanh(c)
        hc = torch.clamp(h, -CLIP, CLIP)
        xi = torch.clamp(hc @ self.kernel + self.ibias, -CLIP, CLIP)
        return h, c, hc, xi


class TorchNTM(TorchHeadCell):
    hw = W + 3 + 2 * 1 + 1  # shift range 1

    def __init__(self, params):
        super().__init__(params, D_IN + HEADS * W)
        offsets = np.arange(-1, 2)[:, None]
        self.index = torch.tensor((np.arange(N)[None, :] - offsets) % N)

    def address(self, heads, w_prev, memory):
        k = heads[..., :W]
        beta = _oneplus(heads[..., W])
        g = torch.sigmoid(heads[..., W + 1])[..., None]
        gamma = _oneplus(heads[..., W + 2])[..., None]
        shift = torch.softmax(heads[..., W + 3 :], -1)
        w = _content(k, memory, beta)
        w = g * w + (1 - g) * w_prev
        w = torch.einsum("bho,bhon->bhn", shift, w[..., self.index])
        return torch.softmax(gamma * torch.log(w + LOG_EPS), -1)

    def run(self, xs):
        b = xs.shape[0]
        h = c = torch.zeros(b, HIDDEN)
        memory = torch.full((b, N, W), 1e-6)
        first = torch.zeros(N)
        first[0] = 1.0
        wr, ww = first.repeat(b, HEADS, 1), first.repeat(b, 1, 1)
        reads = torch.zeros(b, HEADS, W)
        ys = []
        for t in range(xs.shape[1]):
            u = torch.cat([xs[:, t], reads.reshape(b, -1)], -1)
            h, c, hc, xi = self.controller(u, h, c)
            read_heads = xi[:, : HEADS * self.hw].view(b, HEADS, self.hw)
            write = xi[:, HEADS * self.hw :].view(b, 1, -1)
            heads = torch.cat([read_heads, write[..., : self.hw]], 1)
            w = self.address(heads, torch.cat([wr, ww], 1), memory)
            wr, ww = w[:, :HEADS], w[:, HEADS:]
            reads = torch.einsum("bhn,bnw->bhw", wr, memory)
            erase = torch.sigmoid(write[..., self.hw : self.hw + W])
            add = write[..., self.hw + W :]
            memory = memory * (1 - ww[:, 0, :, None] * erase[:, 0, None, :])
            memory = memory + torch.einsum("bhn,bhw->bnw", ww, add)
            ys.append(torch.cat([hc, reads.reshape(b, -1)], -1))
        return torch.stack(ys, 1)


class TorchMANN(TorchHeadCell):
    def __init__(self, params):
        super().__init__(params, D_IN + HEADS * W)

    def run(self, xs):
        b = xs.shape[0]
        h = c = torch.zeros(b, HIDDEN)
        memory = torch.full((b, N, W), 1e-6)
        first = torch.zeros(N)
        first[0] = 1.0
        wr, usage = first.repeat(b, HEADS, 1), first.repeat(b, 1)
        reads = torch.zeros(b, HEADS, W)
        ys = []
        for t in range(xs.shape[1]):
            u = torch.cat([xs[:, t], reads.reshape(b, -1)], -1)
            h, c, hc, xi = self.controller(u, h, c)
            heads = xi.view(b, HEADS, W + 1)
            keys, alpha = torch.tanh(heads[..., :W]), heads[..., -1]
            # least used: ties to the higher index, as memjax (top_k of the reversed usage)
            rev = torch.topk(-usage.detach().flip(-1), HEADS, -1).indices
            index = N - 1 - rev
            w_lu = torch.zeros(b, N).scatter(1, index, 1.0)
            gate = torch.sigmoid(alpha)[..., None]
            ww = gate * wr + (1 - gate) * w_lu[:, None]
            keep = 1 - torch.nn.functional.one_hot(index[:, 0], N).float()
            memory = memory * keep[..., None] + torch.einsum("bhn,bhw->bnw", ww, keys)
            wr = _content(keys, memory, torch.ones(b, HEADS))
            reads = torch.einsum("bhn,bnw->bhw", wr, memory)
            usage = 0.95 * usage + wr.sum(1) + ww.sum(1)
            ys.append(torch.cat([hc, reads.reshape(b, -1)], -1))
        return torch.stack(ys, 1)


# ----------------------------------------------------------------------------- timing
def _interleaved(fns: dict, repeats: int) -> dict:
    """``{name: (median wall s, median CPU s)}``, the callables run in turn ``repeats`` times."""
    walls, cpus = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls[k].append(time.perf_counter() - wall)
            cpus[k].append(time.process_time() - cpu)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}


VARIANTS = {  # tag: (label, unroll options)
    "": ("step", {"precompute": False}),
    "+": ("precompute", {"precompute": True}),
    "*": ("after_loop", {"precompute": True, "weight_grads": "after_loop", "batched": True}),
    "^": (
        "after_loop+dots",
        {"precompute": True, "weight_grads": "after_loop", "batched": True, "remat": "dots"},
    ),
    "%": (
        "after_loop+dots+segments",
        {
            "precompute": True,
            "weight_grads": "after_loop",
            "batched": True,
            "remat": "dots",
            "checkpoint_every": 5,
        },
    ),
}


def bench_cell(name, cell, torch_cls, xs, repeats):
    """fwd and fwd+bwd of memjax in the :data:`VARIANTS` (the plain step loop under ``vmap``;
    ``precompute=True``, the controller's input projection hoisted out of the scan; and with
    ``weight_grads="after_loop"``, ``batched=True``: the weight gradients after the loop, one
    matmul over batch × time) against the torch peer, all interleaved."""
    theta = cell.init_params(jax.random.key(0))

    def forward(theta, xs, options):
        if options.get("batched"):
            carry = jax.tree_util.tree_map(
                lambda a: jnp.broadcast_to(a, (xs.shape[0], *a.shape)), cell.init_carry(theta)
            )
            return unroll(cell, theta, carry, xs, **options)[0]
        run = lambda x: unroll(cell, theta, cell.init_carry(theta), x, **options)[0]
        return jax.vmap(run)(xs)

    fns, compile_s = {}, {}
    for tag, (_, pc) in VARIANTS.items():
        fwd = jax.jit(lambda th, xs, pc=pc: forward(th, xs, pc))
        fwd_bwd = jax.jit(jax.grad(lambda th, xs, pc=pc: jnp.sum(forward(th, xs, pc) ** 2)))
        start = time.perf_counter()
        jax.block_until_ready(fwd(theta, xs))
        compile_s["f" + tag] = time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(fwd_bwd(theta, xs))
        compile_s["b" + tag] = time.perf_counter() - start
        fns["jf" + tag] = lambda fwd=fwd: jax.block_until_ready(fwd(theta, xs))
        fns["jb" + tag] = lambda fwd_bwd=fwd_bwd: jax.block_until_ready(fwd_bwd(theta, xs))
    peer = torch_cls(theta)
    txs = torch.tensor(np.asarray(xs))
    with torch.no_grad():
        want = peer.run(txs).numpy()
        diff = max(
            float(np.max(np.abs(want - np.asarray(forward(theta, xs, options)))))
            for _, options in VARIANTS.values()
        )

    def torch_fwd():
        with torch.no_grad():
            peer.run(txs)

    def torch_fwd_bwd():
        for p in peer.parameters():
            p.grad = None
        (peer.run(txs) ** 2).sum().backward()

    torch_fwd()
    torch_fwd_bwd()
    order = (*("jf" + t for t in VARIANTS), "tf", *("jb" + t for t in VARIANTS), "tb")
    fns.update(tf=torch_fwd, tb=torch_fwd_bwd)
    t = _interleaved({k: fns[k] for k in order}, repeats)
    row = {"cell": name, "max |memjax - torch|": diff}
    for tag, (label, _) in VARIANTS.items():
        jc_f, (j_b, jc_b) = t["jf" + tag][1], t["jb" + tag]
        row[f"{label}: fwd CPU ratio"] = t["tf"][1] / jc_f
        row[f"{label}: fwd+bwd CPU ratio"] = t["tb"][1] / jc_b
        row[f"{label}: fwd+bwd wall ratio"] = t["tb"][0] / j_b
        row[f"{label}: fwd+bwd CPU s"] = f"{jc_b:.3f}"
        row[f"{label}: compile fwd / fwd+bwd s"] = (
            f"{compile_s['f' + tag]:.1f} / {compile_s['b' + tag]:.1f}"
        )
    row["torch fwd+bwd CPU s"] = f"{t['tb'][1]:.3f}"
    row["torch fwd+bwd seq/s"] = B / t["tb"][0]
    return row, theta


def bench_sg(name, cell, theta, xs, repeats, window=10):
    """Seconds per update (wall and CPU): full BPTT, truncated BPTT (``jax.grad`` of one
    ``unroll(truncate=window)``), and :class:`SyntheticGradients` at the same window with
    λ = 1 (backprop only) and λ = 0 (the SG update: carry SG, plus the write tap)."""
    aux = jnp.zeros((B, T, cell.d_output), xs.dtype)
    loss = lambda ys, a: jnp.sum((ys - a) ** 2)
    targets = ("carry", "write") if "write" in cell.tap_names else ("carry",)

    def bptt(truncate):
        def mean_loss(th):
            carry = cell.init_carry(th)
            run = lambda x: unroll(cell, th, carry, x, truncate=truncate, precompute=True)[0]
            return jnp.mean(jax.vmap(loss)(jax.vmap(run)(xs), aux))

        g = jax.jit(jax.grad(mean_loss))
        return lambda: jax.block_until_ready(g(theta))

    fns = {"full BPTT": bptt(None), "truncated BPTT": bptt(window)}
    for label, kw in (
        ("SG path, λ = 1", {"sg_targets": ("carry",), "mix_lambda": 1.0}),
        ("SG, λ = 0", {"sg_targets": targets, "mix_lambda": 0.0}),
    ):
        sg = SyntheticGradients(cell, truncate=window, diagnose=False, precompute=True, **kw)
        phi = sg.init_params(jax.random.key(1), theta)
        fn = jax.jit(sg.gradients(loss))
        fns[label] = lambda fn=fn, phi=phi: jax.block_until_ready(fn(theta, phi, xs, aux))
    for fn in fns.values():
        fn()  # compile
    times = _interleaved(fns, repeats)
    row = {"cell": name, "window": window, "SG targets": " + ".join(targets)}
    for k, (wall, cpu) in times.items():
        row[f"{k} s (CPU s)"] = f"{wall:.3f} ({cpu:.3f})"
    trunc = times["truncated BPTT"][1]
    row["SG ÷ truncated BPTT (CPU)"] = times["SG, λ = 0"][1] / trunc
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cells", default="ntm,mann")
    parser.add_argument("--no-sg", action="store_true", help="skip the SG vs BPTT update table")
    parser.add_argument(
        "--keep-freed",
        action="store_true",
        help="glibc keeps freed memory (mallopt), for both peers: XLA's per-call residual "
        "buffers then reuse pages instead of faulting in fresh ones",
    )
    parser.add_argument(
        "--cores", type=int, default=1, help="CPUs for both peers (process pinned; torch threads)"
    )
    args = parser.parse_args(argv)
    if argv is not None:  # called as a function: pin now (JAX's pool may already be sized)
        _pin_cores(argv)
    torch.set_num_threads(args.cores)
    print(f"cores: {sorted(os.sched_getaffinity(0))}, torch threads: {torch.get_num_threads()}")
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, D_IN)), jnp.float32)
    cells = {
        "ntm": (
            NTMCell(D_IN, HIDDEN, memory_size=N, memory_width=W, num_read_heads=HEADS),
            TorchNTM,
        ),
        "mann": (MANNCell(D_IN, HIDDEN, memory_size=N, memory_width=W, num_heads=HEADS), TorchMANN),
    }
    speed, sg_rows = [], []
    for name in args.cells.split(","):
        cell, peer = cells[name]
        row, theta = bench_cell(name, cell, peer, xs, args.repeats)
        print(row, flush=True)
        speed.append(row)
        if not args.no_sg:
            sg_row = bench_sg(name, cell, theta, xs, args.repeats)
            print(sg_row, flush=True)
            sg_rows.append(sg_row)
    from memjax.train import write_results_table

    print(write_results_table(None, speed, title="memjax vs torch transcription (CPU)"))
    if sg_rows:
        print(write_results_table(None, sg_rows, title="one update: SG vs BPTT"))


if __name__ == "__main__":
    main()
