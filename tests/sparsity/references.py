"""Independent NumPy references for the WGSEF tests (none calls memjax.sparsity)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def sef_closed_form(x, k: int) -> float:
    """S_k(x) by spec §2.6 read literally: search the unique r in {0..k-1} with
    |x|_[k-r-1] > T/(r+1) >= |x|_[k-r], T = sum_{i >= k-r} |x|_[i], |x|_[0] = +inf."""
    a = np.sort(np.abs(np.asarray(x, np.float64)))[::-1]
    a1 = np.concatenate([[np.inf], a])  # 1-based, a1[0] = +inf
    found = []
    for r in range(k):
        q = k - r
        tail = a1[q:].sum()
        if a1[q - 1] > tail / (r + 1) >= a1[q]:
            found.append(0.5 * (np.sum(a1[1:q] ** 2) + tail**2 / (r + 1)))
    if not found:  # only with ties/rounding at the boundary: the nearest r by the inequalities
        raise AssertionError(f"no r satisfies §2.6 for {a}, k={k}")
    return found[0]


def group_magnitudes(x, ids, m, weights=None):
    d = np.ones(m) if weights is None else np.asarray(weights, np.float64)
    sq = np.bincount(
        np.asarray(ids).ravel(), weights=np.asarray(x, np.float64).ravel() ** 2, minlength=m
    )
    return np.sqrt(d * sq)


def wgsef_closed_form(x, ids, m, k, weights=None) -> float:
    """WGSEF(θ) = S_k(z), z_j = √d_j‖θ_Gj‖ (spec §3)."""
    return sef_closed_form(group_magnitudes(x, ids, m, weights), k)


def conjugate(y, ids, m, k, weights=None) -> float:
    """f*(y) = ½ (sum of the k largest ‖y_Gj‖²/d_j) — the conjugate of the base function."""
    d = np.ones(m) if weights is None else np.asarray(weights, np.float64)
    v = np.bincount(ids, weights=np.asarray(y) ** 2, minlength=m) / d
    return 0.5 * float(np.sort(v)[::-1][:k].sum())


def biconjugate(theta, ids, m, k, weights=None) -> float:
    """f**(θ) = sup_y <y, θ> − f*(y), as a smooth QCQP solved by SLSQP:
    top-k sum = min_{τ, s ≥ 0, s_j ≥ v_j − τ} kτ + Σ s_j, so maximise over (y, τ, s)
    <y, θ> − ½(kτ + Σ_j s_j) subject to s_j ≥ ‖y_Gj‖²/d_j − τ and s_j ≥ 0."""
    theta = np.asarray(theta, np.float64)
    n = theta.size
    d = np.ones(m) if weights is None else np.asarray(weights, np.float64)

    def split(v):
        return v[:n], v[n], v[n + 1 :]

    def negative_objective(v):
        y, tau, s = split(v)
        return -(y @ theta - 0.5 * (k * tau + s.sum()))

    def gradient(v):
        g = np.zeros_like(v)
        g[:n] = -theta
        g[n] = 0.5 * k
        g[n + 1 :] = 0.5
        return g

    def constraint(v):
        y, tau, s = split(v)
        return s - np.bincount(ids, weights=y**2, minlength=m) / d + tau

    best = -np.inf
    for scale in (1.0, 0.5, 2.0):
        y0 = scale * theta * d[ids]
        v0 = np.concatenate([y0, [0.0], np.bincount(ids, weights=y0**2, minlength=m) / d])
        res = minimize(
            negative_objective,
            v0,
            jac=gradient,
            method="SLSQP",
            constraints=[{"type": "ineq", "fun": constraint}],
            bounds=[(None, None)] * (n + 1) + [(0, None)] * m,
            options={"maxiter": 2000, "ftol": 1e-14},
        )
        y, _, _ = split(res.x)
        # evaluate at the found y exactly (the conjugate in closed form), a valid lower bound
        best = max(best, float(y @ theta) - conjugate(y, ids, m, k, weights))
    return best


def prox_by_solver(x, ids, m, k, lam, weights=None):
    """argmin_w λ·WGSEF(w) + ½‖w − x‖² by scipy (Powell, derivative-free: the objective has
    kinks at zero groups), from several starts; returns (w, objective)."""
    x = np.asarray(x, np.float64)

    def objective(w):
        return lam * wgsef_closed_form(w, ids, m, k, weights) + 0.5 * np.sum((w - x) ** 2)

    best_w, best_f = None, np.inf
    for start in (x, x / (1 + lam), np.zeros_like(x)):
        w = start
        for _ in range(3):  # restarts tighten Powell's result
            res = minimize(
                objective,
                w,
                method="Powell",
                options={"xtol": 1e-12, "ftol": 1e-15, "maxfev": 200_000},
            )
            w = res.x
        if res.fun < best_f:
            best_w, best_f = w, res.fun
    return best_w, best_f


def wgsef_objective(w, x, ids, m, k, lam, weights=None) -> float:
    return lam * wgsef_closed_form(w, ids, m, k, weights) + 0.5 * float(
        np.sum((np.asarray(w, np.float64) - x) ** 2)
    )
