"""(private) The per-primitive channel rules of the tracer in :mod:`memjax.pruning._flow`.

Each rule maps ``(tracer, eqn, infos of the inputs)`` to the infos of the outputs, telling the
tracer where channels are produced, united, become members or get fixed (``_flow``'s doc).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from memjax.pruning._flow import FILL, FREE, Info, _dedupe, _remap, _shape, _store

REDUCTIONS = frozenset(
    {
        "reduce_sum",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_and",
        "reduce_or",
        "reduce_xor",
        "argmax",
        "argmin",
    }
)
WINDOWS = frozenset(
    {"reduce_window_sum", "reduce_window_max", "reduce_window_min", "reduce_window"}
)
CUMULATIVE = frozenset({"cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"})


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
    left = np.concatenate([np.full(max(lo, 0), -1, np.int64), dilated[max(-lo, 0) :]])
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
            [(virtual, 0), (rhs, rhs_spec[0])],
            c_out,
            "depthwise conv_general_dilated",
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
                return tracer.unknown(
                    eqn, ins, f"it splits or merges channel axes {info.shape} -> {shape}"
                )
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
    return [
        dataclasses.replace(
            out, pure=pure, uniform=out.uniform & frozenset(sources), prov=out.prov if pure else {}
        )
    ]


def _iota(tracer, eqn, ins):
    return [Info(_shape(eqn), True)]


RULES = {
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
