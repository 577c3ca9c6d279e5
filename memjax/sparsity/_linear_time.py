"""Host-side linear-time WGSEF value and prox (NumPy): the reference behind the O(n) claim.

Spec §5 [R + V], worst-case ``O(n + m)`` for ``n`` parameters in ``m`` groups. Both operators
reduce to the root ``t`` of ``H(t) = Σ_j clip(α_j t − β_j, 0, 1) − k``
(value: ``α_j = z_j = √d_j ‖θ_{G_j}‖``, ``β_j = 0``; prox: ``α_j = √(λ d_j)‖x_{G_j}‖``,
``β_j = λ d_j``):

1. keep the non-zero groups ``J``; if ``|J| ≤ k`` use the closed form (§3);
2. split each clip into two hinges, ``clip(a t − b, 0, 1) = max(a t − b, 0) − max(a t − b − 1, 0)``
   (breakpoints ``p_i = c_i/a_i``);
3. repeat on the live hinges ``Ω``: take a pivot ``p``; evaluate ``H(p) = A p − C +
   Σ_{i∈Ω} s_i max(a_i p − c_i, 0) − k``; return ``p`` if ``|H(p)| ≤ 1e-12·max(1, k)``; if
   ``H(p) > 0`` drop the hinges with ``p_i ≥ p`` (off left of ``p``); if ``H(p) < 0`` fold the
   hinges with ``p_i ≤ p`` into the slope ``A`` and intercept ``C`` and drop them;
4. on the final bracket ``[L, R]``: ``t = (k + C)/A`` if ``A > 1e-12 · Σ|a|``, else ``L``
   (``R`` if ``L = −∞``) — **the §5 trap**: with exactly ``k`` groups saturated the ``+a`` and
   ``−a`` of their hinges cancel in ``A`` to ~1e-16, and dividing by it returns garbage.

**Worst-case linear selection.** The pivot is the median of the medians of groups of five
(Blum, Floyd, Pratt, Rivest & Tarjan 1973): at least 3/10 of the live breakpoints lie on each
side, so every step drops ≥ 30 % of ``Ω`` and the steps cost ``O(|Ω|)`` in total. The median of
the medians is found by the same selection (``select``), recursively, all in vectorised NumPy
(a sorting network over five rows; no Python loop over groups). ``np.partition`` alone is not
enough for a worst-case bound: on x86 NumPy ≥ 2 dispatches it to x86-simd-sort's quickselect,
whose fallback is a full sort (``O(n log n)``); memjax uses it only below a fixed size
(``_SMALL``), where it costs ``O(1)``.

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

__all__ = ["prox_wgsef_linear_time", "select", "wgsef_value_linear_time"]

_SMALL = 2048  # below this size np.partition is a constant-time step


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
            v = v[below]
            continue
        n_at_most = n_below + int(np.count_nonzero(v == p))
        if kth < n_at_most:
            return p
        v = v[v > p]
        kth -= n_at_most
    return np.partition(v, kth)[kth]


def _clip_sum_root(alpha, beta, k, stats=None):
    """Root of ``Σ_j clip(α_j t − β_j, 0, 1) = k`` for ``α_j > 0`` (float64, more than ``k``
    entries) by the §5 hinge elimination. ``stats`` (a dict) receives the work done."""
    a = np.concatenate([alpha, alpha])
    c = np.concatenate([beta, beta + 1.0])
    s = np.concatenate([np.ones_like(alpha), -np.ones_like(alpha)])
    p = c / a
    total_a = float(a.sum())
    slope = intercept = 0.0
    left, right = -np.inf, np.inf
    tol_h = 1e-12 * max(1.0, float(k))
    touched = steps = 0
    while p.size:
        steps += 1
        touched += p.size
        pivot = _pivot(p)
        h = slope * pivot - intercept + float(np.dot(s, np.maximum(a * pivot - c, 0.0))) - k
        if abs(h) <= tol_h:
            left = right = pivot
            break
        if h > 0:
            right = pivot
            keep = p < pivot
        else:
            left = pivot
            on = p <= pivot
            slope += float(np.dot(s[on], a[on]))
            intercept += float(np.dot(s[on], c[on]))
            keep = ~on
        a, c, s, p = a[keep], c[keep], s[keep], p[keep]
    if stats is not None:
        stats.update(steps=steps, touched=touched, hinges=2 * alpha.size, slope=slope)
    if left == right:
        return left
    if slope > 1e-12 * total_a:  # the §5 trap: never divide by a cancellation residue
        return float(np.clip((k + intercept) / slope, left, right))
    return left if np.isfinite(left) else right


def _validate(x, segment_ids, num_groups, k, lam, weights, uses_lam):
    num_groups = check_num_groups(num_groups)
    check_x(x)
    x = np.asarray(x)
    k = check_k(k, num_groups)
    check_segment_ids(segment_ids, x.shape, num_groups)
    if uses_lam:
        check_lam(lam)
    check_weights(weights, num_groups)
    if not np.all(np.isfinite(x)):
        raise ValueError("x: expected finite values")
    ids = np.asarray(segment_ids).reshape(-1)
    d = (
        np.ones(num_groups)
        if weights is None
        else np.broadcast_to(np.asarray(weights, np.float64), (num_groups,))
    )
    return x, ids, num_groups, k, d


def _group_squares(x, ids, num_groups):
    """``Σ_{i∈G_j} x_i²`` in float64, and the group sizes when the ids are sorted (then one
    ``np.add.reduceat`` over contiguous groups; ``np.bincount`` otherwise)."""
    x2 = np.square(x.reshape(-1), dtype=np.float64)
    if ids.size == 0:
        return np.zeros(num_groups), None
    if np.all(ids[1:] >= ids[:-1]):
        starts = np.searchsorted(ids, np.arange(num_groups))
        sizes = np.diff(np.append(starts, ids.size))
        sums = np.zeros(num_groups)
        nonempty = sizes > 0
        sums[nonempty] = np.add.reduceat(x2, starts[nonempty])
        return sums, sizes
    return np.bincount(ids, weights=x2, minlength=num_groups), None


def _apply_scale(x, ids, scale, counts):
    flat = x.reshape(-1)
    per_entry = np.repeat(scale, counts) if counts is not None else scale[ids]
    return (flat * per_entry.astype(flat.dtype)).reshape(x.shape)


def prox_wgsef_linear_time(x, segment_ids, num_groups, k, lam, weights=None, *, stats=None):
    """``argmin_w λ·WGSEF(w) + ½‖w − x‖²`` on the host in worst-case ``O(n + m)`` (spec §5).

    Same arguments and result as :func:`memjax.sparsity.prox_wgsef` (NumPy in, NumPy out, the
    dtype of ``x``), by the hinge elimination of the module docstring with the
    median-of-medians pivot. ``stats``: an optional dict that receives the number of
    elimination steps and of hinges touched (the linear-time evidence: ``touched`` stays below about
    ``10/3 × hinges``).

    Example:
        >>> import numpy as np
        >>> from memjax.sparsity import prox_wgsef_linear_time
        >>> x = np.array([1.0, 1.0, 3.0, 0.2, 0.1])
        >>> prox_wgsef_linear_time(x, np.array([0, 0, 1, 2, 2]), 3, 1, 10.0).round(6)
        array([0.      , 0.      , 0.272727, 0.      , 0.      ])
    """
    x, ids, m, k, d = _validate(x, segment_ids, num_groups, k, lam, weights, True)
    lam = float(np.asarray(lam))
    if lam == 0.0:
        return x.copy()
    sq, counts = _group_squares(x, ids, m)
    nu = np.sqrt(sq)
    beta = lam * d
    alpha = np.sqrt(beta) * nu
    active = alpha > 0
    if np.count_nonzero(active) <= k:
        u = np.ones(m)
    else:
        t = _clip_sum_root(alpha[active], beta[active], k, stats)
        u = np.where(active, np.clip(alpha * t - beta, 0.0, 1.0), 0.0)
    return _apply_scale(x, ids, u / (u + beta), counts)


def wgsef_value_linear_time(x, segment_ids, num_groups, k, weights=None):
    """``WGSEF(θ)`` on the host in worst-case ``O(n + m)``, by the root-finding form (§2.5).

    With ``z_j = √d_j ‖θ_{G_j}‖``: if at most ``k`` groups are non-zero the value is ``½‖z‖²``;
    otherwise ``u_j = min(z_j η, 1)`` with ``Σ_j u_j = k`` and the value is
    ``½ Σ_{z_j ≠ 0} z_j² / u_j``. Returns a Python float.

    Example:
        >>> import numpy as np
        >>> from memjax.sparsity import wgsef_value_linear_time
        >>> float(wgsef_value_linear_time(np.array([3.0, -1.0, 0.5]), np.arange(3), 3, 1))
        10.125
    """
    x, ids, m, k, d = _validate(x, segment_ids, num_groups, k, None, weights, False)
    sq, _ = _group_squares(x, ids, m)
    z = np.sqrt(d * sq)
    nz = z[z > 0]
    if nz.size <= k:
        return 0.5 * float(np.sum(nz * nz))
    eta = _clip_sum_root(nz, np.zeros_like(nz), k)
    u = np.minimum(nz * eta, 1.0)
    return 0.5 * float(np.sum(nz * nz / u))
