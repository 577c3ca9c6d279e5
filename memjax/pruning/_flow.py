"""(private) The channel-flow interpreter behind :func:`memjax.pruning.trace_groups`.

It walks a jaxpr once, forward, and keeps for every variable an :class:`Info`:

* ``lab[axis]``: what each position of that axis holds: a channel id (``>= 0``), ``FILL`` (a
  constant such as zero padding: a channel added to it may be removed) or ``FREE`` (data that is
  not a prunable channel, e.g. image pixels: a channel combined with it cannot be removed);
  an axis without an entry is ``FILL`` when it is in ``uniform`` (broadcast, constant along it)
  and ``FREE`` otherwise;
* ``pure``: the value depends on the traced variables (params, model state) and constants only,
  not on the inputs; then ``prov[axis]`` lists the *families* ``(leaf, leaf_axis, pos)`` saying
  that position ``q`` of the axis is entry ``pos[q]`` (``-1``: none) of axis ``leaf_axis`` of
  variable leaf ``leaf``.

A contraction (conv / dot) whose weight side is pure *produces* fresh channel ids for its output
axis; positions of a pure value meeting channels elementwise or in a contraction become group
*members*; channels meeting channels are united (union-find). The public module turns the
classes into groups.
"""

from __future__ import annotations

import dataclasses

import jax.extend.core as jex
import numpy as np

FILL = -1
FREE = -2

ELEMENTWISE = frozenset(
    """abs acos acosh add add_any and asin asinh atan atan2 atanh cbrt ceil clamp conj
    convert_element_type copy copy_p cos cosh digamma div eq erf erf_inv erfc exp exp2 expm1
    floor ge gt igamma igammac imag integer_pow is_finite le lgamma log log1p logistic lt max min
    mul ne neg nextafter not or pow real reduce_precision rem round rsqrt select_n sign sin sinh
    sqrt square stop_gradient sub tan tanh xor population_count shift_left
    shift_right_arithmetic shift_right_logical bitcast_convert_type""".split()
)
IDENTITY = frozenset({"optimization_barrier", "device_put", "sharding_constraint", "reshard"})
CALLS = frozenset(
    {
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "custom_jvp_call",
        "custom_vjp_call",
        "custom_vjp_call_jaxpr",
        "remat",
        "remat2",
        "checkpoint",
    }
)


class UntraceableOpError(ValueError):
    """A pruning channel reaches an operation whose channel flow the tracer cannot follow."""


@dataclasses.dataclass(frozen=True)
class Info:
    """What the tracer knows of one variable (module doc)."""

    shape: tuple[int, ...]
    pure: bool
    lab: dict = dataclasses.field(default_factory=dict)
    uniform: frozenset = frozenset()
    prov: dict = dataclasses.field(default_factory=dict)

    def kinds(self, axis: int) -> np.ndarray:
        if axis in self.lab:
            return self.lab[axis]
        fill = FILL if axis in self.uniform else FREE
        return np.full(self.shape[axis], fill, np.int64)

    def channels(self) -> np.ndarray:
        found = [a[a >= 0] for a in self.lab.values()]
        return np.concatenate(found) if found else np.zeros(0, np.int64)


def _store(lab: dict, uniform: set, axis: int, kinds: np.ndarray) -> None:
    """Record ``kinds`` for ``axis``: nothing when all FREE, ``uniform`` when all FILL."""
    if (kinds == FREE).all():
        return
    if (kinds == FILL).all():
        uniform.add(axis)
        return
    lab[axis] = kinds


def _where(eqn) -> str:
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(eqn.source_info)
    except Exception:  # pragma: no cover - private API moved
        return "?"


def const_info(value) -> Info:
    """A constant (literal or closed-over array): pure, no provenance, uniform where it is."""
    arr = np.asarray(value)
    uniform = set()
    for axis in range(arr.ndim):
        if arr.shape[axis] <= 1 or np.array_equal(arr, np.take(arr, [0], axis=axis) + 0 * arr):
            uniform.add(axis)
    return Info(tuple(arr.shape), True, {}, frozenset(uniform), {})


class Tracer:
    """One pass over a jaxpr: channel ids, their unions, members, fixed channels."""

    def __init__(self, leaf_names: list[str], on_unknown: str, rules: dict):
        self.leaf_names = leaf_names
        self.rules = rules  # primitive name -> rule(tracer, eqn, ins) -> [Info]
        self.on_unknown = on_unknown
        self.parent: list[int] = []
        self.nodes: list[tuple[str, int, int]] = []  # (name, first id, count)
        self.members: dict[tuple[int, int], dict[int, int]] = {}
        self.roles: dict[tuple[int, int], str] = {}
        self.fixed: dict[int, str] = {}

    # -- union-find over channel ids ------------------------------------------------------
    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def new_ids(self, count: int, name: str) -> np.ndarray:
        first = len(self.parent)
        self.parent.extend(range(first, first + count))
        self.nodes.append((name, first, count))
        return np.arange(first, first + count, dtype=np.int64)

    def fix(self, ids, reason: str) -> None:
        for i in np.asarray(ids).ravel():
            if i >= 0:
                self.fixed.setdefault(int(i), reason)

    def member(self, family, chan: np.ndarray, role: str) -> None:
        leaf, leaf_axis, pos = family
        key = (leaf, leaf_axis)
        entries = self.members.setdefault(key, {})
        self.roles.setdefault(key, role)
        ok = (pos >= 0) & (chan >= 0)
        for p, c in zip(pos[ok].tolist(), chan[ok].tolist()):
            if p in entries:
                self.union(entries[p], c)
            else:
                entries[p] = c

    # -- the walk ---------------------------------------------------------------------------
    def run(self, jaxpr, consts, ins: list[Info]) -> list[Info]:
        env = {}
        for var, value in zip(jaxpr.constvars, consts):
            env[var] = const_info(value)
        for var, info in zip(jaxpr.invars, ins):
            env[var] = info
        for eqn in jaxpr.eqns:
            outs = self.eqn(eqn, [self.read(env, v) for v in eqn.invars])
            for var, info in zip(eqn.outvars, outs):
                if not isinstance(var, jex.DropVar):
                    env[var] = info
        return [self.read(env, v) for v in jaxpr.outvars]

    def read(self, env, var) -> Info:
        if isinstance(var, jex.Literal):
            return const_info(var.val)
        return env[var]

    def eqn(self, eqn, ins: list[Info]) -> list[Info]:
        name = eqn.primitive.name
        if name in ELEMENTWISE:
            return [self.elementwise(eqn, ins)]
        if name in IDENTITY:
            return list(ins[: len(eqn.outvars)])
        rule = self.rules.get(name)
        if rule is not None:
            return rule(self, eqn, ins)
        if name in CALLS:
            sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
            if sub is not None:
                closed = sub if hasattr(sub, "consts") else None
                inner = closed.jaxpr if closed is not None else sub
                if len(inner.invars) == len(ins):
                    consts = closed.consts if closed is not None else ()
                    return self.run(inner, consts, ins)
        return self.unknown(eqn, ins, "no channel rule for this primitive")

    def unknown(self, eqn, ins: list[Info], why: str) -> list[Info]:
        name = eqn.primitive.name
        carrying = [i for i in ins if not i.pure and len(i.channels())]
        if carrying:
            if self.on_unknown == "raise":
                raise UntraceableOpError(
                    f"fn: cannot follow pruning channels through `{name}` ({why}) at "
                    f"{_where(eqn)}; pass on_unknown='fix' to keep those channels unpruned"
                )
            for info in carrying:
                self.fix(
                    info.channels(), f"passes through `{name}`, which the tracer cannot follow"
                )
        pure = all(i.pure for i in ins)
        return [Info(tuple(v.aval.shape), pure) for v in eqn.outvars]

    # -- combining positions ----------------------------------------------------------------
    def combine(self, pairs, size: int, where: str, role: str):
        """Meet the ``(info, axis)`` pairs position by position (module doc).

        Returns ``(kinds, families, uniform)`` for the result axis; a pair whose axis has size 1
        against ``size > 1`` is a broadcast and counts as uniform.
        """
        chan = np.full(size, -1, np.int64)
        free = np.zeros(size, bool)
        families = []
        uniform = True
        for info, axis in pairs:
            if info.shape[axis] != size:
                continue  # size-1 broadcast
            if axis not in info.uniform or axis in info.lab:
                uniform = False
            if info.pure:
                covered = np.zeros(size, bool)
                for family in info.prov.get(axis, ()):
                    families.append(family)
                    covered |= family[2] >= 0
                if axis not in info.uniform:
                    free |= ~covered
                continue
            kinds = info.kinds(axis)
            here = kinds >= 0
            for q in np.flatnonzero(here & (chan >= 0)):
                self.union(chan[q], kinds[q])
            chan = np.where(here & (chan < 0), kinds, chan)
            free |= kinds == FREE
        bad = (chan >= 0) & free
        if bad.any():
            self.fix(
                chan[bad],
                f"`{where}` combines it with data that is not a prunable "
                "channel (input data or a constant that varies along it)",
            )
        for family in families:
            self.member(family, chan, role)
        kinds = np.where(chan >= 0, chan, np.where(free, FREE, FILL))
        return kinds, families, uniform

    def elementwise(self, eqn, ins: list[Info]) -> Info:
        shape = tuple(eqn.outvars[0].aval.shape)
        nd = len(shape)
        if any(len(i.shape) not in (0, nd) for i in ins):
            return self.unknown(eqn, ins, "operands of different ranks")[0]
        ranked = [i for i in ins if len(i.shape) == nd]
        pure = all(i.pure for i in ins)
        lab, uniform, prov = {}, set(), {}
        for axis in range(nd):
            kinds, families, uni = self.combine(
                [(i, axis) for i in ranked], shape[axis], eqn.primitive.name, "feature"
            )
            if pure:
                if families:
                    prov[axis] = _dedupe(families)
                if uni:
                    uniform.add(axis)
            else:
                _store(lab, uniform, axis, kinds)
        return Info(shape, pure, lab, frozenset(uniform), prov)

    def produce(self, info: Info, axis: int, name: str) -> np.ndarray:
        """Kinds of a contraction's output axis coming from ``info``'s free ``axis``."""
        size = info.shape[axis]
        if not info.pure:
            return info.kinds(axis)
        families = info.prov.get(axis, ())
        covered = np.zeros(size, bool)
        for family in families:
            covered |= family[2] >= 0
        if not covered.any():
            return np.full(size, FILL if axis in info.uniform else FREE, np.int64)
        node = self.leaf_names[families[0][0]] if families else name
        kinds = np.full(size, FREE, np.int64)
        kinds[covered] = self.new_ids(int(covered.sum()), node)
        for family in families:
            self.member(family, kinds, "out")
        return kinds


def _dedupe(families) -> tuple:
    seen, out = set(), []
    for leaf, axis, pos in families:
        key = (leaf, axis, pos.tobytes())
        if key not in seen:
            seen.add(key)
            out.append((leaf, axis, pos))
    return tuple(out)


def _shape(eqn, k: int = 0) -> tuple[int, ...]:
    return tuple(eqn.outvars[k].aval.shape)


def _remap(info: Info, shape, sources: dict[int, tuple[int, np.ndarray | None]]) -> Info:
    """A new Info of ``shape`` whose axis ``b`` takes axis ``a`` of ``info`` through
    ``sources[b] = (a, src)``: position ``q`` is ``info``'s position ``src[q]`` (``-1``: a
    FILL position; ``None``: the identity). Axes not in ``sources`` are new and uniform."""
    lab, uniform, prov = {}, set(), {}
    for b in range(len(shape)):
        if b not in sources:
            uniform.add(b)
            continue
        a, src = sources[b]
        if src is None:
            if a in info.lab:
                lab[b] = info.lab[a]
            if a in info.uniform:
                uniform.add(b)
            if info.pure and a in info.prov:
                prov[b] = info.prov[a]
            continue
        kinds = info.kinds(a)
        new = np.where(src >= 0, kinds[np.maximum(src, 0)], FILL)
        if info.pure:
            families = []
            for leaf, leaf_axis, pos in info.prov.get(a, ()):
                families.append((leaf, leaf_axis, np.where(src >= 0, pos[np.maximum(src, 0)], -1)))
            if families:
                prov[b] = tuple(families)
            if a in info.uniform and (src >= 0).all():
                uniform.add(b)
        else:
            _store(lab, uniform, b, new)
    return Info(tuple(shape), info.pure, lab, frozenset(uniform), prov)
