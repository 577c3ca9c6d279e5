r"""Sparsey: one mac (coding field) and its Code Selection Algorithm (CSA).

A mac is :math:`Q` competitive modules (CMs) of :math:`K` binary cells; a *code* is one winner
per CM, stored as ``(Q,)`` winner indices (``-1`` everywhere when the mac is gated off). Inputs
are binary vectors: bottom-up :math:`U` (the level below at ``t``), and optionally horizontal
:math:`H` and top-down :math:`D` (codes at ``t-1``). Weights are binary (``w_max = 1``).

The CSA for one mac and one frame, in the steps of Rinkus's Code Selection Algorithm (Rinkus
2010, 2014; Rinkus & Leveille 2017), tagged [J] where it follows SparseyCore, [S] sparseypy and
[A] an independent reimplementation:

1. **Gate**: run only if :math:`\pi_U^- \le \pi_U \le \pi_U^+` (``gate_min``/``gate_max``,
   counts of active U inputs) and some evidence is present; else emit the empty code.
2. **Raw sums** :math:`u(i) = \sum_j a(j) w_U(j,i)` (likewise :math:`h, d`).
3. **Normalise** :math:`U(i) = u(i)/\pi_U` (likewise :math:`H, D`), then clip with
   ``[min_cutoff, max_cutoff]`` (below → 0, at or above ``max_cutoff`` → 1).
4. **Local support** :math:`V(i) = U(i)^{\phi_U} H(i)^{\phi_H} D(i)^{\phi_D}`, the product over
   the evidence types *present* (:math:`\pi_X > 0`).
5. **Familiarity** :math:`G = \frac1Q \sum_q \max_{i \in q} V(i)`.
6. **Expansivity** :math:`\eta = 1 + \max(0, \frac{G - G^-}{1 - G^-})^\gamma \chi K`.
7. **Relative likelihood** :math:`\psi(i) = (\eta - 1) f(V(i)) + 1`, :math:`f` a pluggable
   sigmoid (default logistic, slope :math:`\lambda`, inflection :math:`\theta`). The ``+1``
   floor is fixed (trap 1: without it familiarity has no graded effect).
8. **Normalise per CM** :math:`\rho(i) = \psi(i) / \sum_{k \in q} \psi(k)`.
9. **Choose**: learning samples one winner per CM from :math:`\rho` (inverse CDF, as [J]
   ``pick_Winner``); recognition takes the max-:math:`V` cell with a *random* tie-break (trap 2:
   a plain argmax maps every novel input to code ``[0, …, 0]``). A frozen mac also uses max-V
   in learning, picking uniformly among the tied cells.
10. **Learn** (single trial, binary Hebbian): :math:`w(j, i) \leftarrow 1` for every active
    pre :math:`j` and winner :math:`i`.
11. **Permanence** (optional, ``permanence`` = :math:`P`): a weight whose last pre–post
    coincidence was at learning frame :math:`s` reads 1 during the next :math:`P` learning
    frames (and any recognition in between) and 0 from frame :math:`s + P + 1` on (the [S]
    permanence window with a step profile). With ``permanence=1`` an item is recognised right
    after it is learned and forgotten after one more learning frame.
12. **Critical period**: once the fraction of set U weights exceeds ``saturation`` the mac freezes
    (no more writes; its clock stops, so surviving weights become permanent). Every learned
    item reports ``stored``: ``False`` exactly for the items a gated-off or frozen mac refused.

14. **Backoff** (recognition, ``backoff`` = :math:`\theta_G`; [J]
    ``compute_G_Recog_With_Backoff``): if :math:`G` of all present evidence is at least
    :math:`\theta_G` it is used. Otherwise, order by order — the pairs {HU, UD, HD}, then the
    singles {H, U, D}, over the types present — the subset with the *highest* G of that order
    is taken if it clears :math:`\theta_G`. If no subset clears, the subset with the highest G
    of all is kept (ties: the higher order, then the order HU, UD, HD, U, H, D).

**Keys.** Learning needs a key (item ``t`` of :meth:`SparseyMac.learn` uses
``jax.random.split(key, T)[t]``). Recognition's tie-break key defaults to
``jax.random.key(0)`` (``key=None``). Typed keys and legacy ``uint32`` keys
(``jax.random.PRNGKey``) are both accepted and give the same draws.

**Capacity** (one mac, N = 300 inputs with 24 active, Q = 20, K = 10, default constants, no
freezing; ``python -m experiments.sparsey.capacity --curve``): the fraction of all stored items
recalled exactly (all Q winners, per-item tie-breaks), mean of 3 seeds:

    ======== ==== ==== ==== ==== ==== ==== ==== ==== ==== ====
    items    10   30   40   50   60   70   80   100  120  150
    recalled 1.00 1.00 1.00 0.96 0.75 0.50 0.38 0.11 0.04 0.00
    ======== ==== ==== ==== ==== ==== ==== ==== ==== ==== ====

So one such mac holds about 50 items at ≥ 95% exact recall; past that, crosstalk gives other
cells of a CM full support (ties) and exact recall falls quickly. Freezing (``saturation``, on
by default) stops writes before the table fills: later items are refused (``stored`` is
``False``) rather than degrading the earlier ones.

The cost per item is a fixed :math:`O(N Q K / 32)` word operations (bit-packed weights,
:mod:`memjax.memories.sparsey.bits`), independent of how many items are stored — the model's
"fixed-time storage and retrieval" claim (``experiments/benchmarks/sparsey_vs_numpy.py``).

Learning is sequential (each code depends on the weights written before it), so :meth:`learn` is
a ``lax.scan`` over items; :meth:`recognize`, :meth:`encode` (recognition's codes alone) and
:meth:`propose` (learning-mode codes without a write) are a ``vmap`` over a batch. All take one
item ``(N,)`` or a batch ``(B, N)``. The unbatched verbs :meth:`csa` and :meth:`learn_one`
compose with ``jit``/``vmap``/``scan`` from outside (:mod:`memjax.memories.sparsey.hierarchy`
vmaps the kernel over the macs of a level).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.sparsey import SparseyMac
    >>> mac = SparseyMac(n_inputs=64, Q=8, K=8)
    >>> xs = (jax.random.uniform(jax.random.key(1), (5, 64)) < 0.1).astype(jnp.uint8)
    >>> state, learned = mac.learn(mac.init_state(), xs, key=jax.random.key(0))
    >>> found = mac.recognize(state, xs)
    >>> bool((found.code == learned.code).all()), float(found.familiarity.min())
    (True, 1.0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_array, check_choice, check_positive_int, check_prng_key
from memjax.core.controls import check_controls
from memjax.core.spec import spec
from memjax.memories.sparsey._batched import _batch_jit, _encode_jit, _learn
from memjax.memories.sparsey.bits import pack_table, unpack_table
from memjax.memories.sparsey.csa import (
    CSAResult,
    Packed,
    apply_pending,
    choose,
    count_set,
    effective_table,
    expansivity,
    inputs,
    learn_draws,
    tie_noise,
)

__all__ = [
    "CSAResult",
    "SparseyMac",
    "SparseyState",
    "as_prng_key",
    "check_binary",
    "code_overlap",
    "codes_to_binary",
    "expansivity",
    "logistic",
    "rinkus_alt",
]

MODES = ("learn", "recognize")
TIES = ("shared", "per_item")
SIGMOIDS = ("logistic", "rinkus_alt")
RECOGNITION_SEED = 0  # recognition's tie-break key when none is given: jax.random.key(0)
# Keyword arguments of the verbs, listed (beside the known controls) when a name is unknown.
CSA_ARGS = ("key", "mode", "h", "d")
LEARN_ARGS = ("key", "hs", "ds", "report")
REPORTS = ("full", "scalars")
RECOGNIZE_ARGS = ("key", "hs", "ds", "ties")


class SparseyState(NamedTuple):
    """A mac's test-time state.

    ``w_u``/``w_h``/``w_d``: weights ``(N_X, Q, K)``, ``bool`` (or, with ``permanence``, ``int32``
    step of the last pre–post coincidence, ``-1`` for never); ``None`` for an absent input type.
    ``step``: learning frames the mac has taken (frames it wrote). ``frozen``: the critical
    period has closed.
    """

    w_u: jax.Array
    w_h: jax.Array | None
    w_d: jax.Array | None
    step: jax.Array
    frozen: jax.Array


def logistic(v, slope: float, inflection: float):
    """The default sigmoid :math:`f(V) = 1/(1 + e^{-\\lambda (V - \\theta)})` (step 7).

    Example:
        >>> from memjax.memories.sparsey.mac import logistic
        >>> float(logistic(0.7, 10.0, 0.7))
        0.5
    """
    return jax.nn.sigmoid(slope * (v - inflection))


def rinkus_alt(v, slope: float, inflection: float):
    """The [A] sigmoid :math:`f(V) = 1/(1 + (0.1\\,e^{-4(V - 1)})^8)` (slope/inflection unused).

    Example:
        >>> from memjax.memories.sparsey.mac import rinkus_alt
        >>> round(float(rinkus_alt(1.0, 0.0, 0.0)), 6)
        1.0
    """
    del slope, inflection
    return 1.0 / (1.0 + (0.1 * jnp.exp(-4.0 * (v - 1.0))) ** 8)


def as_prng_key(name: str, key) -> jax.Array:
    """``key`` as a typed PRNG key: typed keys (``jax.random.key``) pass, legacy ``uint32`` key
    data (``jax.random.PRNGKey``, shape ``(…, 2)``) is wrapped (``jax.random.wrap_key_data``, so
    ``PRNGKey(s)`` and ``key(s)`` give the same draws); anything else raises ``TypeError``
    naming ``name``.

    Example:
        >>> import jax
        >>> from memjax.memories.sparsey.mac import as_prng_key
        >>> a = jax.random.key_data(as_prng_key("key", jax.random.PRNGKey(3)))
        >>> bool((a == jax.random.key_data(jax.random.key(3))).all())
        True
    """
    if (
        isinstance(key, jax.Array | np.ndarray)
        and not jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        and key.dtype == np.uint32
        and key.shape[-1:] == (2,)
    ):
        key = jax.random.wrap_key_data(jnp.asarray(key))
    check_prng_key(name, key)
    return key


@functools.cache
def _default_recognition_key():
    with jax.ensure_compile_time_eval():  # a concrete key even when first asked inside jit
        return jax.random.key(RECOGNITION_SEED)


def _recognition_key(key):
    return _default_recognition_key() if key is None else as_prng_key("key", key)


@spec
class SparseyMac:
    """One Sparsey mac and its CSA (see the module docstring for the maths and the capacity).

    Args:
        n_inputs: size of the U receptive field (binary inputs at ``t``).
        Q: competitive modules. K: cells per CM.
        n_h: size of the H input (codes at ``t-1``; 0 = none). n_d: size of the D input.
        g_minus: familiarity floor :math:`G^-`. gamma: :math:`\\gamma`. chi: :math:`\\chi`.
        sigmoid: ``"logistic"`` (default), ``"rinkus_alt"`` or a callable ``f(V, slope,
            inflection)`` mapping ``[0, 1]`` monotonically into ``[0, 1]``.
        slope: :math:`\\lambda`. inflection: :math:`\\theta`.
        phi_u, phi_h, phi_d: V exponents (step 4).
        gate_min, gate_max: activation gate on the number of active U inputs (``None`` = n_inputs).
        min_cutoff, max_cutoff: clip of the normalised sums (step 3).
        saturation: freeze once this fraction of U weights is set (``None`` = never; step 12).
        permanence: learning frames a weight stays visible after its last coincidence (``None``
            = forever; step 11).
        backoff: G threshold of the recognition backoff (``None`` = off; step 14).
    """

    n_inputs: int
    Q: int = 20
    K: int = 20
    n_h: int = 0
    n_d: int = 0
    g_minus: float = 0.2
    gamma: float = 2.0
    chi: float = 100.0
    sigmoid: str | Callable = "logistic"
    slope: float = 10.0
    inflection: float = 0.7
    phi_u: float = 1.0
    phi_h: float = 1.0
    phi_d: float = 1.0
    gate_min: int = 1
    gate_max: int | None = None
    min_cutoff: float = 0.0
    max_cutoff: float = 1.0
    saturation: float | None = 0.5
    permanence: int | None = None
    backoff: float | None = None

    def __post_init__(self):
        check_positive_int("n_inputs", self.n_inputs)
        check_positive_int("Q", self.Q)
        check_positive_int("K", self.K)
        for name in ("n_h", "n_d", "gate_min"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {v!r}")
        if not 0.0 <= self.g_minus < 1.0:
            raise ValueError(f"g_minus: expected a value in [0, 1), got {self.g_minus}")
        if self.gamma <= 0 or self.chi < 0:
            raise ValueError(
                f"gamma, chi: expected gamma > 0 and chi >= 0, got {self.gamma}, {self.chi}"
            )
        if not callable(self.sigmoid):
            check_choice("sigmoid", self.sigmoid, SIGMOIDS)
        if self.gate_max is not None and self.gate_max < self.gate_min:
            raise ValueError(f"gate_max: expected >= gate_min={self.gate_min}, got {self.gate_max}")
        if not 0.0 <= self.min_cutoff < self.max_cutoff <= 1.0:
            raise ValueError(
                "min_cutoff, max_cutoff: expected 0 <= min_cutoff < max_cutoff <= 1, "
                f"got {self.min_cutoff}, {self.max_cutoff}"
            )
        if self.saturation is not None and not 0.0 < self.saturation <= 1.0:
            raise ValueError(
                f"saturation: expected a value in (0, 1] or None, got {self.saturation}"
            )
        if self.permanence is not None:
            check_positive_int("permanence", self.permanence)
        if self.backoff is not None and not 0.0 < self.backoff <= 1.0:
            raise ValueError(f"backoff: expected a value in (0, 1] or None, got {self.backoff}")

    # ------------------------------------------------------------------ state and weights
    @property
    def eta_max(self) -> float:
        """η at G = 1: :math:`1 + \\chi K`."""
        return 1.0 + self.chi * self.K

    def f(self, v):
        """The sigmoid of step 7."""
        fn = {"logistic": logistic, "rinkus_alt": rinkus_alt}.get(self.sigmoid, self.sigmoid)
        return fn(v, self.slope, self.inflection)

    def init_state(self) -> SparseyState:
        """An empty mac: no weight set, clock at 0, not frozen."""

        def table(n):
            if n == 0:
                return None
            if self.permanence is None:
                return jnp.zeros((n, self.Q, self.K), jnp.bool_)
            return jnp.full((n, self.Q, self.K), -1, jnp.int32)

        return SparseyState(
            table(self.n_inputs),
            table(self.n_h),
            table(self.n_d),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.bool_),
        )

    def weights(self, state: SparseyState, which: str = "u") -> jax.Array:
        """Effective binary weights ``(N, Q, K)`` of ``which`` ∈ {u, h, d} (step 11 applied:
        a weight last set at step ``s`` reads 1 up to and including step ``s + permanence``)."""
        w = getattr(state, f"w_{which}")
        if self.permanence is None:
            return w
        return (w >= 0) & (state.step - w <= self.permanence)

    def pack_state(self, state: SparseyState) -> Packed:
        """The state as the kernel reads it (:class:`memjax.memories.sparsey.csa.Packed`)."""
        ws = (state.w_u, state.w_h, state.w_d)
        if self.permanence is None:
            tables = tuple(None if w is None else pack_table(w) for w in ws)
            ages = (None, None, None)
        else:
            tables = tuple(None if w is None else effective_table(self, w, state.step) for w in ws)
            ages = ws
        return Packed(tables, ages, state.step, state.frozen, count_set(tables[0]))

    def unpack_state(self, packed: Packed) -> SparseyState:
        """Inverse of :meth:`pack_state`."""
        if self.permanence is None:
            sizes = (self.n_inputs, self.n_h, self.n_d)
            ws = tuple(
                None if t is None else unpack_table(t, n, self.Q, self.K)
                for t, n in zip(packed.tables, sizes)
            )
        else:
            ws = packed.ages
        return SparseyState(*ws, packed.step, packed.frozen)

    # ------------------------------------------------------------------ the CSA (unbatched)
    def _check(self, x, h, d):
        check_array("x", x, shape=(self.n_inputs,))
        for name, arr, n in (("h", h, self.n_h), ("d", d, self.n_d)):
            if arr is not None:
                if n == 0:
                    raise ValueError(
                        f"{name}: this mac has no {name.upper()} input ({'n_' + name}=0); pass None"
                    )
                check_array(name, arr, shape=(n,))

    def csa(
        self, state: SparseyState, x, *, key=None, mode: str = "learn", h=None, d=None, **controls
    ) -> CSAResult:
        """Steps 1–9 for one input ``x`` ``(n_inputs,)`` (binary); ``h``/``d`` at ``t-1``.
        Nothing is written (``stored`` is ``False``; :meth:`learn_one` writes).

        ``mode="learn"`` samples from ρ and needs ``key``; ``"recognize"`` takes max-V with a
        random tie-break drawn from ``key`` (``key=None``: ``jax.random.key(0)``, so recognition
        is a deterministic function of its inputs). Typed and legacy ``uint32`` keys are
        accepted. Known ``controls`` (:func:`memjax.core.controls.known_controls`) are ignored;
        an unknown name raises ``ValueError`` naming it.
        """
        check_controls(controls, where="SparseyMac.csa", also=CSA_ARGS)
        check_choice("mode", mode, MODES)
        self._check(x, h, d)
        if mode == "learn":
            if key is None:
                raise TypeError("key: learning mode samples a code; pass key=jax.random.key(seed)")
            draws = learn_draws(as_prng_key("key", key), self.Q)
        else:
            draws = tie_noise(_recognition_key(key), self.Q, self.K)
        out, _ = choose(self, self.pack_state(state), inputs(self, x, h, d), draws, mode)
        return out._replace(stored=jnp.zeros((), jnp.bool_))

    def learn_one(
        self, state: SparseyState, x, *, key, h=None, d=None, **controls
    ) -> tuple[SparseyState, CSAResult]:
        """One learning frame (steps 1–12): choose a code by sampling and store it."""
        check_controls(controls, where="SparseyMac.learn_one", also=CSA_ARGS)
        self._check(x, h, d)
        draws = learn_draws(as_prng_key("key", key), self.Q)
        packed = self.pack_state(state)
        out, pend = choose(self, packed, inputs(self, x, h, d), draws, "learn")
        return self.unpack_state(apply_pending(self, packed, pend)), out

    # ------------------------------------------------------------------ batched verbs
    def _batch(self, xs, hs, ds):
        """``(xs, hs, ds, single)``: inputs as 2-D arrays, checked; ``single`` for a 1-D item."""
        # NumPy batches go to the jitted verb as they are (its argument transfer is cheaper
        # than jnp.asarray); lists become arrays.
        xs = jnp.asarray(xs) if isinstance(xs, list) else xs
        single = getattr(xs, "ndim", None) == 1
        if single:
            xs = xs[None]
            hs = None if hs is None else jnp.asarray(hs)[None]
            ds = None if ds is None else jnp.asarray(ds)[None]
        if getattr(xs, "ndim", None) != 2:
            raise ValueError(
                f"xs: expected 1 or 2 dimensions (one item or a batch), got shape "
                f"{tuple(getattr(xs, 'shape', ()))}"
            )
        check_binary("xs", xs, (None, self.n_inputs))
        for name, arr, n in (("hs", hs, self.n_h), ("ds", ds, self.n_d)):
            if arr is not None:
                if n == 0:
                    raise ValueError(f"{name}: this mac has no {name[0].upper()} input; pass None")
                check_binary(name, arr, (xs.shape[0], n))
        return xs, hs, ds, single

    def learn(
        self,
        state: SparseyState,
        xs,
        *,
        key,
        hs=None,
        ds=None,
        report: str = "full",
        **controls,
    ) -> tuple[SparseyState, CSAResult]:
        """Single-trial learning of ``xs`` ``(T, n_inputs)`` in order (a jitted ``lax.scan``), or
        of one item ``(n_inputs,)`` (as ``xs[None]``, results unbatched).

        Returns the new state and the per-item :class:`CSAResult` (``stored``: the item was
        written; ``False`` where the gate was off or the mac was frozen). Item ``t`` samples
        with ``jax.random.split(key, T)[t]``. ``hs``/``ds``: the H/D inputs of every item.
        ``report="scalars"`` leaves ``support`` and ``rho`` (V and ρ, ``(T, Q, K)`` each) out
        (``None``): the same state, codes, flags, G and η, without computing the two per-cell
        arrays. An unknown keyword (e.g. ``h=`` for ``hs=``) raises ``ValueError`` naming it.
        """
        check_controls(controls, where="SparseyMac.learn", also=LEARN_ARGS)
        check_choice("report", report, REPORTS)
        xs, hs, ds, single = self._batch(xs, hs, ds)
        key = as_prng_key("key", key)
        state, out = _learn(self, state, xs, hs, ds, key, report == "full")
        return state, (jax.tree.map(lambda a: a[0], out) if single else out)

    def propose(self, state: SparseyState, xs, *, key, hs=None, ds=None, **controls) -> CSAResult:
        """Learning-mode codes (sampled from ρ) of a batch ``(B, n_inputs)`` or one item, each
        chosen from the same ``state``; nothing is written (a jitted ``vmap`` of :meth:`csa`
        with ``key=jax.random.split(key, B)[b]``, the keys :meth:`learn` would use)."""
        check_controls(controls, where="SparseyMac.propose", also=LEARN_ARGS)
        xs, hs, ds, single = self._batch(xs, hs, ds)
        out = _batch_jit(self, state, xs, hs, ds, as_prng_key("key", key), "learn", False)
        return jax.tree.map(lambda a: a[0], out) if single else out

    def recognize(
        self,
        state: SparseyState,
        xs,
        *,
        key=None,
        hs=None,
        ds=None,
        ties: str = "shared",
        **controls,
    ) -> CSAResult:
        """Recognition (max-V, random tie-break) of one input ``(n_inputs,)`` or a batch
        ``(B, n_inputs)`` (a jitted ``vmap``); the state is not changed.

        ``key``: the tie-break key; ``None`` means ``jax.random.key(0)``. ``ties="shared"``
        (default) uses one tie-break priority order of the cells for the whole batch:
        recognition is a pure function of the input (the same input gets the same code wherever
        it sits in the batch) and inputs that tie on the same cells resolve them alike, which is
        what read-outs on the codes need (MNIST validation 83.6% against 78.8%,
        ``experiments/sparsey/README.md``). It is still random over cells, so novel inputs do
        not collapse onto code ``[0, …, 0]``. ``ties="per_item"`` draws a fresh order per item
        (``jax.random.split(key, B)[b]``): distinct novel inputs then get independent random
        codes. Unknown keywords raise as in :meth:`learn`.
        """
        check_controls(controls, where="SparseyMac.recognize", also=RECOGNIZE_ARGS)
        check_choice("ties", ties, TIES)
        xs, hs, ds, single = self._batch(xs, hs, ds)
        key = _recognition_key(key)
        out = _batch_jit(self, state, xs, hs, ds, key, "recognize", ties == "shared")
        return jax.tree.map(lambda a: a[0], out) if single else out

    def encode(
        self,
        state: SparseyState,
        xs,
        *,
        key=None,
        hs=None,
        ds=None,
        ties: str = "shared",
        **controls,
    ) -> jax.Array:
        """Recognition codes alone: ``recognize(...).code`` — ``(B, Q)`` for a batch, ``(Q,)``
        for one item — without G, η, V and ρ (what read-outs on the codes need).

        Same arguments, draws and codes as :meth:`recognize`. With shared ties, U the only
        input, no backoff and :math:`\\phi_U = 1` (the defaults), V is a monotone function of
        the U raw sums, and each CM's winner is one integer max over keys built from the
        clipped raw sums and the cells' tie-break ranks (:func:`memjax.memories.sparsey.csa.
        encode`); otherwise the code is picked from V as in :meth:`recognize`.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> from memjax.memories.sparsey import SparseyMac
            >>> mac = SparseyMac(n_inputs=64, Q=8, K=8)
            >>> xs = (jax.random.uniform(jax.random.key(1), (5, 64)) < 0.1).astype(jnp.uint8)
            >>> state, _ = mac.learn(mac.init_state(), xs, key=jax.random.key(0))
            >>> bool((mac.encode(state, xs) == mac.recognize(state, xs).code).all())
            True
        """
        check_controls(controls, where="SparseyMac.encode", also=RECOGNIZE_ARGS)
        check_choice("ties", ties, TIES)
        xs, hs, ds, single = self._batch(xs, hs, ds)
        codes = _encode_jit(self, state, xs, hs, ds, _recognition_key(key), ties == "shared")
        return codes[0] if single else codes


def check_binary(name: str, x, shape) -> None:
    """Raise naming ``name`` unless ``x`` has ``shape``, is non-empty and holds only 0/1.

    Values are checked when ``x`` is concrete (outside ``jit``); shapes always.

    Example:
        >>> import numpy as np
        >>> from memjax.memories.sparsey.mac import check_binary
        >>> check_binary("xs", np.array([[0, 2]]), (None, 2))
        Traceback (most recent call last):
        ...
        ValueError: xs: expected binary values 0/1, got e.g. [2]
    """
    if hasattr(x, "shape") and math.prod(x.shape) == 0:
        raise ValueError(f"{name}: expected a non-empty binary array, got shape {tuple(x.shape)}")
    check_array(name, x, shape=shape)
    if not (
        jnp.issubdtype(x.dtype, jnp.bool_)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or jnp.issubdtype(x.dtype, jnp.floating)
    ):
        raise TypeError(f"{name}: expected a bool, integer or float array of 0/1, got {x.dtype}")
    if isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x)
    if values.dtype == np.bool_:
        return
    if values.dtype.kind in "ui":  # two reductions instead of a set-membership test
        binary = values.max() <= 1 and (values.dtype.kind == "u" or values.min() >= 0)
    else:
        binary = bool(((values == 0) | (values == 1)).all())
    if not binary:
        bad = values[~np.isin(values, (0, 1))].ravel()[:3].tolist()
        raise ValueError(f"{name}: expected binary values 0/1, got e.g. {bad}")


def code_overlap(a, b):
    """Intersection size of codes ``(…, Q)``: the number of CMs with the same (active) winner.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.memories.sparsey import code_overlap
        >>> int(code_overlap(jnp.array([0, 1, -1]), jnp.array([0, 2, -1])))
        1
    """
    return jnp.sum((a == b) & (a >= 0), axis=-1)


def codes_to_binary(codes, K: int):
    """Codes ``(…, Q)`` → binary cell vectors ``(…, Q·K)`` (empty code → all zeros).

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.memories.sparsey import codes_to_binary
        >>> codes_to_binary(jnp.array([1, -1]), 2).tolist()
        [0, 1, 0, 0]
    """
    onehot = jax.nn.one_hot(codes, K, dtype=jnp.uint8)
    return onehot.reshape(*codes.shape[:-1], codes.shape[-1] * K)
