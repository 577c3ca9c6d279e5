"""The jitted batched drivers behind :class:`~memjax.memories.sparsey.SparseyMac`'s verbs:
learning as one ``lax.scan`` over the items (steps 1–12 of the CSA per item, module
:mod:`~memjax.memories.sparsey.csa`), and recognition, propose and encode as a ``vmap`` over a
batch with the mac's tables packed once.

On XLA:CPU the learning loop of :meth:`SparseyMac.learn` is compiled as **one kernel**
(:func:`scan_one_kernel`): the thunk runtime otherwise runs every fusion of the loop body as a
kernel of its own, and an item's work (a few thousand word operations) costs less than
dispatching its ~20 kernels. Same HLO, same values (codes, flags and floats identical)."""

from __future__ import annotations

import importlib.metadata
from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

try:
    from jax.experimental.xla_metadata import set_xla_metadata
except ImportError:  # an experimental API: without it, the plain scan
    set_xla_metadata = None

from memjax.memories.sparsey._threefry import learn_draws_batch, tie_noise_batch, tie_noise_fast
from memjax.memories.sparsey.csa import (
    Trace,
    apply_pending,
    choose,
    encode,
    inputs,
    learn_draws,
    no_pending,
    report,
    select,
    sigmoid_table,
    tie_order,
)

if TYPE_CHECKING:
    from memjax.memories.sparsey.mac import SparseyMac


SIGMOID_TABLE_MAX = 1 << 22  # entries (16 MB) of the per-item sigmoid tables of one call


def scan_one_kernel(body, init, xs):
    """``jax.lax.scan(body, init, xs)``, on CPU compiled as one kernel.

    The scan is a nested ``jit`` whose call carries XLA's frontend attributes
    ``xla_cpu_small_call="true"`` (XLA:CPU's thunk emitter compiles a call so tagged into a
    single kernel: the code path its small-while-loop hoisting uses) and ``inlineable="false"``
    (so the call is not inlined); inside it both are set back to the defaults. Only this loop is
    affected: no global flag, no other executable. Other platforms run the plain scan
    (``lax.platform_dependent``). The kernel emitter has no library fusions, so the body must
    lower to XLA's own elementwise and reduction code (the Sparsey learning body does; where
    it does not, compilation fails with ``UNIMPLEMENTED`` and :meth:`SparseyMac.learn` falls
    back to the plain scan)."""
    run = lambda c, x: jax.lax.scan(body, c, x)

    def one_kernel_loop(c, x):  # inside: the defaults again (inner calls inline as usual)
        with set_xla_metadata(xla_cpu_small_call="false", inlineable="true"):
            return run(c, x)

    def cpu(c, x):
        with set_xla_metadata(xla_cpu_small_call="true", inlineable="false"):
            return jax.jit(one_kernel_loop)(c, x)

    return jax.lax.platform_dependent(init, xs, cpu=cpu, default=run)


@partial(jax.jit, static_argnums=(6, 7))
def _learn_jit(mac: SparseyMac, state, xs, hs, ds, key, one_kernel, full):
    # Draws (module _threefry: the Threefry hash unrolled, the bits of vmap(learn_draws) over
    # split keys) and packed inputs for every item up front (vectorised, outside the loop); for
    # a U-only mac in one kernel also the sigmoid tables (module csa: f(V) then costs one
    # gather per cell in the loop instead of an exponential), when they are small.
    draws = learn_draws_batch(key, xs.shape[0], mac.Q)
    inp = jax.vmap(lambda x, h, d: inputs(mac, x, h, d))(xs, hs, ds)
    packed = mac.pack_state(state)
    n1 = mac.n_inputs + 1
    u_only = hs is None and ds is None and mac.phi_u == 1.0
    # The sigmoid tables: per item (T rows) or, when fewer, one per possible count π_U = 0..N
    # (N + 1 rows; an item reads row π_U). Either way entry u of a row is f(clip(u / π_U)).
    rows_needed = min(xs.shape[0], n1)
    tabled = one_kernel and u_only and rows_needed * n1 <= SIGMOID_TABLE_MAX
    by_count = tabled and n1 < xs.shape[0]
    tables = None
    if by_count:
        by_pi = jax.vmap(lambda c: sigmoid_table(mac, c))(jnp.arange(n1, dtype=jnp.float32))
    elif tabled:
        tables = jax.vmap(lambda c: sigmoid_table(mac, c))(inp[0].count)
    # report="scalars" of a U-only mac: G needs only each CM's largest raw sum (V is a
    # non-decreasing function of u there, so max_k V = V(max_k u)): Q sums leave the loop, not QK.
    maxima = not full and u_only

    def body(carry, item):
        packed, pend = carry
        packed = apply_pending(mac, packed, pend)  # the previous item's write (module csa)
        frame, dr, table = item
        if by_count:
            table = by_pi[frame[0].count.astype(jnp.int32)]
        trace, pend = select(mac, packed, frame, dr, table)
        # One int32 row per item leaves the loop (one in-place write): code, stored, raw sums.
        if maxima:
            raws = [jnp.max(trace.raws[0], axis=-1)]
        else:
            raws = [r.reshape(-1) for r in trace.raws if r is not None]
        return (packed, pend), jnp.concatenate([trace.code, trace.stored[None], *raws])

    first = no_pending(mac, jax.tree.map(lambda a: a[0], inp))
    scan = scan_one_kernel if one_kernel else jax.lax.scan
    (packed, pend), rows = scan(body, (packed, first), (inp, draws, tables))
    Q, K = mac.Q, 1 if maxima else mac.K
    raws, at = [], Q + 1
    for i in inp:  # with maxima: (T, Q, 1), one "cell" per CM holding its largest raw sum
        raws.append(None if i is None else rows[:, at : at + Q * K].reshape(-1, Q, K))
        at += 0 if i is None else Q * K
    counts = tuple(None if i is None else i.count for i in inp)
    trace = Trace(rows[:, :Q], rows[:, Q].astype(jnp.bool_), tuple(raws), counts)
    # V, G, eta and rho of every item at once, from the raw sums the loop left (module csa).
    out = jax.vmap(lambda tr: report(mac, tr))(trace)
    if not full:  # report="scalars": V and rho are never computed (dead code in this jit)
        out = out._replace(support=None, rho=None)
    return mac.unpack_state(apply_pending(mac, packed, pend)), out


_PLAIN_LOOP = set()  # (mac, shapes) whose learning loop did not compile as one kernel
ONE_KERNEL_MIN_ITEMS = 16  # shorter runs gain nothing (and a 1-trip loop is simplified away)
# Only where it was verified: XLA's kernel emitter aborts the process (an internal check, no
# Python exception) on loops it cannot take, e.g. a 1-trip loop; on another jaxlib, or without
# the experimental metadata API, learning runs the plain scan (the same values).
ONE_KERNEL = set_xla_metadata is not None and importlib.metadata.version("jaxlib").startswith(
    "0.10."
)


def _learn(mac, state, xs, hs, ds, key, full=True):
    """``_learn_jit`` with the loop as one kernel (:func:`scan_one_kernel`) when called
    eagerly on at least ``ONE_KERNEL_MIN_ITEMS`` items on jaxlib 0.10 (``ONE_KERNEL``); under
    an outer trace, for shorter runs and for any configuration whose loop the kernel emitter
    cannot compile, the plain ``lax.scan`` (the same values). ``full=False``: without V and ρ."""
    args = (state, xs, hs, ds, key)
    traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args))
    sig = (mac, *((a.shape, a.dtype) for a in jax.tree.leaves((state, xs, hs, ds))))
    if not ONE_KERNEL or traced or xs.shape[0] < ONE_KERNEL_MIN_ITEMS or sig in _PLAIN_LOOP:
        return _learn_jit(mac, *args, False, full)
    try:
        return _learn_jit(mac, *args, True, full)
    except jax.errors.JaxRuntimeError as e:
        if "UNIMPLEMENTED" not in str(e):
            raise
        _PLAIN_LOOP.add(sig)
        return _learn_jit(mac, *args, False, full)


@partial(jax.jit, static_argnums=(6, 7))
def _batch_jit(mac: SparseyMac, state, xs, hs, ds, key, mode, shared):
    packed = mac.pack_state(state)
    # Shared ties: the one draw every item would make from the same key, made once; else one
    # per item from split(key, B) (module _threefry: the same bits as jax.random's).
    n = xs.shape[0]
    if mode == "learn":
        draws = learn_draws(key, mac.Q) if shared else learn_draws_batch(key, n, mac.Q)
    else:
        draws = (
            tie_noise_fast(key, mac.Q, mac.K) if shared else tie_noise_batch(key, n, mac.Q, mac.K)
        )

    def one(x, h, d, dr):
        out, _ = choose(mac, packed, inputs(mac, x, h, d), dr, mode)
        return out._replace(stored=jnp.zeros((), jnp.bool_))

    return jax.vmap(one, in_axes=(0, 0, 0, None if shared else 0))(xs, hs, ds, draws)


@partial(jax.jit, static_argnums=(6,))
def _encode_jit(mac: SparseyMac, state, xs, hs, ds, key, shared):
    packed = mac.pack_state(state)
    if shared:  # one tie-break order for the batch: its ranks computed once
        noise = tie_noise_fast(key, mac.Q, mac.K)
        order = tie_order(noise)
        one = lambda x, h, d: encode(mac, packed, inputs(mac, x, h, d), noise, order)
        return jax.vmap(one)(xs, hs, ds)
    noise = tie_noise_batch(key, xs.shape[0], mac.Q, mac.K)
    one = lambda x, h, d, n: encode(mac, packed, inputs(mac, x, h, d), n)
    return jax.vmap(one)(xs, hs, ds, noise)
