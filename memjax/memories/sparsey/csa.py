r"""The Sparsey Code Selection Algorithm (CSA) on bit-packed weights: one mac, one frame.

The maths is in :mod:`memjax.memories.sparsey.mac` (steps 1–14 of Rinkus's CSA, 2010/2014);
this module is the compiled kernel every verb runs. A mac's weights live in a
:class:`Packed` table (:mod:`memjax.memories.sparsey.bits`: 32 presynaptic units per word), so
the raw sums are population counts and a Hebbian write is a bitwise OR of the packed input into
the winners' columns.

Learning is a ``lax.scan`` whose carry is ``(Packed, Pending)``: the frame at ``t`` first applies
the *pending* write of frame ``t−1`` (steps 10–12) and then chooses its own code (steps 1–9,
:func:`select`) from the updated table. The result is the same sequence of states as "choose,
then write", but every read of the carried table follows the write it depends on, so XLA updates
the table in place instead of copying it on every item. Only what the next frame needs is
computed inside the loop: the frame's :class:`Trace` (code, stored flag, raw sums and input
counts) leaves the scan, and :func:`report` recomputes V, G, η and ρ from it for all frames at
once (steps 2–8 are a pure function of the raw sums and counts). The saturation test of step 12
counts set U weights incrementally: a write into winner :math:`c_q` sets
:math:`\pi_U - u(c_q)` new bits of that cell.

Recognition (:func:`choose` in ``"recognize"`` mode, vmapped over a batch) takes per CM the
max-V cell with a random tie-break (step 9); the per-CM maxima and the tie-break are
elementwise over the K cell slices. :func:`encode` computes the code alone, for U-only
evidence with :math:`\phi_U = 1` as one integer max per CM (see :func:`_pick_max_raws`).

Example:
    >>> import jax, numpy as np
    >>> from memjax.memories.sparsey import SparseyMac
    >>> from memjax.memories.sparsey.csa import apply_pending, choose, inputs
    >>> from memjax.memories.sparsey.csa import learn_draws, tie_noise
    >>> mac = SparseyMac(n_inputs=16, Q=2, K=4, saturation=None)
    >>> x = np.zeros(16, np.uint8); x[:3] = 1
    >>> packed = mac.pack_state(mac.init_state())
    >>> out, pend = choose(mac, packed, inputs(mac, x), learn_draws(jax.random.key(0), 2), "learn")
    >>> packed = apply_pending(mac, packed, pend)
    >>> again, _ = choose(mac, packed, inputs(mac, x), tie_noise(jax.random.key(1), 2, 4),
    ...                   "recognize")
    >>> float(again.familiarity), bool((again.code == out.code).all()), int(packed.n_set)
    (1.0, True, 6)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.memories.sparsey.bits import pack_bits, pack_table, raw_sums

__all__ = [
    "CSAResult",
    "Input",
    "Packed",
    "Pending",
    "Trace",
    "apply_pending",
    "choose",
    "count_set",
    "effective_table",
    "encode",
    "expansivity",
    "inputs",
    "learn_draws",
    "no_pending",
    "report",
    "select",
    "sigmoid_table",
    "tie_noise",
    "tie_order",
]

# Backoff (step 14) subsets below the full evidence, by order; types U = 0, H = 1, D = 2, in the
# fixed order HU, UD, HD then U, H, D (the first wins a tie in G).
_ORDERS = (((0, 1), (0, 2), (1, 2)), ((0,), (1,), (2,)))


class CSAResult(NamedTuple):
    """One frame of the CSA: the code and the quantities that chose it.

    ``code`` ``(Q,)`` int32 winners (``-1`` when not ``active``); ``active`` the gate (step 1);
    ``familiarity`` G; ``expansivity`` η; ``support`` V ``(Q, K)``; ``rho`` ρ ``(Q, K)``;
    ``stored`` whether this frame wrote the code into the weights (``learn``/``learn_one`` on
    an active, unfrozen mac; always ``False`` from ``csa``, ``propose`` and ``recognize``).
    """

    code: jax.Array
    active: jax.Array
    familiarity: jax.Array
    expansivity: jax.Array
    support: jax.Array
    rho: jax.Array
    stored: jax.Array


class Packed(NamedTuple):
    """A mac's weights as the kernel reads them.

    ``tables``: per type (U, H, D) the effective binary weights packed ``(⌈N/32⌉, Q·K)`` uint32,
    ``None`` for an absent type. ``ages``: with ``permanence``, per type the step of the last
    pre–post coincidence ``(N, Q, K)`` int32 (``-1`` never), else ``None``. ``step``, ``frozen``
    as in :class:`~memjax.memories.sparsey.SparseyState`; ``n_set`` the number of set U weights
    (int32, :func:`count_set`), which the saturation test of step 12 reads.
    """

    tables: tuple
    ages: tuple
    step: jax.Array
    frozen: jax.Array
    n_set: jax.Array


class Input(NamedTuple):
    """One evidence type of one frame: packed ``words``, ``count`` π (active units) and, only
    with ``permanence``, the ``dense`` bool vector (``None`` otherwise)."""

    words: jax.Array
    count: jax.Array
    dense: jax.Array | None


class Pending(NamedTuple):
    """A chosen code not yet written: ``write`` (active and not frozen), the winner ``rows``
    ``(Q·K,)`` bool, the frame's :class:`Input` per type (``None`` where absent) and ``gain``,
    the number of U weights the write newly sets (int32: :math:`\\sum_q \\pi_U - u(c_q)`)."""

    write: jax.Array
    rows: jax.Array
    inputs: tuple
    gain: jax.Array


class Trace(NamedTuple):
    """What a learning frame leaves for :func:`report`: ``code`` ``(Q,)``, ``stored``, and per
    type the raw sums ``raws`` ``(Q, K)`` int32 and input counts ``counts`` π (``None`` where
    the type is absent)."""

    code: jax.Array
    stored: jax.Array
    raws: tuple
    counts: tuple


def expansivity(g, *, g_minus: float, gamma: float, chi: float, K: int):
    """Step 6: :math:`\\eta = 1 + \\max(0, (G - G^-)/(1 - G^-))^\\gamma \\chi K`."""
    excess = jnp.maximum(0.0, (g - g_minus) / (1.0 - g_minus))
    return 1.0 + excess**gamma * (chi * K)


def learn_draws(key, Q: int):
    """The two ``(Q,)`` uniforms a learning frame uses: ``k_sample, k_tie = split(key)``; the
    first picks each CM's winner by inverse CDF, the second breaks max-V ties of a frozen mac."""
    k_sample, k_tie = jax.random.split(key)
    return jax.random.uniform(k_sample, (Q,)), jax.random.uniform(k_tie, (Q,))


def tie_noise(key, Q: int, K: int):
    """Recognition's tie-break priorities ``(Q, K)``: ``uniform(split(key)[1])``; among the
    max-V cells of a CM the one with the largest priority wins."""
    return jax.random.uniform(jax.random.split(key)[1], (Q, K))


def _tree(fn, parts):
    """``fn`` folded over ``parts`` as a balanced tree (exact for ``max``/``min``)."""
    while len(parts) > 1:
        paired = [fn(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = paired + parts[len(paired) * 2 :]
    return parts[0]


def _cm_max(v):
    """Per-CM maximum over the last axis ``(…, K)`` → ``(…)``, as elementwise maxima of the K
    cell slices: one fused loop, where a ``max`` reduction over a short minor axis is a
    separate library call on XLA:CPU. The same values as ``jnp.max(v, axis=-1)``."""
    return _tree(jnp.maximum, [v[..., k] for k in range(v.shape[-1])])


def _pick_max(v, noise):
    """Per CM, the max-V cell; ties broken by the largest ``noise`` (uniform ⇒ uniform pick;
    equal priorities: the first such cell, as ``argmax``). Elementwise over the K cells."""
    K = v.shape[-1]
    prio = jnp.where(v == _cm_max(v)[..., None], noise, -1.0)
    top = _cm_max(prio)
    first = [jnp.where(prio[..., k] == top, k, K) for k in range(K)]
    return _tree(jnp.minimum, first).astype(jnp.int32)


def _u_only(mac, raws) -> bool:
    """Whether V is a monotone function of the U raw sums alone (U the only type, no backoff,
    :math:`\\phi_U = 1`, and the integer key of :func:`_pick_max_raws` fits in int32)."""
    return (
        raws[1] is None
        and raws[2] is None
        and mac.backoff is None
        and mac.phi_u == 1.0
        and (mac.n_inputs + 2) * mac.K * mac.K < 2**31
    )


def tie_order(noise):
    """The rank of every cell in its CM's tie-break order ``(Q, K)`` int32: 0 for the largest
    ``noise``, equal priorities in cell order (as ``argmax`` breaks them)."""
    K = noise.shape[-1]
    earlier = (jnp.arange(K)[None, :] < jnp.arange(K)[:, None]).reshape(
        (1,) * (noise.ndim - 1) + (K, K)
    )
    ahead = (noise[..., None, :] > noise[..., :, None]) | (
        (noise[..., None, :] == noise[..., :, None]) & earlier
    )
    return jnp.sum(ahead, axis=-1, dtype=jnp.int32)


def _pick_max_raws(mac, raw, count, order):
    """:func:`_pick_max` for U alone with :math:`\\phi_U = 1`, on integers.

    There :math:`V = \\operatorname{clip}(u/\\pi_U)` is a non-decreasing function of the raw
    sum that ties exactly where the clipped sums tie, so the winner of a CM is the cell with the
    largest key ``(c·K + (K−1−r))·K + k``: ``c`` the raw sum clipped like V (``0`` below
    ``min_cutoff``, ``N+1`` at or above ``max_cutoff``), ``r`` the cell's rank
    (:func:`tie_order`), ``k`` the cell. Keys are distinct within a CM, so one max gives the
    cell (``key mod K``): the code :func:`_pick_max` picks on V, with one integer max (a
    ``max`` reduction over the CM's K keys: vmapped over a batch it fuses with the keys' own
    computation, where the slice tree of :func:`_cm_max` made XLA materialise them first)."""
    K = raw.shape[-1]
    if mac.min_cutoff == 0.0 and mac.max_cutoff == 1.0 and mac.n_inputs < 2**24:
        # The default clip on integers: u / max(π, 1) >= 1 exactly when u >= max(π, 1) (exact
        # float32 quotients of integers below 2^24), and never < 0.
        top = jnp.maximum(count, 1.0).astype(jnp.int32)
        clipped = jnp.where(raw >= top, mac.n_inputs + 1, raw)
    else:
        x = raw.astype(jnp.float32) / jnp.maximum(count, 1.0)
        clipped = jnp.where(
            x >= mac.max_cutoff, mac.n_inputs + 1, jnp.where(x < mac.min_cutoff, 0, raw)
        )
    key = (clipped * K + (K - 1 - order)) * K + jax.lax.broadcasted_iota(
        jnp.int32, raw.shape, raw.ndim - 1
    )
    return (jnp.max(key, axis=-1) % K).astype(jnp.int32)


def encode(mac, packed: Packed, inp: tuple, noise, order=None):
    """Recognition's code alone (steps 1–4 and 9): ``(Q,)`` int32, ``-1`` when gated off.

    The same code as :func:`choose` in ``"recognize"`` mode with draws ``noise``, without
    G, η and ρ. With ``order = tie_order(noise)`` given and V a monotone function of the U raw
    sums (U only, no backoff, :math:`\\phi_U = 1`) it is picked on integers
    (:func:`_pick_max_raws`); otherwise from V."""
    raws, counts = _raws(mac, packed, inp), _counts(inp)
    pi_u = counts[0]
    anything = jnp.zeros((), jnp.bool_)
    for raw, count in zip(raws, counts):
        if raw is not None:
            anything = anything | (count > 0)
    active = _gate(mac, pi_u) & anything
    if order is not None and _u_only(mac, raws):
        code = _pick_max_raws(mac, raws[0], pi_u, order)
    else:
        code = _pick_max(_evidence(mac, raws, counts, "recognize")[0], noise)
    return jnp.where(active, code, -1)


def _pick_tied(v, u):
    """Per CM, the ``⌊u·n⌋``-th of the ``n`` max-V cells (``u`` ``(Q,)`` uniform ⇒ uniform)."""
    tied = v == _cm_max(v)[..., None]
    n = jnp.sum(tied, axis=-1)
    r = jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)
    return jnp.sum(jnp.cumsum(tied, axis=-1) <= r[:, None], axis=-1).astype(jnp.int32)


def _sample(rho, u):
    """Per CM, the first cell whose cumulative ρ reaches ``u`` ∈ [0, 1) (inverse CDF).

    The cumulative sums are running float32 sums in cell order over the K cell slices (the
    order a product with the upper-triangular ones matrix accumulates in), elementwise: inside
    the learning loop a matrix product is a library call of its own."""
    K = rho.shape[-1]
    cdf = [rho[..., 0]]
    for k in range(1, K):
        cdf.append(cdf[-1] + rho[..., k])
    below = [(c < u * cdf[-1]).astype(jnp.int32) for c in cdf]
    return jnp.minimum(_tree(jnp.add, below), K - 1).astype(jnp.int32)


def count_set(table) -> jax.Array:
    """The number of set weights of a packed table (int32)."""
    return jnp.sum(jax.lax.population_count(table), dtype=jnp.int32)


def effective_table(mac, ages, step):
    """Step 11: a weight reads 1 while its last coincidence is at most ``permanence`` learning
    frames old (set at step ``s``, it is visible up to and including step ``s + permanence``)."""
    return pack_table((ages >= 0) & (step - ages <= mac.permanence))


def inputs(mac, x, h=None, d=None) -> tuple:
    """The frame's evidence per type: an :class:`Input` or ``None`` (no such input given)."""

    def one(a):
        if a is None:
            return None
        a = jnp.asarray(a)
        dense = (a != 0) if mac.permanence is not None else None
        words = pack_bits(a)  # π counted on the packed words: 32× fewer elements
        count = jnp.sum(jax.lax.population_count(words), dtype=jnp.int32).astype(jnp.float32)
        return Input(words, count, dense)

    return (one(x), one(h), one(d))


def no_pending(mac, like: tuple) -> Pending:
    """A pending write that writes nothing, shaped like the per-type inputs ``like``."""
    zeros = jax.tree.map(jnp.zeros_like, like)
    return Pending(
        jnp.zeros((), jnp.bool_),
        jnp.zeros((mac.Q * mac.K,), jnp.bool_),
        zeros,
        jnp.zeros((), jnp.int32),
    )


def apply_pending(mac, packed: Packed, pend: Pending) -> Packed:
    """Steps 10–12 for a chosen code: set :math:`w(j, c_q) = 1` for every active pre ``j`` and
    winner ``c_q`` (when ``pend.write``), advance the clock, and freeze once the fraction of set
    U weights exceeds ``saturation``."""
    tables, ages = list(packed.tables), list(packed.ages)
    step = packed.step
    rows = pend.rows & pend.write
    for t, inp in enumerate(pend.inputs):
        if inp is None or tables[t] is None:
            continue
        if mac.permanence is None:
            tables[t] = tables[t] | jnp.where(rows[None, :], inp.words[:, None], jnp.uint32(0))
        else:
            hit = inp.dense[:, None] & rows[None, :]
            ages[t] = jnp.where(hit.reshape(ages[t].shape), step, ages[t])
    step = step + pend.write.astype(jnp.int32)
    if mac.permanence is None:
        n_set = packed.n_set + jnp.where(pend.write, pend.gain, 0)
    else:
        tables = [None if a is None else effective_table(mac, a, step) for a in ages]
        n_set = count_set(tables[0])
    frozen = packed.frozen
    if mac.saturation is not None:
        total = mac.n_inputs * mac.Q * mac.K
        frozen = frozen | (n_set.astype(jnp.float32) / total > mac.saturation)
    return Packed(tuple(tables), tuple(ages), step, frozen, n_set)


def _raws(mac, packed: Packed, inp: tuple) -> tuple:
    """Step 2 per type: raw sums ``(Q, K)`` int32, ``None`` where the type is absent."""
    return tuple(
        None
        if inp[t] is None or packed.tables[t] is None
        else raw_sums(packed.tables[t], inp[t].words).reshape(mac.Q, mac.K)
        for t in range(3)
    )


def _normalised(mac, raw, count, phi):
    """Step 3 for one evidence type: ``(X (Q, K), present, φ)``."""
    x = raw.astype(jnp.float32) / jnp.maximum(count, 1.0)
    x = jnp.where(x >= mac.max_cutoff, 1.0, jnp.where(x < mac.min_cutoff, 0.0, x))
    return x, count > 0, phi


def _gate(mac, pi_u):
    """Step 1's activation gate: ``gate_min ≤ π_U ≤ gate_max`` (``None``: ``n_inputs``)."""
    gate_max = mac.n_inputs if mac.gate_max is None else mac.gate_max
    return (pi_u >= mac.gate_min) & (pi_u <= gate_max)


def _support(mac, parts, use):
    """Step 4 over the types in ``use`` that are present: V and whether any is present."""
    v = jnp.ones((mac.Q, mac.K), jnp.float32)
    anything = jnp.zeros((), jnp.bool_)
    for part, on in zip(parts, use):
        if on and part is not None:
            x, present, phi = part
            v = v * jnp.where(present, x**phi, 1.0)
            anything = anything | present
    return v, anything


def _familiarity(v, sliced: bool = True):
    """Step 5: :math:`G = \\frac1Q \\sum_q \\max_{i \\in q} V(i)`. ``sliced``: the max
    over a CM as :func:`_cm_max` (faster batched); else a ``max`` reduction (faster inside
    the sequential learning loop, where each slice would be a kernel). The same values."""
    return jnp.mean(_cm_max(v) if sliced else jnp.max(v, axis=-1), axis=-1)


def backoff(mac, parts, v_all, g_all):
    """Step 14: keep the full evidence if its G clears ``backoff``; else, order by order (pairs,
    then singles, of the *present* types), the subset with the highest G, if that clears; if no
    subset clears, the subset with the highest G of all (ties: the higher order, then the fixed
    order HU, UD, HD, U, H, D)."""
    thr = mac.backoff
    present = [jnp.zeros((), jnp.bool_) if p is None else p[1] for p in parts]
    n_present = sum(p.astype(jnp.int32) for p in present)
    done = g_all >= thr
    chosen_v, chosen_g, best_v, best_g = v_all, g_all, v_all, g_all
    for order in _ORDERS:
        cands = []
        for subset in order:
            if any(parts[t] is None for t in subset):
                continue
            use = tuple(t in subset for t in range(3))
            vs, _ = _support(mac, parts, use)
            valid = jnp.all(jnp.stack([present[t] for t in subset])) & (n_present > len(subset))
            cands.append((vs, jnp.where(valid, _familiarity(vs), -1.0)))
        if not cands:
            continue
        ov, og = cands[0]
        for vs, gs in cands[1:]:
            better = gs > og
            ov, og = jnp.where(better, vs, ov), jnp.where(better, gs, og)
        take = ~done & (og >= thr)
        chosen_v, chosen_g = jnp.where(take, ov, chosen_v), jnp.where(take, og, chosen_g)
        done = done | take
        improve = og > best_g
        best_v, best_g = jnp.where(improve, ov, best_v), jnp.where(improve, og, best_g)
    return jnp.where(done, chosen_v, best_v), jnp.where(done, chosen_g, best_g)


def _evidence(mac, raws, counts, mode, sliced: bool = True):
    """Steps 1–6 from the raw sums and counts: ``(V, G, η, active)``."""
    phis = (mac.phi_u, mac.phi_h, mac.phi_d)
    parts = [
        None if raws[t] is None else _normalised(mac, raws[t], counts[t], phis[t]) for t in range(3)
    ]
    pi_u = counts[0]
    gate = _gate(mac, pi_u)
    v, anything = _support(mac, parts, (True, True, True))
    g = _familiarity(v, sliced)
    if mode == "recognize" and mac.backoff is not None:
        v, g = backoff(mac, parts, v, g)
    active = gate & anything
    g = jnp.where(active, g, 0.0)
    eta = expansivity(g, g_minus=mac.g_minus, gamma=mac.gamma, chi=mac.chi, K=mac.K)
    return v, g, eta, active


def _rho(mac, v, eta, fv=None):
    """Steps 7–8: :math:`\\rho = \\psi / \\sum_{k \\in q} \\psi` with
    :math:`\\psi = (\\eta - 1) f(V) + 1` (``fv``: :math:`f(V)` when already known)."""
    psi = (eta - 1.0) * (mac.f(v) if fv is None else fv) + 1.0
    return psi / jnp.sum(psi, axis=-1, keepdims=True)


def sigmoid_table(mac, count):
    r"""Step 7's :math:`f(V)` for every raw sum of a U-only frame with :math:`\pi_U` =
    ``count``: ``(n_inputs + 1,)``, entry ``u`` = :math:`f(\operatorname{clip}(u/\pi_U))`.

    With U the only evidence and :math:`\phi_U = 1`, :math:`V(i)` is the clipped
    :math:`u(i)/\pi_U` (steps 3–4), so :math:`f(V(i))` is entry :math:`u(i)` of this table
    (the same float operations on the same values); :func:`select` reads it where it would
    evaluate the sigmoid of every cell. Batched over frames, outside the learning loop."""
    x, _, _ = _normalised(mac, jnp.arange(mac.n_inputs + 1), count, 1.0)
    return mac.f(x)


def _counts(inp: tuple) -> tuple:
    return tuple(None if i is None else i.count for i in inp)


def select(mac, packed: Packed, inp: tuple, draws, f_table=None) -> tuple[Trace, Pending]:
    """Steps 1–9 of a learning frame, computing only what the code needs: the frame's
    :class:`Trace` and its :class:`Pending` write. ``draws``: ``learn_draws(key, Q)``;
    ``f_table``: the frame's :func:`sigmoid_table` (U-only frames, :math:`\\phi_U = 1`) to
    read :math:`f(V)` from instead of evaluating it.

    An unfrozen mac samples from ρ (step 9); a frozen one takes max-V, uniformly among the tied
    cells (a ``lax.cond``: only the branch taken runs)."""
    raws = _raws(mac, packed, inp)
    counts = _counts(inp)
    v, _, eta, active = _evidence(mac, raws, counts, "learn", sliced=False)
    u_sample, u_tie = draws
    fv = None if f_table is None else f_table[raws[0]]
    code = jax.lax.cond(
        packed.frozen,
        lambda: _pick_tied(v, u_tie),
        lambda: _sample(_rho(mac, v, eta, fv), u_sample),
    )
    write = active & ~packed.frozen
    code = jnp.where(active, code, -1)
    gain = jnp.zeros((), jnp.int32)
    if raws[0] is not None:
        won = jnp.take_along_axis(raws[0], jnp.maximum(code, 0)[:, None], axis=-1)[:, 0]
        gain = jnp.sum(counts[0].astype(jnp.int32) - won)
    rows = jax.nn.one_hot(code, mac.K, dtype=jnp.bool_).reshape(-1)  # none for -1
    return Trace(code, write, raws, counts), Pending(write, rows, inp, gain)


def report(mac, trace: Trace) -> CSAResult:
    """The :class:`CSAResult` of a learning frame from its :class:`Trace`: steps 2–8 recomputed
    from the raw sums (the same functions :func:`select` ran, so the same V, G, η and ρ).
    Unbatched; ``vmap`` it over frames."""
    v, g, eta, active = _evidence(mac, trace.raws, trace.counts, "learn", sliced=False)
    return CSAResult(trace.code, active, g, eta, v, _rho(mac, v, eta), trace.stored)


def choose(mac, packed: Packed, inp: tuple, draws, mode: str) -> tuple[CSAResult, Pending]:
    """Steps 1–9 for one frame: the :class:`CSAResult` and the :class:`Pending` write.

    ``draws``: ``learn_draws(key, Q)`` in ``"learn"`` mode (then this is :func:`select` followed
    by :func:`report`), ``tie_noise(key, Q, K)`` in ``"recognize"`` mode (see
    :mod:`memjax.memories.sparsey.mac`).
    """
    if mode == "learn":
        trace, pend = select(mac, packed, inp, draws)
        return report(mac, trace), pend
    v, g, eta, active = _evidence(mac, _raws(mac, packed, inp), _counts(inp), mode)
    code = jnp.where(active, _pick_max(v, draws), -1)
    rows = jax.nn.one_hot(code, mac.K, dtype=jnp.bool_).reshape(-1)
    no = jnp.zeros((), jnp.bool_)
    out = CSAResult(code, active, g, eta, v, _rho(mac, v, eta), no)
    return out, Pending(no, rows, inp, jnp.zeros((), jnp.int32))
