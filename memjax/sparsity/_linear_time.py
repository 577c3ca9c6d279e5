"""Host-side linear-time WGSEF value and prox (NumPy): the reference behind the O(n) claim.

[R + V: the reduction to one root is reconstructed (:mod:`memjax.sparsity._prox`); the
elimination is implemented here and tested against the sort-based jit path.] Worst-case
``O(n + m)`` for ``n`` parameters in ``m`` groups. Both operators reduce to the root ``t`` of
``H(t) = Σ_j clip(α_j t − β_j, 0, 1) − k`` (value: ``α_j = z_j = √d_j ‖θ_{G_j}‖``,
``β_j = 0``; prox: ``α_j = √(λ d_j)‖x_{G_j}‖``, ``β_j = λ d_j``):

1. keep the non-zero groups ``J``; if ``|J| ≤ k`` no root is needed (value ``½‖z‖²``, prox
   ``x_{G_j}/(1 + λ d_j)``);
2. split each clip into two hinges, ``clip(a t − b, 0, 1) = max(a t − b, 0) − max(a t − b − 1, 0)``
   (breakpoints ``p_i = c_i/a_i``);
3. repeat on the live hinges ``Ω``: take a pivot ``p``; evaluate ``H(p) = A p − C +
   Σ_{i∈Ω} s_i max(a_i p − c_i, 0) − k``; return ``p`` if ``|H(p)| ≤ 1e-12·max(1, k)``; if
   ``H(p) > 0`` drop the hinges with ``p_i ≥ p`` (off left of ``p``); if ``H(p) < 0`` fold the
   hinges with ``p_i ≤ p`` into the slope ``A`` and intercept ``C`` and drop them;
4. on the final bracket ``[L, R]``: ``t = (k + C)/A`` if ``A > 1e-12 · Σ|a|``, else ``L``
   (``R`` if ``L = −∞``) — **the cancellation trap**: with exactly ``k`` groups saturated the
   ``+a`` and ``−a`` of their hinges cancel in ``A`` to ~1e-16, and dividing by it returns
   garbage.

**A sampled first step.** For ``m ≥ 32768`` the first step brackets the root of the problem
restricted to a strided sample of 8192 groups (``k`` scaled; Floyd & Rivest's selection idea),
checks both bracket ends on all groups and folds or drops every hinge outside the bracket,
in one pass straight from ``α, β`` (saturated groups are folded as a whole: exact, no ``+a − a``
residue). About 5 % of the hinges stay live when the sample is representative; when it is not,
the step still removes one side, like any other step.

**Worst-case linear selection.** Each later step's pivot is chosen introselect-style: the median of
a strided sample (cheap) as long as a step drops at least 30 % of the live hinges, and after a
step that drops less, the median of the medians of groups of five (Blum, Floyd, Pratt, Rivest &
Tarjan 1973), which has at least 3/10 of the live breakpoints on each side. Any two consecutive
steps thus shrink ``Ω`` by ≥ 30 %, and the steps cost ``O(|Ω|)`` in total — at most
``2 × 10/3`` hinge visits per hinge; about 2 in practice, about 1.1 after a sampled first
step. The median of the medians is found by the same kind of selection (:func:`select`,
exact BFPRT), all in vectorised NumPy (a min/max sorting network over five rows; no Python
loop over groups). ``np.partition`` alone is not enough for a worst-case bound: on x86
NumPy ≥ 2 dispatches it to x86-simd-sort's quickselect, whose fallback is a full sort
(``O(n log n)``); memjax calls it only on at most ``_SMALL``
entries, where it costs ``O(1)``.

Everything runs in float64; the result has ``x``'s dtype. Arguments are checked like the jit
operators' (errors name the argument).

Example:
    >>> import numpy as np
    >>> from memjax.sparsity import prox_wgsef_linear_time, wgsef_value_linear_time
    >>> x = np.array([3.0, 2.0, 0.5, 0.1])
    >>> prox_wgsef_linear_time(x, np.arange(4), 4, 3, 0.2).round(4)
    array([2.5   , 1.6667, 0.4143, 0.0143])
    >>> float(wgsef_value_linear_time(x, np.arange(4), 4, 4))       # k = m: ½‖x‖²
    6.63
"""

from __future__ import annotations

import numpy as np

from memjax.sparsity._arguments import (
    check_k,
    check_lam,
    check_num_groups,
    check_segment_ids,
    check_weights,
    check_x,
)

__all__ = ["ProxWorkspace", "prox_wgsef_linear_time", "select", "wgsef_value_linear_time"]

_SMALL = 2048  # below this size np.partition is a constant-time step


class ProxWorkspace:
    """Work arrays of :func:`prox_wgsef_linear_time`, kept from one call to the next.

    One call on ``m`` groups needs about ``2m`` float64 and ``4m`` boolean work entries, plus
    the ``n``-sized result. Allocated afresh, every one of those pages is mapped from the
    kernel again at its first write (glibc maps blocks above 32 MB straight from the kernel
    and unmaps them on free), and on a loaded VM that page handling grows faster than the
    arithmetic. A workspace keeps the buffers: each grows to the largest problem it has seen
    and is reused as views, so repeated calls (a training loop, a benchmark) write into memory
    that is already mapped. Pass the result buffer as ``out=``. Not thread-safe: one workspace
    per thread. [I]

    Example:
        >>> import numpy as np
        >>> from memjax.sparsity import ProxWorkspace, prox_wgsef_linear_time
        >>> ws, x = ProxWorkspace(), np.array([3.0, 2.0, 0.5, 0.1])
        >>> out = np.empty_like(x)
        >>> w = prox_wgsef_linear_time(x, np.arange(4), 4, 3, 0.2, out=out, workspace=ws)
        >>> w is out, out.round(4)
        (True, array([2.5   , 1.6667, 0.4143, 0.0143]))
        >>> ws.nbytes > 0
        True
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, size: int, dtype=np.float64) -> np.ndarray:
        """A 1-D view of ``size`` entries of the buffer ``name`` (grown when too small; its
        contents are whatever the last call left)."""
        dtype = np.dtype(dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = np.empty(size, dtype)
            self._buffers[name] = buf
        return buf[:size]

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers."""
        return sum(b.nbytes for b in self._buffers.values())


def _median5(v):
    """Medians of the columns of a ``(5, q)`` array: a 9-comparison min/max network."""
    a, b, c, d, e = v
    lo1, hi1 = np.minimum(a, b), np.maximum(a, b)
    lo2, hi2 = np.minimum(c, d), np.maximum(c, d)
    f, g = np.maximum(lo1, lo2), np.minimum(hi1, hi2)  # drops the min and max of a..d
    return np.maximum(np.minimum(f, g), np.minimum(np.maximum(f, g), e))  # median of (f, g, e)


def _pivot(v):
    """A value of ``v`` with at least ~3/10 of ``v`` on each side (median of medians of 5)."""
    n = v.shape[0]
    if n <= _SMALL:
        return np.partition(v, n // 2)[n // 2]
    q = n // 5
    medians = _median5(v[: 5 * q].reshape(5, q))
    return select(medians, q // 2)


def select(values, kth: int):
    """The ``kth`` smallest entry of a 1-D array (0-based), worst-case ``O(len(values))``.

    Quickselect with the median-of-medians pivot (BFPRT): ``T(n) ≤ T(n/5) + T(7n/10) + O(n)``.
    Every step is vectorised NumPy; below ``2048`` entries ``np.partition`` finishes.

    Example:
        >>> import numpy as np
        >>> from memjax.sparsity import select
        >>> v = np.random.default_rng(0).permutation(10_000).astype(float)
        >>> float(select(v, 1234))
        1234.0
    """
    v = np.asarray(values)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values: expected a non-empty 1-D array, got shape {v.shape}")
    if not 0 <= kth < v.size:
        raise ValueError(f"kth: expected 0 <= kth < {v.size}, got {kth}")
    while v.shape[0] > _SMALL:
        p = _pivot(v)
        below = v < p
        n_below = int(np.count_nonzero(below))
        if kth < n_below:
            v = np.compress(below, v)  # np.compress: ~2x faster than v[mask] for random masks
            continue
        above = v > p
        n_at_most = v.shape[0] - int(np.count_nonzero(above))
        if kth < n_at_most:
            return p
        v = np.compress(above, v)
        kth -= n_at_most
    return np.partition(v, kth)[kth]


def _sample_pivot(*rows):
    """The median of a strided sample of about 2,000 entries (cheap; no guarantee)."""
    total = sum(r.shape[0] for r in rows)
    stride = max(1, total // _SMALL)
    sample = np.concatenate([r[::stride] for r in rows])
    return np.partition(sample, sample.shape[0] // 2)[sample.shape[0] // 2]


class _Hinges:
    """Live hinges of one sign, ``max(a t − c, 0) = a · max(t − p, 0)`` with ``p = c/a``.

    Allocation-light on purpose: glibc maps every block above 32 MB fresh from the kernel, and
    on the shared VM a page fault costs ~20 µs, so an m-sized float64 temporary at m = 10⁷
    costs ~0.4 s. ``a`` is shared (not copied) until the first drop, ``Σ`` uses a scratch
    buffer shared by both signs, and masks are written into one boolean buffer.
    """

    def __init__(self, a, p, scratch):
        self.a, self.p, self.scratch = a, p, scratch

    @property
    def size(self) -> int:
        return self.p.shape[0]

    def hinge_sum(self, t) -> float:
        """``Σ a · max(t − p, 0)`` (einsum: BLAS dot was 10x slower on the shared machine)."""
        out = self.scratch[: self.size]
        np.subtract(t, self.p, out=out)
        np.maximum(out, 0.0, out=out)
        return float(np.einsum("i,i->", self.a, out))

    def drop(self, keep):
        self.a, self.p = np.compress(keep, self.a), np.compress(keep, self.p)

    def fold(self, on) -> tuple[float, float]:
        """``(Σ a, Σ c)`` over the hinges in ``on`` (exact sums; the fold of step 3)."""
        w = self.scratch[: self.size]
        w[...] = on
        return float(np.einsum("i,i->", self.a, w)), float(np.einsum("i,i,i->", self.a, self.p, w))


_SAMPLE = 8192  # groups in the strided sample of the first bracketing step


def _sample_bracket(alpha, beta, k):
    """Breakpoints ``l < r`` around the root of the problem restricted to a strided sample of
    ``_SAMPLE`` groups (with ``k`` scaled): about ``6/√(2·_SAMPLE)`` ≈ 5 % of the breakpoints
    fall between them when the sample is representative (Floyd & Rivest's selection idea)."""
    stride = max(1, alpha.size // _SAMPLE)
    a = alpha[::stride]
    b = beta[::stride] if np.ndim(beta) else np.full(a.size, beta)
    k_s = k * a.size / alpha.size
    p = np.sort(np.concatenate([b / a, (b + 1.0) / a]))
    lo, hi = 0, p.size - 1  # binary search: H_s(p[lo]) < 0 <= H_s(p[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if np.clip(a * p[mid] - b, 0.0, 1.0).sum() < k_s:
            lo = mid
        else:
            hi = mid
    width = int(3 * np.sqrt(p.size)) + 1
    return p[max(lo - width, 0)], p[min(hi + width, p.size - 1)]


def _first_step(alpha, beta, k, scratch, masks, tol_h, workspace):
    """Fold or drop every hinge outside a sampled bracket in one O(m) pass, straight from
    ``α, β`` (no m-sized breakpoint arrays; the three boolean ``masks`` rows are the only
    work space). Returns ``(left, right, slope, intercept, live, root)``; ``root`` is set when
    a bracket end is the root within tolerance."""
    lo, hi = _sample_bracket(alpha, beta, k)
    h = {}
    for t in (lo, hi):
        out = np.multiply(alpha, t, out=scratch)
        out -= beta
        np.clip(out, 0.0, 1.0, out=out)
        h[t] = float(out.sum()) - k
        if abs(h[t]) <= tol_h:
            return None, None, 0.0, 0.0, None, t
    left = lo if h[lo] < 0 else -np.inf  # H(lo) >= 0: the root is left of lo
    right = hi if h[hi] > 0 else np.inf  # H(hi) <= 0: the root is right of hi
    if h[lo] >= 0:
        right = lo
    if h[hi] <= 0:
        left = hi
    rise_on, fall_on, work = masks
    slope = intercept = 0.0
    if np.isfinite(left):
        at_left = np.multiply(alpha, left, out=scratch)
        np.greater_equal(at_left, beta, out=rise_on)  # max(α t − β, 0) linear for t >= left
        at_left -= 1.0
        np.greater_equal(at_left, beta, out=fall_on)  # saturated for every t >= left
        linear = np.logical_and(rise_on, np.logical_not(fall_on, out=work), out=work)
        # fold per group, not per hinge: a saturated group adds exactly 1 (no +α − α residue)
        slope = float(np.multiply(alpha, linear, out=scratch).sum())
        if np.ndim(beta):
            b_lin = float(np.multiply(beta, linear, out=scratch).sum())
        else:
            b_lin = beta * float(np.count_nonzero(linear))
        intercept = b_lin - float(np.count_nonzero(fall_on))
    else:
        rise_on[...] = False
        fall_on[...] = False
    at_right = np.multiply(alpha, right if np.isfinite(right) else 0.0, out=scratch)
    live = []
    for on, offset in ((rise_on, 0.0), (fall_on, 1.0)):
        if np.isfinite(right):  # off for every t <= right: α right − (β + offset) <= 0
            if offset:
                at_right -= offset
            np.less_equal(at_right, beta, out=work)
        else:
            work[...] = False
        keep = np.logical_not(np.logical_or(on, work, out=work), out=work)
        count = int(np.count_nonzero(keep))
        a = np.compress(keep, alpha, out=workspace.take(f"live_a{int(offset)}", count))
        p = workspace.take(f"live_p{int(offset)}", count)
        if np.ndim(beta):
            np.compress(keep, beta, out=p)
        else:
            p[...] = beta
        p += offset  # c = β + offset, then p = c / a
        live.append((a, np.divide(p, a, out=p)))
    return left, right, slope, intercept, live, None


def _clip_sum_root(alpha, beta, k, stats=None, scratch=None, workspace=None):
    """Root of ``Σ_j clip(α_j t − β_j, 0, 1) = k`` for ``α_j > 0`` (float64, more than ``k``
    entries; ``β`` an array or a scalar) by the hinge elimination. ``stats`` (a dict)
    receives the work done; ``scratch``: an optional float64 buffer of ``alpha``'s size;
    ``workspace``: a :class:`ProxWorkspace` for the other work arrays.

    Large problems start with one O(m) bracketing step around a root estimated on a strided
    sample (:func:`_first_step`). Pivots, introselect-style: the median of a strided sample
    while a step drops ≥ 30 % of the live hinges; after a step that drops less, the median of
    medians (which drops ≥ 30 %). Any two consecutive steps therefore shrink ``Ω`` by ≥ 30 %:
    ``O(m)`` in the worst case.
    """
    workspace = ProxWorkspace() if workspace is None else workspace
    m = alpha.shape[0]
    scratch = workspace.take("scratch", m) if scratch is None else scratch[:m]
    masks = workspace.take("masks", 3 * m, bool).reshape(3, m)
    mask = masks[0]
    total_a = 2.0 * float(alpha.sum())
    tol_h = 1e-12 * max(1.0, float(k))
    touched = steps = guaranteed = 0
    left, right, slope, intercept = -np.inf, np.inf, 0.0, 0.0
    if alpha.size >= 4 * _SAMPLE:
        left, right, slope, intercept, live, root = _first_step(
            alpha, beta, k, scratch, masks, tol_h, workspace
        )
        steps, touched = 1, 2 * alpha.size
        if root is not None:
            if stats is not None:
                stats.update(
                    steps=1, touched=touched, hinges=2 * alpha.size, slope=0.0, guaranteed_pivots=0
                )
            return root
        rising, falling = (_Hinges(a, p, scratch) for a, p in live)
        cheap = rising.size + falling.size <= 0.7 * 2 * alpha.size
    else:
        p_rise = np.divide(beta, alpha, out=workspace.take("p_rise", m))
        p_fall = np.divide(1.0, alpha, out=workspace.take("p_fall", m))
        p_fall += p_rise  # (β + 1)/α without another m-sized temporary
        rising = _Hinges(alpha, p_rise, scratch)  # s = +1: switches on at β/α
        falling = _Hinges(alpha, p_fall, scratch)  # s = −1: saturates at (β + 1)/α
        cheap = True
    while rising.size + falling.size:
        size = rising.size + falling.size
        steps += 1
        touched += size
        if cheap:
            pivot = _sample_pivot(rising.p, falling.p)
        else:
            guaranteed += 1
            pivot = _pivot(np.concatenate([rising.p, falling.p]))
        h = slope * pivot - intercept + rising.hinge_sum(pivot) - falling.hinge_sum(pivot) - k
        if abs(h) <= tol_h:
            left = right = pivot
            break
        for hinges, sign in ((rising, 1.0), (falling, -1.0)):
            keep = mask[: hinges.size]
            if h > 0:  # every hinge with p_i >= pivot is off left of the pivot
                np.less(hinges.p, pivot, out=keep)
            else:  # every hinge with p_i <= pivot is on right of it: fold into A t − C
                np.less_equal(hinges.p, pivot, out=keep)
                a_on, c_on = hinges.fold(keep)
                slope += sign * a_on
                intercept += sign * c_on
                np.logical_not(keep, out=keep)
            hinges.drop(keep)
        if h > 0:
            right = pivot
        else:
            left = pivot
        cheap = rising.size + falling.size <= 0.7 * size
    if stats is not None:
        stats.update(
            steps=steps,
            touched=touched,
            hinges=2 * alpha.size,
            slope=slope,
            guaranteed_pivots=guaranteed,
        )
    if left == right:
        return left
    if slope > 1e-12 * total_a:  # the cancellation trap: never divide by its residue
        return float(np.clip((k + intercept) / slope, left, right))
    return left if np.isfinite(left) else right


def _all_finite(x) -> bool:
    """Every entry finite, without an n-sized boolean temporary: a float64 sum is finite iff
    every entry is (float32 cannot overflow it); only a float64 overflow needs the full test."""
    if np.isfinite(np.add.reduce(x.reshape(-1), dtype=np.float64)):
        return True
    flat = x.reshape(-1)
    return all(np.isfinite(flat[i : i + _CHUNK]).all() for i in range(0, flat.size, _CHUNK))


def _validate(x, segment_ids, num_groups, k, lam, weights, uses_lam):
    """The argument checks of the jit operators, in fewer passes over the data: the range of
    ``segment_ids`` is implied (and not scanned again) when they are the regular layout, and
    the finiteness of ``x`` is read off the group sums (:func:`_check_finite_sums`)."""
    num_groups = check_num_groups(num_groups)
    check_x(x)
    x = np.asarray(x)
    k = check_k(k, num_groups)
    ids = np.asarray(segment_ids)
    if not np.issubdtype(ids.dtype, np.integer) or ids.shape != x.shape:
        check_segment_ids(segment_ids, x.shape, num_groups)  # raises, naming the argument
    ids = ids.reshape(-1)
    g = _regular_layout(ids, num_groups)
    if not g:  # a regular layout is in range by construction
        check_segment_ids(ids, ids.shape, num_groups)
    if uses_lam:
        check_lam(lam)
    check_weights(weights, num_groups)
    d = None if weights is None else np.broadcast_to(np.asarray(weights, np.float64), (num_groups,))
    return x, ids, num_groups, k, d, g


def _check_finite_sums(x, sums):
    """``x`` is finite iff its float64 group sums of squares are, except when a float64 square
    overflows (then the entries themselves are tested): no extra pass over ``x`` normally."""
    if not np.isfinite(np.add.reduce(sums)) and not _all_finite(x):
        raise ValueError("x: expected finite values")


_CHUNK = 1 << 20  # entries per chunk of the regular-layout pass (an 8 MB float64 buffer)


def _regular_layout(ids, num_groups) -> int:
    """The group size ``g`` if ``ids == repeat(arange(num_groups), g)`` (equal contiguous
    groups, e.g. flattened filters), else 0; checked chunk by chunk (no n-sized temporary)."""
    g, rest = divmod(ids.size, num_groups)
    if rest or not g:
        return 0
    rows = ids.reshape(num_groups, g)
    if rows[0, 0] != 0 or rows[-1, -1] != num_groups - 1:
        return 0
    step = max(1, _CHUNK // g)
    for r0 in range(0, num_groups, step):
        r1 = min(num_groups, r0 + step)
        if not np.array_equal(rows[r0:r1], np.arange(r0, r1)[:, None].repeat(g, axis=1)):
            return 0
    return g


def group_squares(x, ids, num_groups, regular=None, workspace=None):
    """``Σ_{i∈G_j} x_i²`` (squares and sums in float64) and the layout: the group size ``g``
    for equal contiguous groups (then ``np.add.reduceat`` chunk by chunk, into the buffers of
    ``workspace``, a :class:`ProxWorkspace`), the group sizes for other sorted ids (one
    ``np.add.reduceat`` over the runs of equal ids), ``None`` for unsorted ids
    (``np.bincount``)."""
    flat = x.reshape(-1)
    if ids.size == 0:
        return np.zeros(num_groups), None
    g = _regular_layout(ids, num_groups) if regular is None else regular
    if g:
        workspace = ProxWorkspace() if workspace is None else workspace
        sums = workspace.take("sums", num_groups)
        step = max(1, _CHUNK // g)
        buffer = workspace.take("chunk", step * g)
        starts = np.arange(0, step * g, g)
        for r0 in range(0, num_groups, step):
            r1 = min(num_groups, r0 + step)
            chunk = np.square(flat[r0 * g : r1 * g], out=buffer[: (r1 - r0) * g], dtype=np.float64)
            np.add.reduceat(chunk, starts[: r1 - r0], out=sums[r0:r1])
        return sums, g
    x2 = np.square(flat, dtype=np.float64)
    step = np.diff(ids)
    if step.size and step.min() < 0:
        return np.bincount(ids, weights=x2, minlength=num_groups), None
    run_starts = np.concatenate([[0], np.flatnonzero(step) + 1])
    present = ids[run_starts]
    sums, sizes = np.zeros(num_groups), np.zeros(num_groups, np.int64)
    sums[present] = np.add.reduceat(x2, run_starts)
    sizes[present] = np.diff(np.append(run_starts, ids.size))
    return sums, sizes


def apply_group_scale(x, ids, scale, layout, out=None, workspace=None):
    """``x_i · scale[group(i)]`` in ``x``'s dtype, for the ``layout`` of :func:`group_squares`:
    a broadcast for equal contiguous groups, ``np.repeat`` for sorted ids, a gather otherwise.
    ``out``: an array of ``x``'s shape and dtype to write into (returned); ``workspace``: a
    :class:`ProxWorkspace` for the cast of ``scale``."""
    flat = x.reshape(-1)
    if workspace is None:
        scale = scale.astype(flat.dtype)
    else:
        cast = workspace.take("scale_cast", scale.size, flat.dtype)
        np.copyto(cast, scale, casting="unsafe")  # the same rounding as astype
        scale = cast
    if out is None:
        out = np.empty(x.shape, flat.dtype)
    target = out.reshape(-1)
    if isinstance(layout, int):
        np.multiply(
            flat.reshape(scale.size, layout), scale[:, None], out=target.reshape(-1, layout)
        )
        return out
    if layout is not None:
        target[...] = np.repeat(scale, layout)
    else:
        np.take(scale, ids, out=target)
    np.multiply(target, flat, out=target)
    return out


def _check_out(out, x):
    """``out`` is a writable C-contiguous NumPy array of ``x``'s shape and dtype, apart from
    ``x``'s memory (the gather layouts write it before reading ``x`` again)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(
            f"out: expected shape {x.shape} and dtype {x.dtype} (those of x), "
            f"got {out.shape} {out.dtype}"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a writable C-contiguous array")
    if np.shares_memory(out, x):
        raise ValueError("out: must not share memory with x")
    return out


def prox_wgsef_linear_time(
    x, segment_ids, num_groups, k, lam, weights=None, *, stats=None, out=None, workspace=None
):
    """``argmin_w λ·WGSEF(w) + ½‖w − x‖²`` on the host in worst-case ``O(n + m)``.

    Same arguments and result as :func:`memjax.sparsity.prox_wgsef` (NumPy in, NumPy out, the
    dtype of ``x``), by the hinge elimination of the module docstring with the
    median-of-medians guarantee. ``stats``: an optional dict that receives the number of
    elimination steps, of hinges touched (the linear-time evidence: ``touched ≤ 20/3 × hinges``,
    about 2× in practice) and of guaranteed (median-of-medians) pivots. ``out``: an array of
    ``x``'s shape and dtype (C-contiguous, not ``x`` itself) that receives the result and is
    returned; ``workspace``: a :class:`ProxWorkspace` whose buffers are reused for the work
    arrays. With both, repeated calls on equal-sized problems allocate no ``m``- or
    ``n``-sized arrays (the results are the same bit for bit).

    Example:
        >>> import numpy as np
        >>> from memjax.sparsity import prox_wgsef_linear_time
        >>> x = np.array([1.0, 1.0, 3.0, 0.2, 0.1])
        >>> prox_wgsef_linear_time(x, np.array([0, 0, 1, 2, 2]), 3, 1, 10.0).round(6)
        array([0.      , 0.      , 0.272727, 0.      , 0.      ])
    """
    x, ids, m, k, d, g = _validate(x, segment_ids, num_groups, k, lam, weights, True)
    if out is not None:
        _check_out(out, x)
    if workspace is not None and not isinstance(workspace, ProxWorkspace):
        raise TypeError(f"workspace: expected a ProxWorkspace, got {type(workspace).__name__}")
    workspace = ProxWorkspace() if workspace is None else workspace
    lam = float(np.asarray(lam))
    if lam == 0.0:
        if not _all_finite(x):
            raise ValueError("x: expected finite values")
        if out is None:
            return x.copy()
        np.copyto(out, x)
        return out
    alpha, layout = group_squares(x, ids, m, g, workspace)
    _check_finite_sums(x, alpha)
    np.sqrt(alpha, out=alpha)  # ν_j, then α_j = √(λ d_j) ν_j in place (few m-sized arrays)
    beta = lam if weights is None else lam * d  # λ d_j: a scalar when the weights are uniform
    alpha *= np.sqrt(beta)
    active = np.greater(alpha, 0.0, out=workspace.take("active", m, bool))
    n_active = int(np.count_nonzero(active))
    scratch = workspace.take("scratch", m)  # one buffer for the root finder and then the scale
    if n_active <= k:
        scale = np.add(np.broadcast_to(beta, (m,)), 1.0, out=scratch)
        np.divide(1.0, scale, out=scale)
    else:
        if n_active == m:
            t = _clip_sum_root(alpha, beta, k, stats, scratch, workspace)
        else:
            b_active = beta if np.ndim(beta) == 0 else beta[active]
            t = _clip_sum_root(alpha[active], b_active, k, stats, scratch, workspace)
        u = np.multiply(alpha, t, out=alpha)  # u_j = clip(α_j t − β_j, 0, 1), in place
        u -= beta
        np.clip(u, 0.0, 1.0, out=u)
        scale = np.add(u, beta, out=scratch)
        np.divide(u, scale, out=scale)  # u_j / (u_j + λ d_j); 0 for zero groups (u_j = 0)
    return apply_group_scale(x, ids, scale, layout, out, workspace)


def wgsef_value_linear_time(x, segment_ids, num_groups, k, weights=None):
    """``WGSEF(θ)`` on the host in worst-case ``O(n + m)``, by the SEF's root-finding form.

    With ``z_j = √d_j ‖θ_{G_j}‖``: if at most ``k`` groups are non-zero the value is ``½‖z‖²``;
    otherwise ``u_j = min(z_j η, 1)`` with ``Σ_j u_j = k`` and the value is
    ``½ Σ_{z_j ≠ 0} z_j² / u_j``. Returns a Python float.

    Example:
        >>> import numpy as np
        >>> from memjax.sparsity import wgsef_value_linear_time
        >>> float(wgsef_value_linear_time(np.array([3.0, -1.0, 0.5]), np.arange(3), 3, 1))
        10.125
    """
    x, ids, m, k, d, g = _validate(x, segment_ids, num_groups, k, None, weights, False)
    sq, _ = group_squares(x, ids, m, g)
    _check_finite_sums(x, sq)
    z = np.sqrt(sq if d is None else d * sq)
    nz = z[z > 0]
    if nz.size <= k:
        return 0.5 * float(np.sum(nz * nz))
    eta = _clip_sum_root(nz, np.zeros_like(nz), k)
    u = np.minimum(nz * eta, 1.0)
    return 0.5 * float(np.sum(nz * nz / u))
