r"""Sparsey levels and hierarchies: macs tiled over the input with receptive fields, over time.

A **level** is ``M`` macs sharing one :class:`~memjax.memories.sparsey.SparseyMac` spec; mac
``m`` reads the input units listed in ``rf[m]`` (``-1`` pads a short RF and reads 0, the [S]
"dummy unit" pattern), so a level is a ``vmap`` of the mac's CSA over gathered inputs. Its
output at ``t`` is the binary vector of all its macs' codes, ``(M·Q·K,)`` (:func:`level_output`).

A **hierarchy** is a tuple of levels; level ℓ's U input is level ℓ−1's output at ``t`` (level 0
reads the frame), its H input the outputs of level ℓ at ``t−1`` gathered by ``h_rf`` (the mac and
its neighbours), and its D input level ℓ+1's output at ``t−1`` gathered by ``d_rf`` (Rinkus &
Leveille 2017). Frames are processed in order by a ``lax.scan`` whose carry holds every level's
previous output; within a frame the levels run bottom-up (a level's macs are independent given
the level below, so they are one ``vmap``). Sequences follow: the code at ``t`` depends, through
H and D, on the codes at ``t−1``.

Example:
    >>> import jax, numpy as np
    >>> from memjax.memories.sparsey import SparseyMac
    >>> from memjax.memories.sparsey.hierarchy import SparseyLevel, tile_receptive_fields
    >>> rf = tile_receptive_fields((8, 8), patch=4, stride=4)       # 4 macs of 16 pixels
    >>> level = SparseyLevel(SparseyMac(n_inputs=16, Q=4, K=4), rf)
    >>> xs = (np.random.default_rng(0).random((3, 64)) < 0.3).astype(np.uint8)
    >>> state, out = level.learn(level.init_state(), xs, key=jax.random.key(0))
    >>> out.code.shape, bool((level.recognize(state, xs).code == out.code).all())
    ((3, 4, 4), True)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_array, check_choice
from memjax.core.controls import check_controls
from memjax.core.spec import spec
from memjax.memories.sparsey.csa import (
    CSAResult,
    apply_pending,
    choose,
    inputs,
    learn_draws,
    no_pending,
    report,
    select,
    tie_noise,
)
from memjax.memories.sparsey.mac import (
    CSA_ARGS,
    TIES,
    SparseyMac,
    _recognition_key,
    as_prng_key,
    check_binary,
)


def tile_receptive_fields(
    shape: tuple[int, int], patch: int | tuple[int, int], stride: int | tuple[int, int]
) -> tuple[tuple[int, ...], ...]:
    """Square/rectangular patches over a row-major ``(H, W)`` image: one RF per mac, row-major."""
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    h, w = shape
    idx = np.arange(h * w).reshape(h, w)
    return tuple(
        tuple(int(i) for i in idx[r : r + ph, c : c + pw].ravel())
        for r in range(0, h - ph + 1, sh)
        for c in range(0, w - pw + 1, sw)
    )


def grid_neighbours(grid: tuple[int, int], radius: int = 1) -> tuple[tuple[int, ...], ...]:
    """For each mac of a row-major ``grid``, itself and the macs within Chebyshev ``radius``."""
    gh, gw = grid
    return tuple(
        tuple(
            rr * gw + cc
            for rr in range(max(0, r - radius), min(gh, r + radius + 1))
            for cc in range(max(0, c - radius), min(gw, c + radius + 1))
        )
        for r in range(gh)
        for c in range(gw)
    )


def mac_cells(macs: tuple[tuple[int, ...], ...], Q: int, K: int) -> tuple[tuple[int, ...], ...]:
    """Turn per-mac lists of source *macs* into RFs over the source level's cells (padded −1)."""
    width = max(len(m) for m in macs) * Q * K
    out = []
    for m in macs:
        cells = [s * Q * K + c for s in m for c in range(Q * K)]
        out.append(tuple(cells + [-1] * (width - len(cells))))
    return tuple(out)


def _pad(rf):
    width = max(len(r) for r in rf)
    return tuple(tuple(r) + (-1,) * (width - len(r)) for r in rf)


def level_output(codes, K: int):
    """Codes ``(M, Q)`` → the level's binary output ``(M·Q·K,)`` (empty codes → zeros)."""
    return jax.nn.one_hot(codes, K, dtype=jnp.uint8).reshape(-1)


@spec
class SparseyLevel:
    """``M = len(rf)`` macs of one spec, each reading ``rf[m]`` of the U input.

    Args:
        mac: the spec shared by the macs (``n_inputs`` = RF width, ``n_h``/``n_d`` = H/D RF width).
        rf: per mac, indices into the U input (``-1`` pads). Use :func:`tile_receptive_fields`.
        h_rf: per mac, indices into this level's previous output (``()`` = no H).
        d_rf: per mac, indices into the level above's previous output (``()`` = no D).
    """

    mac: SparseyMac
    rf: tuple
    h_rf: tuple = ()
    d_rf: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "rf", _pad(self.rf))
        if self.h_rf:
            object.__setattr__(self, "h_rf", _pad(self.h_rf))
        if self.d_rf:
            object.__setattr__(self, "d_rf", _pad(self.d_rf))
        for name, rf, n in (
            ("rf", self.rf, self.mac.n_inputs),
            ("h_rf", self.h_rf, self.mac.n_h),
            ("d_rf", self.d_rf, self.mac.n_d),
        ):
            if rf and len(rf[0]) != n:
                raise ValueError(f"{name}: RFs are {len(rf[0])} wide but the mac expects {n}")
            if rf and len(rf) != len(self.rf):
                raise ValueError(f"{name}: expected one RF per mac ({len(self.rf)}), got {len(rf)}")
        if bool(self.h_rf) != (self.mac.n_h > 0) or bool(self.d_rf) != (self.mac.n_d > 0):
            raise ValueError("h_rf, d_rf: give an RF exactly for the input types the mac has")

    @property
    def n_macs(self) -> int:
        return len(self.rf)

    @property
    def n_inputs(self) -> int:
        """Size of the U input this level expects (largest index + 1)."""
        return int(max(max(r) for r in self.rf)) + 1

    @property
    def n_outputs(self) -> int:
        return self.n_macs * self.mac.Q * self.mac.K

    def init_state(self):
        """The macs' states stacked on a leading ``M`` axis."""
        one = self.mac.init_state()
        return jax.tree.map(lambda a: jnp.broadcast_to(a, (self.n_macs, *a.shape)), one)

    @staticmethod
    def _gather(a, rf):
        if a is None or not rf:
            return None
        padded = jnp.concatenate([jnp.asarray(a, jnp.uint8), jnp.zeros((1,), jnp.uint8)])
        idx = np.asarray(rf)
        return padded[np.where(idx < 0, padded.shape[0] - 1, idx)]

    def _inputs(self, x, h, d):
        return (self._gather(x, self.rf), self._gather(h, self.h_rf), self._gather(d, self.d_rf))

    def csa(self, state, x, *, key, mode="learn", h=None, d=None, **controls) -> CSAResult:
        """The CSA of every mac for one frame (unbatched): results with a leading ``M`` axis."""
        check_controls(controls, where="SparseyLevel.csa", also=CSA_ARGS)
        xs, hs, ds = self._inputs(x, h, d)
        keys = jax.random.split(key, self.n_macs)
        fn = lambda s, a, b, c, k: self.mac.csa(s, a, key=k, mode=mode, h=b, d=c)
        return jax.vmap(fn)(state, xs, hs, ds, keys)

    def learn_one(self, state, x, *, key, h=None, d=None, **controls):
        """One learning frame of every mac (steps 1–12 per mac)."""
        check_controls(controls, where="SparseyLevel.learn_one", also=("key", "h", "d"))
        xs, hs, ds = self._inputs(x, h, d)
        keys = jax.random.split(key, self.n_macs)
        fn = lambda s, a, b, c, k: self.mac.learn_one(s, a, key=k, h=b, d=c)
        return jax.vmap(fn)(state, xs, hs, ds, keys)

    def learn(self, state, xs, *, key, **controls):
        """Single-trial learning of static frames ``xs`` ``(T, n_in)`` (no H/D): a ``lax.scan``.

        Known controls are ignored; an unknown keyword raises ``ValueError`` naming it.
        """
        check_controls(controls, where="SparseyLevel.learn", also=("key",))
        check_binary("xs", xs, (None, None))
        check_array("xs", xs, ndim=2)
        if xs.shape[1] < self.n_inputs:
            raise ValueError(
                f"xs: expected at least {self.n_inputs} input units, got {xs.shape[1]}"
            )
        key = as_prng_key("key", key)
        return _level_learn(self, state, jnp.asarray(xs), key)

    def recognize(self, state, xs, *, key=None, ties: str = "shared", **controls):
        """Recognition of a batch ``(B, n_in)`` of static frames (no H/D): a ``vmap``.

        ``key=None`` means ``jax.random.key(0)``; ``ties``: ``"shared"`` (default) or
        ``"per_item"``, as in :meth:`SparseyMac.recognize`.
        """
        check_controls(controls, where="SparseyLevel.recognize", also=("key", "ties"))
        check_binary("xs", xs, (None, None))
        check_choice("ties", ties, TIES)
        key = _recognition_key(key)
        return _level_recognize(self, state, jnp.asarray(xs), key, ties == "shared")

    # ------------------------------------------------------------------ packed kernel
    def draws(self, key, mode: str):
        """The CSA draws of every mac for one frame: mac ``m`` uses ``split(key, M)[m]``."""
        keys = jax.random.split(key, self.n_macs)
        if mode == "learn":
            return jax.vmap(lambda k: learn_draws(k, self.mac.Q))(keys)
        return jax.vmap(lambda k: tie_noise(k, self.mac.Q, self.mac.K))(keys)

    def choose(self, packed, x, h, d, draws, mode: str):
        """Steps 1–9 of every mac (stacked ``Packed``): results and pending writes."""
        xs, hs, ds = self._inputs(x, h, d)
        inp = jax.vmap(lambda a, b, c: inputs(self.mac, a, b, c))(xs, hs, ds)
        fn = lambda p, i, dr: choose(self.mac, p, i, dr, mode)
        return jax.vmap(fn)(packed, inp, draws)

    def select(self, packed, x, h, d, draws):
        """A learning frame of every mac, only what the codes need (:func:`~memjax.memories.
        sparsey.csa.select`): per-mac traces and pending writes."""
        xs, hs, ds = self._inputs(x, h, d)
        inp = jax.vmap(lambda a, b, c: inputs(self.mac, a, b, c))(xs, hs, ds)
        return jax.vmap(lambda p, i, dr: select(self.mac, p, i, dr))(packed, inp, draws)

    def report(self, trace):
        """The per-mac :class:`CSAResult` of traces with any leading axes (frames, macs)."""
        fn = lambda tr: report(self.mac, tr)
        for _ in range(trace.code.ndim - 1):
            fn = jax.vmap(fn)
        return fn(trace)

    def apply(self, packed, pending):
        """Steps 10–12 of every mac."""
        return jax.vmap(lambda p, q: apply_pending(self.mac, p, q))(packed, pending)

    def pack(self, state):
        return jax.vmap(self.mac.pack_state)(state)

    def unpack(self, packed):
        return jax.vmap(self.mac.unpack_state)(packed)

    def no_pending(self, x, h, d):
        xs, hs, ds = self._inputs(x, h, d)
        inp = jax.vmap(lambda a, b, c: inputs(self.mac, a, b, c))(xs, hs, ds)
        return jax.vmap(lambda i: no_pending(self.mac, i))(inp)


@jax.jit
def _level_learn(level, state, xs, key):
    # Frame t: mac m samples with split(split(key, T)[t], M)[m] (as learn_one).
    draws = jax.vmap(lambda k: level.draws(k, "learn"))(jax.random.split(key, xs.shape[0]))

    def body(carry, item):
        packed, pend = carry
        packed = level.apply(packed, pend)
        x, dr = item
        trace, pend = level.select(packed, x, None, None, dr)
        return (packed, pend), trace

    first = level.no_pending(xs[0], None, None)
    (packed, pend), trace = jax.lax.scan(body, (level.pack(state), first), (xs, draws))
    return level.unpack(level.apply(packed, pend)), level.report(trace)


@partial(jax.jit, static_argnums=(4,))
def _level_recognize(level, state, xs, key, shared):
    # As csa(mode="recognize") per item, on tables packed once; shared ties drawn once.
    packed = level.pack(state)

    def one(x, draws):
        return level.choose(packed, x, None, None, draws, "recognize")[0]

    if shared:
        draws = level.draws(key, "recognize")
        return jax.vmap(lambda x: one(x, draws))(xs)
    keys = jax.random.split(key, xs.shape[0])
    return jax.vmap(one)(xs, jax.vmap(lambda k: level.draws(k, "recognize"))(keys))


class HierarchyCarry(NamedTuple):
    """What a hierarchy carries across frames: each level's state and previous binary output."""

    states: tuple
    outputs: tuple


@spec
class SparseyHierarchy:
    """Levels bottom-up; level 0 reads the frame. See the module docstring for the wiring."""

    levels: tuple

    def __post_init__(self):
        if not self.levels:
            raise ValueError("levels: expected at least one SparseyLevel")
        for i, lv in enumerate(self.levels):
            if not isinstance(lv, SparseyLevel):
                raise TypeError(f"levels[{i}]: expected a SparseyLevel, got {type(lv).__name__}")
            if i > 0 and lv.n_inputs > self.levels[i - 1].n_outputs:
                raise ValueError(
                    f"levels[{i}].rf: indexes {lv.n_inputs} units but level {i - 1} "
                    f"outputs {self.levels[i - 1].n_outputs}"
                )

    def init_carry(self) -> HierarchyCarry:
        return HierarchyCarry(
            tuple(lv.init_state() for lv in self.levels),
            tuple(jnp.zeros((lv.n_outputs,), jnp.uint8) for lv in self.levels),
        )

    def reset_time(self, carry: HierarchyCarry) -> HierarchyCarry:
        """Start a new sequence: keep the weights, forget the previous codes."""
        return carry._replace(outputs=tuple(jnp.zeros_like(o) for o in carry.outputs))

    def frame(self, carry: HierarchyCarry, x, *, key, mode: str = "learn", **controls):
        """One frame through all levels; returns the new carry and each level's codes."""
        check_controls(controls, where="SparseyHierarchy.frame", also=("key", "mode"))
        keys = jax.random.split(key, len(self.levels))
        states, outputs, codes = [], [], []
        below = x
        for i, lv in enumerate(self.levels):
            h = carry.outputs[i] if lv.h_rf else None
            d = carry.outputs[i + 1] if lv.d_rf and i + 1 < len(self.levels) else None
            if mode == "learn":
                st, out = lv.learn_one(carry.states[i], below, key=keys[i], h=h, d=d)
            else:
                st = carry.states[i]
                out = lv.csa(st, below, key=keys[i], mode="recognize", h=h, d=d)
            below = level_output(out.code, lv.mac.K)
            states.append(st)
            outputs.append(below)
            codes.append(out)
        return HierarchyCarry(tuple(states), tuple(outputs)), tuple(codes)

    def run(self, carry: HierarchyCarry, frames, *, key, mode: str = "learn", **controls):
        """A sequence of frames ``(T, n_in)`` in order (``lax.scan``); ``mode`` learn/recognize.

        Known controls are ignored; an unknown keyword raises ``ValueError`` naming it.
        """
        check_controls(controls, where="SparseyHierarchy.run", also=("key", "mode"))
        check_choice("mode", mode, ("learn", "recognize"))
        check_binary("frames", frames, (None, None))
        key = as_prng_key("key", key)
        return _hier_run(self, carry, jnp.asarray(frames), key, mode)

    def recognize(self, carry: HierarchyCarry, xs, *, key=None, ties: str = "shared", **controls):
        """Recognition of a batch of *static* frames ``(B, n_in)``, each on its own (a ``vmap``).

        Every frame sees a blank past (as after :meth:`reset_time`), so H and D, if any, carry no
        evidence and the result does not depend on the order of ``xs``. Returns each level's
        :class:`~memjax.memories.sparsey.CSAResult` with a leading ``B`` axis. ``ties`` as in
        :meth:`SparseyMac.recognize` (``key=None``: ``jax.random.key(0)``); use :meth:`run` with
        ``mode="recognize"`` for sequences.
        """
        check_controls(controls, where="SparseyHierarchy.recognize", also=("key", "ties"))
        check_binary("xs", xs, (None, None))
        check_choice("ties", ties, TIES)
        key = _recognition_key(key)
        return _hier_recognize(self, self.reset_time(carry), jnp.asarray(xs), key, ties == "shared")


@partial(jax.jit, static_argnums=(4,))
def _hier_recognize(h, carry, xs, key, shared):
    # As frame(mode="recognize") per item, on tables packed once; with shared ties the draws
    # (the same for every item) are computed once, not per item.
    L = len(h.levels)
    packed = tuple(lv.pack(s) for lv, s in zip(h.levels, carry.states))

    def frame_draws(k):
        return tuple(lv.draws(kk, "recognize") for lv, kk in zip(h.levels, jax.random.split(k, L)))

    def one(x, draws):
        below, codes = x, []
        for i, lv in enumerate(h.levels):
            hh = carry.outputs[i] if lv.h_rf else None
            dd = carry.outputs[i + 1] if lv.d_rf and i + 1 < L else None
            out, _ = lv.choose(packed[i], below, hh, dd, draws[i], "recognize")
            below = level_output(out.code, lv.mac.K)
            codes.append(out)
        return tuple(codes)

    if shared:
        draws = frame_draws(key)
        return jax.vmap(lambda x: one(x, draws))(xs)
    return jax.vmap(one)(xs, jax.vmap(frame_draws)(jax.random.split(key, xs.shape[0])))


def _hier_run_impl(h, carry, frames, key, mode):
    # The same draws as frame(): frame key -> split per level -> split per mac.
    L = len(h.levels)

    def frame_draws(k):
        return tuple(lv.draws(kk, mode) for lv, kk in zip(h.levels, jax.random.split(k, L)))

    draws = jax.vmap(frame_draws)(jax.random.split(key, frames.shape[0]))
    packed = tuple(lv.pack(s) for lv, s in zip(h.levels, carry.states))
    learn = mode == "learn"

    def level_inputs(i, below, outputs):
        lv = h.levels[i]
        hh = outputs[i] if lv.h_rf else None
        dd = outputs[i + 1] if lv.d_rf and i + 1 < L else None
        return below, hh, dd

    def body(c, item):
        packed, pend, outputs = c
        x, dr = item
        new_packed, new_pend, new_out, codes = [], [], [], []
        below = x
        for i, lv in enumerate(h.levels):
            if learn:  # the previous frame's write, then only what the codes need (csa.select)
                p = lv.apply(packed[i], pend[i])
                out, q = lv.select(p, *level_inputs(i, below, outputs), dr[i])
            else:
                p = packed[i]
                out, q = lv.choose(p, *level_inputs(i, below, outputs), dr[i], mode)
            below = level_output(out.code, lv.mac.K)
            new_packed.append(p)
            new_pend.append(q)
            new_out.append(below)
            codes.append(out)
        return (tuple(new_packed), tuple(new_pend), tuple(new_out)), tuple(codes)

    # Pending writes that write nothing, shaped like each level's inputs.
    first, below = [], frames[0]
    for i, lv in enumerate(h.levels):
        first.append(lv.no_pending(*level_inputs(i, below, carry.outputs)))
        below = carry.outputs[i]
    init = (packed, tuple(first), carry.outputs)
    (packed, pend, outputs), codes = jax.lax.scan(body, init, (frames, draws))
    if learn:
        packed = tuple(lv.apply(p, q) for lv, p, q in zip(h.levels, packed, pend))
        codes = tuple(lv.report(tr) for lv, tr in zip(h.levels, codes))
    states = tuple(lv.unpack(p) for lv, p in zip(h.levels, packed))
    return HierarchyCarry(states, outputs), codes


_hier_run = jax.jit(_hier_run_impl, static_argnums=(4,))
