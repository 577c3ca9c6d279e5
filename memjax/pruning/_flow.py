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
import itertools

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
    {"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
     "custom_vjp_call_jaxpr", "remat", "remat2", "checkpoint"}
)
REDUCTIONS = frozenset(
    {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or",
     "reduce_xor", "argmax", "argmin"}
)
WINDOWS = frozenset({"reduce_window_sum", "reduce_window_max", "reduce_window_min",
                     "reduce_window"})
CUMULATIVE = frozenset({"cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"})


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

    def __init__(self, leaf_names: list[str], on_unknown: str):
        self.leaf_names = leaf_names
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
        rule = _RULES.get(name)
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
                self.fix(info.channels(), f"passes through `{name}`, which the tracer cannot "
                                          "follow")
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
            self.fix(chan[bad], f"`{where}` combines it with data that is not a prunable "
                                "channel (input data or a constant that varies along it)")
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


# -- rules ----------------------------------------------------------------------------------
def _broadcast_in_dim(tracer, eqn, ins):
    info = ins[0]
    shape = _shape(eqn)
    sources = {}
    for a, b in enumerate(eqn.params["broadcast_dimensions"]):
        if info.shape[a] == shape[b]:
            sources[b] = (a, None)
        elif len(info.lab.get(a, ())) and (info.lab[a] >= 0).any():
            tracer.fix(info.lab[a], "a size-1 channel axis is broadcast")
    return [_remap(info, shape, sources)]


def _transpose(tracer, eqn, ins):
    perm = eqn.params["permutation"]
    return [_remap(ins[0], _shape(eqn), {b: (a, None) for b, a in enumerate(perm)})]


def _squeeze(tracer, eqn, ins):
    info = ins[0]
    dims = set(d % len(info.shape) for d in eqn.params["dimensions"])
    for d in dims:
        if d in info.lab:
            tracer.fix(info.lab[d], "a size-1 channel axis is squeezed away")
    kept = [a for a in range(len(info.shape)) if a not in dims]
    return [_remap(info, _shape(eqn), {b: (a, None) for b, a in enumerate(kept)})]


def _index_rule(make_src):
    def rule(tracer, eqn, ins):
        info = ins[0]
        shape = _shape(eqn)
        sources = {}
        for a in range(len(shape)):
            src = make_src(eqn, a, info.shape[a])
            sources[a] = (a, None if src is None else np.asarray(src, np.int64))
        return [_remap(info, shape, sources)]

    return rule


def _slice_src(eqn, a, n):
    start = eqn.params["start_indices"][a]
    limit = eqn.params["limit_indices"][a]
    strides = eqn.params["strides"]
    step = 1 if strides is None else strides[a]
    if (start, limit, step) == (0, n, 1):
        return None
    return np.arange(start, limit, step)


def _rev_src(eqn, a, n):
    return np.arange(n)[::-1] if a in eqn.params["dimensions"] else None


def _pad_src(eqn, a, n):
    lo, hi, interior = (int(v) for v in eqn.params["padding_config"][a])
    if (lo, hi, interior) == (0, 0, 0):
        return None
    dilated = np.full(n + max(n - 1, 0) * interior, -1, np.int64)
    dilated[:: interior + 1] = np.arange(n)
    left = np.concatenate([np.full(max(lo, 0), -1, np.int64), dilated[max(-lo, 0):]])
    if hi >= 0:
        return np.concatenate([left, np.full(hi, -1, np.int64)])
    return left[: len(left) + hi]


def _pad(tracer, eqn, ins):
    out = _index_rule(_pad_src)(tracer, eqn, ins[:1])[0]
    if not ins[1].pure and out.pure:
        out = dataclasses.replace(out, pure=False, prov={})
    return [out]


def _split(tracer, eqn, ins):
    info = ins[0]
    axis = eqn.params["axis"] % len(info.shape)
    outs, start = [], 0
    for k, size in enumerate(eqn.params["sizes"]):
        size = int(size)
        sources = {a: (a, None) for a in range(len(info.shape))}
        sources[axis] = (axis, np.arange(start, start + size))
        outs.append(_remap(info, _shape(eqn, k), sources))
        start += size
    return outs


def _reduce(tracer, eqn, ins):
    info = ins[0]
    axes = set(eqn.params["axes"])
    kept = [a for a in range(len(info.shape)) if a not in axes]
    return [_remap(info, _shape(eqn), {b: (a, None) for b, a in enumerate(kept)})]


def _cumulative(tracer, eqn, ins):
    info = ins[0]
    axis = eqn.params["axis"] % len(info.shape)
    if not info.pure and len(info.kinds(axis)[info.kinds(axis) >= 0]):
        return tracer.unknown(eqn, ins, f"it runs along channel axis {axis}")
    return [dataclasses.replace(info, uniform=info.uniform - {axis})]


def _window(tracer, eqn, ins):
    if len(eqn.outvars) != 1:
        return tracer.unknown(eqn, ins, "a multi-operand window reduction")
    info = ins[0]
    p = eqn.params
    shape = _shape(eqn)
    sources = {}
    for a in range(len(shape)):
        trivial = (
            p["window_dimensions"][a] == 1
            and p["window_strides"][a] == 1
            and tuple(p["padding"][a]) == (0, 0)
            and p["base_dilation"][a] == 1
            and p["window_dilation"][a] == 1
        )
        if trivial:
            sources[a] = (a, None)
        elif not info.pure and (info.kinds(a) >= 0).any():
            return tracer.unknown(eqn, ins, f"its window runs along channel axis {a}")
    out = _remap(info, shape, sources)
    return [dataclasses.replace(out, uniform=out.uniform & frozenset(sources))]


def _concatenate(tracer, eqn, ins):
    d = eqn.params["dimension"]
    shape = _shape(eqn)
    pure = all(i.pure for i in ins)
    lab, uniform, prov = {}, set(), {}
    for axis in range(len(shape)):
        if axis != d:
            kinds, families, uni = tracer.combine(
                [(i, axis) for i in ins], shape[axis], "concatenate", "feature"
            )
            if pure:
                if families:
                    prov[axis] = _dedupe(families)
                if uni:
                    uniform.add(axis)
            else:
                _store(lab, uniform, axis, kinds)
            continue
        pieces, offsets = [], [0]
        for info in ins:
            if info.pure:
                fill = FILL if d in info.uniform else FREE
                pieces.append(np.full(info.shape[d], fill, np.int64))
            else:
                pieces.append(info.kinds(d))
            offsets.append(offsets[-1] + info.shape[d])
        if pure:
            families = {}
            for k, info in enumerate(ins):
                for leaf, leaf_axis, pos in info.prov.get(d, ()):
                    full = families.setdefault((leaf, leaf_axis), np.full(shape[d], -1, np.int64))
                    full[offsets[k] : offsets[k + 1]] = pos
            if families:
                prov[d] = tuple((leaf, ax, pos) for (leaf, ax), pos in families.items())
        else:
            _store(lab, uniform, d, np.concatenate(pieces))
    return [Info(shape, pure, lab, frozenset(uniform), prov)]


def _contract_pairs(tracer, lhs, rhs, pairs, where):
    for la, ra in pairs:
        tracer.combine([(lhs, la), (rhs, ra)], lhs.shape[la], where, "in")


def _dot_general(tracer, eqn, ins):
    lhs, rhs = ins
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    shape = _shape(eqn)
    lfree = [a for a in range(len(lhs.shape)) if a not in lc and a not in lb]
    rfree = [a for a in range(len(rhs.shape)) if a not in rc and a not in rb]
    pure = lhs.pure and rhs.pure
    lab, uniform, prov = {}, set(), {}
    if pure:
        for b, (side, a) in enumerate(
            [(lhs, a) for a in lb] + [(lhs, a) for a in lfree] + [(rhs, a) for a in rfree]
        ):
            if a in side.prov:
                prov[b] = side.prov[a]
        return [Info(shape, True, {}, frozenset(), prov)]
    _contract_pairs(tracer, lhs, rhs, zip(lc, rc), "dot_general")
    b = 0
    for la, ra in zip(lb, rb):
        kinds, _, _ = tracer.combine([(lhs, la), (rhs, ra)], shape[b], "dot_general", "feature")
        _store(lab, uniform, b, kinds)
        b += 1
    for side, free in ((lhs, lfree), (rhs, rfree)):
        for a in free:
            _store(lab, uniform, b, tracer.produce(side, a, "dot_general"))
            b += 1
    return [Info(shape, False, lab, frozenset(uniform), {})]


def _conv(tracer, eqn, ins):
    lhs, rhs = ins
    p = eqn.params
    dn = p["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    shape = _shape(eqn)
    if lhs.pure and rhs.pure:
        return [Info(shape, True)]
    if p["batch_group_count"] != 1:
        return tracer.unknown(eqn, ins, "batch_group_count > 1")
    for info, spec in ((lhs, lhs_spec), (rhs, rhs_spec)):
        for a in spec[2:]:
            if not info.pure and (info.kinds(a) >= 0).any():
                return tracer.unknown(eqn, ins, "a channel axis is used as a spatial axis")
    lab, uniform = {}, set()
    if not lhs.pure:
        _store(lab, uniform, out_spec[0], lhs.kinds(lhs_spec[0]))
    groups = p["feature_group_count"]
    c_in, c_out = lhs.shape[lhs_spec[1]], rhs.shape[rhs_spec[0]]
    if groups == 1:
        _contract_pairs(tracer, lhs, rhs, [(lhs_spec[1], rhs_spec[1])], "conv_general_dilated")
        out = tracer.produce(rhs, rhs_spec[0], "conv_general_dilated")
    elif groups == c_in and rhs.shape[rhs_spec[1]] == 1:
        # depthwise: output channel o reads input channel o // m (m = channel multiplier)
        lk = lhs.kinds(lhs_spec[1]) if not lhs.pure else np.full(c_in, FREE, np.int64)
        virtual = Info((c_out,), False, {0: np.repeat(lk, c_out // c_in)})
        out, _, _ = tracer.combine(
            [(virtual, 0), (rhs, rhs_spec[0])], c_out, "depthwise conv_general_dilated",
            "depthwise",
        )
    else:
        reason = f"grouped convolution (feature_group_count={groups}) couples channel groups"
        if not lhs.pure:
            tracer.fix(lhs.kinds(lhs_spec[1]), reason)
        if not rhs.pure:
            tracer.fix(rhs.channels(), reason)
        out = np.full(c_out, FREE, np.int64)
    _store(lab, uniform, out_spec[1], out)
    return [Info(shape, False, lab, frozenset(uniform), {})]


def _blocks(in_shape, out_shape):
    """Pair runs of non-unit input axes with runs of output axes of equal size product."""
    ins = [(a, n) for a, n in enumerate(in_shape) if n != 1]
    outs = [(b, n) for b, n in enumerate(out_shape) if n != 1]
    blocks, i, j = [], 0, 0
    while i < len(ins) and j < len(outs):
        bi, bj = [ins[i]], [outs[j]]
        pi, pj = ins[i][1], outs[j][1]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                bi.append(ins[i])
                pi *= ins[i][1]
                i += 1
            else:
                bj.append(outs[j])
                pj *= outs[j][1]
                j += 1
        blocks.append((bi, bj))
    return blocks


def _follow(block, arrays: dict[int, np.ndarray], default: int):
    """Reshape one family through a block: ``arrays`` maps input axes to per-position values.

    Returns ``{output axis: values}``, or ``None`` when the values cannot be told apart along
    single output axes (a channel axis split over several axes, or two merged)."""
    bi, bj = block
    present = [k for k, (a, _) in enumerate(bi) if a in arrays]
    if not present:
        return {}
    if len(present) > 1:
        return None
    k = present[0]
    sizes = [n for _, n in bi]
    shape = [1] * len(bi)
    shape[k] = sizes[k]
    tensor = np.broadcast_to(arrays[bi[k][0]].reshape(shape), sizes).reshape([n for _, n in bj])
    if (tensor == default).all():
        return {}
    for m, (b, n) in enumerate(bj):
        index = tuple(slice(None) if mm == m else 0 for mm in range(len(bj)))
        line = tensor[index]
        shp = [1] * len(bj)
        shp[m] = n
        if np.array_equal(np.broadcast_to(line.reshape(shp), tensor.shape), tensor):
            return {b: np.array(line)}
    return None


def _reshape(tracer, eqn, ins):
    info = ins[0]
    shape = _shape(eqn)
    if 0 in info.shape or eqn.params.get("dimensions") is not None:
        return tracer.unknown(eqn, ins, "an empty or transposing reshape")
    for a, n in enumerate(info.shape):
        if n == 1 and a in info.lab:
            tracer.fix(info.lab[a], "a size-1 channel axis is reshaped away")
    blocks = _blocks(info.shape, shape)
    lab, uniform, prov = {}, set(), {}
    for block in blocks:
        if all(a in info.uniform for a, _ in block[0]):
            uniform.update(b for b, _ in block[1])
        if not info.pure:
            arrays = {
                a: info.lab[a] for a, _ in block[0] if a in info.lab and (info.lab[a] >= 0).any()
            }
            got = _follow(block, arrays, FREE)
            if got is None:
                return tracer.unknown(eqn, ins, f"it splits or merges channel axes "
                                                f"{info.shape} -> {shape}")
            for b, kinds in got.items():
                uniform.discard(b)
                _store(lab, uniform, b, kinds)
            continue
        families = itertools.chain.from_iterable(
            [(a, f) for f in info.prov.get(a, ())] for a, _ in block[0]
        )
        by_family: dict[tuple[int, int], dict[int, np.ndarray]] = {}
        for a, (leaf, leaf_axis, pos) in families:
            by_family.setdefault((leaf, leaf_axis), {})[a] = pos
        for (leaf, leaf_axis), arrays in by_family.items():
            got = _follow(block, arrays, -1)
            for b, pos in (got or {}).items():
                prov.setdefault(b, ())
                prov[b] = (*prov[b], (leaf, leaf_axis, pos))
    return [Info(shape, info.pure, lab, frozenset(uniform), prov)]


def _dynamic_slice(tracer, eqn, ins):
    info = ins[0]
    sizes = eqn.params["slice_sizes"]
    shape = _shape(eqn)
    sources = {}
    for a, n in enumerate(sizes):
        if n == info.shape[a]:
            sources[a] = (a, None)
        elif not info.pure and (info.kinds(a) >= 0).any():
            return tracer.unknown(eqn, ins, f"a traced-index slice of channel axis {a}")
    out = _remap(info, shape, sources)
    pure = all(i.pure for i in ins)
    return [dataclasses.replace(out, pure=pure, uniform=out.uniform & frozenset(sources),
                                prov=out.prov if pure else {})]


def _iota(tracer, eqn, ins):
    return [Info(_shape(eqn), True)]


_RULES = {
    "broadcast_in_dim": _broadcast_in_dim,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "slice": _index_rule(_slice_src),
    "rev": _index_rule(_rev_src),
    "pad": _pad,
    "split": _split,
    "concatenate": _concatenate,
    "reshape": _reshape,
    "dot_general": _dot_general,
    "conv_general_dilated": _conv,
    "dynamic_slice": _dynamic_slice,
    "iota": _iota,
    **{name: _reduce for name in REDUCTIONS},
    **{name: _window for name in WINDOWS},
    **{name: _cumulative for name in CUMULATIVE},
}
