r"""Sparsey: one mac (coding field) and its Code Selection Algorithm (CSA).

A mac is :math:`Q` competitive modules (CMs) of :math:`K` binary cells; a *code* is one winner
per CM, stored as ``(Q,)`` winner indices (``-1`` everywhere when the mac is gated off). Inputs
are binary vectors: bottom-up :math:`U` (the level below at ``t``), and optionally horizontal
:math:`H` and top-down :math:`D` (codes at ``t-1``). Weights are binary (``w_max = 1``).

The CSA for one mac and one frame (step numbers from ``shared/papers/sparsey.md`` §1.2):

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
   a plain argmax maps every novel input to code ``[0, …, 0]``). A frozen mac also uses max-V.
10. **Learn** (single trial, binary Hebbian): :math:`w(j, i) \leftarrow 1` for every active
    pre :math:`j` and winner :math:`i`.
11. **Permanence** (optional, ``permanence``): a weight not re-set within ``permanence`` learning
    frames of the mac reads as 0 (the [S] permanence window with a step profile).
12. **Critical period**: once the fraction of set U weights exceeds ``saturation`` the mac freezes
    (no more writes; its clock stops, so surviving weights become permanent).

14. **Backoff** (recognition, ``backoff``): if :math:`G` of all present evidence is below
    ``backoff``, fall back to the pairs {HU, UD, HD}, then the singles {H, U, D}, keeping the
    highest-order subset that clears the threshold (else the best :math:`G` seen).

The cost per item is a fixed :math:`O(N Q K)`, independent of how many items are stored — the
model's "fixed-time storage and retrieval" claim
(see ``experiments/benchmarks/sparsey_vs_numpy.py``).

Learning is sequential (each code depends on the weights written before it), so :meth:`learn` is
a ``lax.scan`` over items; :meth:`recognize` is a ``vmap`` over a batch. The unbatched verbs
:meth:`csa` and :meth:`learn_one` compose with ``jit``/``vmap``/``scan`` from outside
(:mod:`memjax.memories.sparsey.hierarchy` vmaps them over the macs of a level).

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

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_array, check_choice, check_positive_int, check_prng_key
from memjax.core.controls import check_controls
from memjax.core.spec import spec

MODES = ("learn", "recognize")
TIES = ("per_item", "shared")
SIGMOIDS = ("logistic", "rinkus_alt")
# Keyword arguments of the verbs, listed (beside the known controls) when a name is unknown.
CSA_ARGS = ("key", "mode", "h", "d")
LEARN_ARGS = ("key", "hs", "ds")
RECOGNIZE_ARGS = ("key", "hs", "ds", "ties")
# Evidence subsets for the backoff (step 14): all three, then pairs, then singles (U, H, D order).
_SUBSETS = (
    (True, True, True),
    (True, True, False),
    (True, False, True),
    (False, True, True),
    (True, False, False),
    (False, True, False),
    (False, False, True),
)


class SparseyState(NamedTuple):
    """A mac's test-time state.

    ``w_u``/``w_h``/``w_d``: weights ``(N_X, Q, K)``, ``bool`` (or, with ``permanence``, ``int32``
    step of the last pre–post coincidence, ``-1`` for never); ``None`` for an absent input type.
    ``step``: learning frames the mac has taken. ``frozen``: the critical period has closed.
    """

    w_u: jax.Array
    w_h: jax.Array | None
    w_d: jax.Array | None
    step: jax.Array
    frozen: jax.Array


class CSAResult(NamedTuple):
    """One frame of the CSA: the code and the quantities that chose it.

    ``code`` ``(Q,)`` int32 winners (``-1`` when not ``active``); ``familiarity`` G;
    ``expansivity`` η; ``support`` V ``(Q, K)``; ``rho`` ρ ``(Q, K)``; ``active`` the gate.
    """

    code: jax.Array
    active: jax.Array
    familiarity: jax.Array
    expansivity: jax.Array
    support: jax.Array
    rho: jax.Array


def logistic(v, slope: float, inflection: float):
    """The default sigmoid :math:`f(V) = 1/(1 + e^{-\\lambda (V - \\theta)})` (step 7)."""
    return jax.nn.sigmoid(slope * (v - inflection))


def rinkus_alt(v, slope: float, inflection: float):
    """The [A] sigmoid :math:`f(V) = 1/(1 + (0.1\\,e^{-4(V - 1)})^8)` (slope/inflection unused)."""
    del slope, inflection
    return 1.0 / (1.0 + (0.1 * jnp.exp(-4.0 * (v - 1.0))) ** 8)


def expansivity(g, *, g_minus: float, gamma: float, chi: float, K: int):
    """Step 6: :math:`\\eta = 1 + \\max(0, (G - G^-)/(1 - G^-))^\\gamma \\chi K`."""
    excess = jnp.maximum(0.0, (g - g_minus) / (1.0 - g_minus))
    return 1.0 + excess**gamma * (chi * K)


def _pick_max(v, tie_noise):
    """Per CM, the max-V cell; ties broken by the largest ``tie_noise`` (uniform ⇒ uniform pick)."""
    vmax = jnp.max(v, axis=-1, keepdims=True)
    return jnp.argmax(jnp.where(v == vmax, tie_noise, -1.0), axis=-1).astype(jnp.int32)


def _sample(rho, u):
    """Per CM, the first cell whose cumulative ρ reaches ``u`` ∈ [0, 1) (inverse CDF)."""
    cdf = jnp.cumsum(rho, axis=-1)
    idx = jnp.sum(cdf < u[:, None] * cdf[:, -1:], axis=-1)
    return jnp.minimum(idx, rho.shape[-1] - 1).astype(jnp.int32)


@spec
class SparseyMac:
    """One Sparsey mac and its CSA (see the module docstring for the maths).

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
        permanence: learning frames a weight survives without re-coincidence (``None`` = forever).
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
        """Effective binary weights ``(N, Q, K)`` of ``which`` ∈ {u, h, d} (step 11 applied)."""
        w = getattr(state, f"w_{which}")
        if self.permanence is None:
            return w
        return (w >= 0) & (state.step - w < self.permanence)

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

    def _normalised(self, state, which, a):
        """Steps 2–3 for one evidence type: (X ``(Q, K)``, π, present)."""
        a = a.astype(jnp.float32)
        n = a.shape[0]
        w = self.weights(state, which).reshape(n, self.Q * self.K).astype(jnp.float32)
        raw = (a @ w).reshape(self.Q, self.K)
        pi = jnp.sum(a)
        x = raw / jnp.maximum(pi, 1.0)
        x = jnp.where(x >= self.max_cutoff, 1.0, jnp.where(x < self.min_cutoff, 0.0, x))
        return x, pi, pi > 0

    def _support(self, parts, use):
        """Step 4 over the types in ``use`` that are present: V and whether any is present."""
        v = jnp.ones((self.Q, self.K), jnp.float32)
        anything = jnp.zeros((), jnp.bool_)
        for (x, _, present, phi), on in zip(parts, use):
            if on and x is not None:
                v = v * jnp.where(present, x**phi, 1.0)
                anything = anything | present
        return v, anything

    def csa(
        self, state: SparseyState, x, *, key=None, mode: str = "learn", h=None, d=None, **controls
    ) -> CSAResult:
        """Steps 1–9 for one input ``x`` ``(n_inputs,)`` (binary); ``h``/``d`` at ``t-1``.

        ``mode="learn"`` samples from ρ; ``"recognize"`` takes max-V with a random tie-break.
        ``key=None`` uses a fixed key (so recognition is a deterministic function of its inputs).
        Known ``controls`` (:func:`memjax.core.controls.known_controls`) are ignored; an unknown
        name raises ``ValueError`` naming it.
        """
        check_controls(controls, where="SparseyMac.csa", also=CSA_ARGS)
        check_choice("mode", mode, MODES)
        self._check(x, h, d)
        key = jax.random.key(0) if key is None else key
        k_sample, k_tie = jax.random.split(key)
        parts = []
        for which, a, phi in (("u", x, self.phi_u), ("h", h, self.phi_h), ("d", d, self.phi_d)):
            if a is None:
                parts.append((None, 0.0, False, phi))
            else:
                parts.append((*self._normalised(state, which, a), phi))
        pi_u = parts[0][1]
        gate_max = self.n_inputs if self.gate_max is None else self.gate_max
        gate = (pi_u >= self.gate_min) & (pi_u <= gate_max)
        v, anything = self._support(parts, (True, True, True))
        g = jnp.mean(jnp.max(v, axis=-1))
        if mode == "recognize" and self.backoff is not None:
            # Step 14: the highest-order evidence subset whose G clears the threshold.
            best_v, best_g, done = v, g, g >= self.backoff
            for use in _SUBSETS[1:]:
                vs, any_s = self._support(parts, use)
                gs = jnp.where(any_s, jnp.mean(jnp.max(vs, axis=-1)), 0.0)
                take = ~done & (gs >= self.backoff)
                best_v = jnp.where(take, vs, best_v)
                best_g = jnp.where(take, gs, best_g)
                done = done | take
            v, g = best_v, best_g
        active = gate & anything
        g = jnp.where(active, g, 0.0)
        eta = expansivity(g, g_minus=self.g_minus, gamma=self.gamma, chi=self.chi, K=self.K)
        psi = (eta - 1.0) * self.f(v) + 1.0
        rho = psi / jnp.sum(psi, axis=-1, keepdims=True)
        argmax = _pick_max(v, jax.random.uniform(k_tie, (self.Q, self.K)))
        if mode == "learn":
            sampled = _sample(rho, jax.random.uniform(k_sample, (self.Q,)))
            code = jnp.where(state.frozen, argmax, sampled)
        else:
            code = argmax
        code = jnp.where(active, code, -1)
        return CSAResult(code, active, g, eta, v, rho)

    def store(self, state: SparseyState, code, active, x, h=None, d=None) -> SparseyState:
        """Steps 10–12: set w(j, i) for active pre ``j`` and winner ``i``; freeze if saturated."""
        write = active & ~state.frozen
        post = jax.nn.one_hot(code, self.K, dtype=jnp.bool_)  # (Q, K); all-False for -1

        def put(w, a):
            if w is None or a is None:
                return w
            hit = (a > 0)[:, None, None] & post[None] & write
            if self.permanence is None:
                return w | hit
            return jnp.where(hit, state.step, w)

        new = state._replace(
            w_u=put(state.w_u, x),
            w_h=put(state.w_h, h),
            w_d=put(state.w_d, d),
            step=state.step + write.astype(jnp.int32),
        )
        frozen = state.frozen
        if self.saturation is not None:
            frac = jnp.mean(self.weights(new, "u").astype(jnp.float32))
            frozen = frozen | (frac > self.saturation)
        return new._replace(frozen=frozen)

    def learn_one(
        self, state: SparseyState, x, *, key, h=None, d=None, **controls
    ) -> tuple[SparseyState, CSAResult]:
        """One learning frame (steps 1–12): choose a code by sampling and store it."""
        check_controls(controls, where="SparseyMac.learn_one", also=CSA_ARGS)
        out = self.csa(state, x, key=key, mode="learn", h=h, d=d, **controls)
        return self.store(state, out.code, out.active, x, h, d), out

    # ------------------------------------------------------------------ batched verbs
    def learn(
        self, state: SparseyState, xs, *, key, hs=None, ds=None, **controls
    ) -> tuple[SparseyState, CSAResult]:
        """Single-trial learning of ``xs`` ``(T, n_inputs)`` in order: a jitted ``lax.scan``.

        Returns the new state and the stacked per-item :class:`CSAResult`. Deterministic for a key.
        ``hs``/``ds`` ``(T, n_h)``/``(T, n_d)``: the H/D inputs of every item. An unknown keyword
        (e.g. ``h=`` for ``hs=``) raises ``ValueError`` naming it and listing the accepted names.
        """
        check_controls(controls, where="SparseyMac.learn", also=LEARN_ARGS)
        check_array("xs", xs, ndim=2)
        check_binary("xs", xs, (None, self.n_inputs))
        for name, arr, n in (("hs", hs, self.n_h), ("ds", ds, self.n_d)):
            if arr is not None:
                check_binary(name, arr, (xs.shape[0], n))
        check_prng_key("key", key)
        return _learn_jit(self, state, jnp.asarray(xs), hs, ds, key)

    def recognize(
        self,
        state: SparseyState,
        xs,
        *,
        key=None,
        hs=None,
        ds=None,
        ties: str = "per_item",
        **controls,
    ) -> CSAResult:
        """Recognition (max-V, random tie-break) of one input ``(n_inputs,)`` or a batch
        ``(B, n_inputs)`` (a jitted ``vmap``); the state is not changed.

        ``ties="per_item"`` (default) draws a fresh tie-break for every item of the batch, so
        distinct novel inputs get distinct random codes (trap 2). ``ties="shared"`` uses one
        tie-break order for the whole batch: recognition is then a pure function of the input
        (the same input always gets the same code, wherever it sits in the batch), which is what
        a read-out trained on the codes wants (``experiments/sparsey/README.md``).
        Unknown keywords raise as in :meth:`learn`.
        """
        check_controls(controls, where="SparseyMac.recognize", also=RECOGNIZE_ARGS)
        check_choice("ties", ties, TIES)
        xs = jnp.asarray(xs) if isinstance(xs, np.ndarray | list) else xs
        if getattr(xs, "ndim", None) == 1:
            out = self.recognize(
                state,
                xs[None],
                key=key,
                hs=None if hs is None else hs[None],
                ds=None if ds is None else ds[None],
                ties=ties,
            )
            return jax.tree.map(lambda a: a[0], out)
        check_array("xs", xs, ndim=2)
        check_binary("xs", xs, (None, self.n_inputs))
        for name, arr, n in (("hs", hs, self.n_h), ("ds", ds, self.n_d)):
            if arr is not None:
                check_binary(name, arr, (xs.shape[0], n))
        key = jax.random.key(0) if key is None else key
        check_prng_key("key", key)
        return _recognize_jit(self, state, xs, hs, ds, key, ties == "shared")


def check_binary(name: str, x, shape) -> None:
    """Raise naming ``name`` unless ``x`` has ``shape``, is non-empty and holds only 0/1.

    Values are checked when ``x`` is concrete (outside ``jit``); shapes always.
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
    if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
        bad = values[~np.isin(values, (0, 1))].ravel()[:3].tolist()
        raise ValueError(f"{name}: expected binary values 0/1, got e.g. {bad}")


@jax.jit
def _learn_jit(mac: SparseyMac, state, xs, hs, ds, key):
    keys = jax.random.split(key, xs.shape[0])

    def body(s, item):
        x, h, d, k = item
        return mac.learn_one(s, x, key=k, h=h, d=d)

    return jax.lax.scan(body, state, (xs, hs, ds, keys))


def item_keys(key, n: int, shared: bool):
    """Per-item keys of a batch: ``n`` split keys, or ``key`` repeated (one shared tie-break)."""
    if shared:
        return jnp.broadcast_to(key, (n,))
    return jax.random.split(key, n)


@partial(jax.jit, static_argnums=(6,))
def _recognize_jit(mac: SparseyMac, state, xs, hs, ds, key, shared):
    keys = item_keys(key, xs.shape[0], shared)
    fn = lambda x, h, d, k: mac.csa(state, x, key=k, mode="recognize", h=h, d=d)
    return jax.vmap(fn)(xs, hs, ds, keys)


def code_overlap(a, b):
    """Intersection size of codes ``(…, Q)``: the number of CMs with the same (active) winner."""
    return jnp.sum((a == b) & (a >= 0), axis=-1)


def codes_to_binary(codes, K: int):
    """Codes ``(…, Q)`` → binary cell vectors ``(…, Q·K)`` (empty code → all zeros)."""
    onehot = jax.nn.one_hot(codes, K, dtype=jnp.uint8)
    return onehot.reshape(*codes.shape[:-1], codes.shape[-1] * K)
