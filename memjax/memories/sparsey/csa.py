r"""The Sparsey Code Selection Algorithm (CSA) on bit-packed weights: one mac, one frame.

The maths is in :mod:`memjax.memories.sparsey.mac` (steps 1–14 of Rinkus's CSA, 2010/2014);
this module is the compiled kernel every verb runs. A mac's weights live in a
:class:`Packed` table (:mod:`memjax.memories.sparsey.bits`: 32 presynaptic units per word), so
the raw sums are population counts and a Hebbian write is a bitwise OR of the packed input into
the winners' rows.

Learning is a ``lax.scan`` whose carry is ``(Packed, Pending)``: the frame at ``t`` first applies
the *pending* write of frame ``t−1`` (steps 10–12) and then chooses its own code (steps 1–9)
from the updated table. The result is the same sequence of states as "choose, then write", but
every read of the carried table follows the write it depends on, so XLA updates the table in
place instead of copying it on every item.

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
    >>> float(again.familiarity), bool((again.code == out.code).all())
    (1.0, True)
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
    "apply_pending",
    "choose",
    "effective_table",
    "expansivity",
    "inputs",
    "learn_draws",
    "no_pending",
    "tie_noise",
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

    ``tables``: per type (U, H, D) the effective binary weights packed ``(Q·K, ⌈N/32⌉)`` uint32,
    ``None`` for an absent type. ``ages``: with ``permanence``, per type the step of the last
    pre–post coincidence ``(N, Q, K)`` int32 (``-1`` never), else ``None``. ``step``, ``frozen``
    as in :class:`~memjax.memories.sparsey.SparseyState`.
    """

    tables: tuple
    ages: tuple
    step: jax.Array
    frozen: jax.Array


class Input(NamedTuple):
    """One evidence type of one frame: packed ``words``, ``count`` π (active units) and, only
    with ``permanence``, the ``dense`` bool vector (``None`` otherwise)."""

    words: jax.Array
    count: jax.Array
    dense: jax.Array | None


class Pending(NamedTuple):
    """A chosen code not yet written: ``write`` (active and not frozen), the winner ``rows``
    ``(Q·K,)`` bool, and the frame's :class:`Input` per type (``None`` where absent)."""

    write: jax.Array
    rows: jax.Array
    inputs: tuple


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


def _pick_max(v, noise):
    """Per CM, the max-V cell; ties broken by the largest ``noise`` (uniform ⇒ uniform pick)."""
    vmax = jnp.max(v, axis=-1, keepdims=True)
    return jnp.argmax(jnp.where(v == vmax, noise, -1.0), axis=-1).astype(jnp.int32)


def _pick_tied(v, u):
    """Per CM, the ``⌊u·n⌋``-th of the ``n`` max-V cells (``u`` ``(Q,)`` uniform ⇒ uniform)."""
    tied = v == jnp.max(v, axis=-1, keepdims=True)
    n = jnp.sum(tied, axis=-1)
    r = jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)
    return jnp.sum(jnp.cumsum(tied, axis=-1) <= r[:, None], axis=-1).astype(jnp.int32)


def _sample(rho, u):
    """Per CM, the first cell whose cumulative ρ reaches ``u`` ∈ [0, 1) (inverse CDF)."""
    cdf = jnp.cumsum(rho, axis=-1)
    idx = jnp.sum(cdf < u[:, None] * cdf[:, -1:], axis=-1)
    return jnp.minimum(idx, rho.shape[-1] - 1).astype(jnp.int32)


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
        return Input(pack_bits(a), jnp.sum(a != 0).astype(jnp.float32), dense)

    return (one(x), one(h), one(d))


def no_pending(mac, like: tuple) -> Pending:
    """A pending write that writes nothing, shaped like the per-type inputs ``like``."""
    zeros = jax.tree.map(jnp.zeros_like, like)
    return Pending(jnp.zeros((), jnp.bool_), jnp.zeros((mac.Q * mac.K,), jnp.bool_), zeros)


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
            tables[t] = tables[t] | jnp.where(rows[:, None], inp.words[None, :], jnp.uint32(0))
        else:
            hit = inp.dense[:, None] & rows[None, :]
            ages[t] = jnp.where(hit.reshape(ages[t].shape), step, ages[t])
    step = step + pend.write.astype(jnp.int32)
    if mac.permanence is not None:
        tables = [None if a is None else effective_table(mac, a, step) for a in ages]
    frozen = packed.frozen
    if mac.saturation is not None:
        n_set = jnp.sum(jax.lax.population_count(tables[0]), dtype=jnp.int32)
        total = mac.n_inputs * mac.Q * mac.K
        frozen = frozen | (n_set.astype(jnp.float32) / total > mac.saturation)
    return Packed(tuple(tables), tuple(ages), step, frozen)


def _normalised(mac, table, inp, phi):
    """Steps 2–3 for one evidence type: ``(X (Q, K), present, φ)``."""
    raw = raw_sums(table, inp.words).reshape(mac.Q, mac.K).astype(jnp.float32)
    x = raw / jnp.maximum(inp.count, 1.0)
    x = jnp.where(x >= mac.max_cutoff, 1.0, jnp.where(x < mac.min_cutoff, 0.0, x))
    return x, inp.count > 0, phi


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


def _familiarity(v):
    return jnp.mean(jnp.max(v, axis=-1))


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


def choose(mac, packed: Packed, inp: tuple, draws, mode: str) -> tuple[CSAResult, Pending]:
    """Steps 1–9 for one frame: the :class:`CSAResult` and the :class:`Pending` write.

    ``draws``: ``learn_draws(key, Q)`` in ``"learn"`` mode, ``tie_noise(key, Q, K)`` in
    ``"recognize"`` mode (see :mod:`memjax.memories.sparsey.mac`).
    """
    phis = (mac.phi_u, mac.phi_h, mac.phi_d)
    parts = [
        None
        if inp[t] is None or packed.tables[t] is None
        else _normalised(mac, packed.tables[t], inp[t], phis[t])
        for t in range(3)
    ]
    pi_u = inp[0].count
    gate_max = mac.n_inputs if mac.gate_max is None else mac.gate_max
    gate = (pi_u >= mac.gate_min) & (pi_u <= gate_max)
    v, anything = _support(mac, parts, (True, True, True))
    g = _familiarity(v)
    if mode == "recognize" and mac.backoff is not None:
        v, g = backoff(mac, parts, v, g)
    active = gate & anything
    g = jnp.where(active, g, 0.0)
    eta = expansivity(g, g_minus=mac.g_minus, gamma=mac.gamma, chi=mac.chi, K=mac.K)
    psi = (eta - 1.0) * mac.f(v) + 1.0
    rho = psi / jnp.sum(psi, axis=-1, keepdims=True)
    if mode == "learn":
        u_sample, u_tie = draws
        code = jnp.where(packed.frozen, _pick_tied(v, u_tie), _sample(rho, u_sample))
        write = active & ~packed.frozen
    else:
        code = _pick_max(v, draws)
        write = jnp.zeros((), jnp.bool_)
    code = jnp.where(active, code, -1)
    rows = jax.nn.one_hot(code, mac.K, dtype=jnp.bool_).reshape(-1)  # none for -1
    out = CSAResult(code, active, g, eta, v, rho, write)
    return out, Pending(write, rows, inp)
