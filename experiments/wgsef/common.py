"""Pieces the WGSEF experiments share: the exact-k pipelines (sparse phase → exactly k groups →
fine-tune with the zero groups frozen), optimizers per method, and measurement helpers.

Methods (all end with exactly ``k`` groups per layer):

* ``wgsef`` — ProxSGD with ``R = λ·WGSEF_k`` (:func:`memjax.sparsity.prox_sgd`), then one prox
  step at :func:`memjax.sparsity.lam_for_k`'s λ (:func:`memjax.sparsity.prox_to_k`): the user
  gives k, the envelope itself leaves exactly k;
* ``group_lasso`` — Prox-SG (SGD + :func:`memjax.sparsity.group_lasso_proximal`), then the top-k
  projection;
* ``hspg`` — Prox-SG for the first half of the sparse phase, then HSPG's half-space steps
  (:func:`memjax.sparsity.half_space`), then the top-k projection;
* ``magnitude`` — plain SGD, then the top-k projection by filter norm (magnitude filter pruning).

Example:
    >>> from experiments.wgsef.common import METHODS, sparse_optimizer
    >>> METHODS
    ('wgsef', 'group_lasso', 'hspg', 'magnitude')
"""

from __future__ import annotations

import time

import jax
import numpy as np
import optax

from memjax.sparsity import (
    group_lasso_proximal,
    half_space,
    keep_zero_groups,
    project_top_k,
    prox_sgd,
    prox_to_k,
)

__all__ = [
    "METHODS",
    "exact_k",
    "finetune_optimizer",
    "latency_ms",
    "sparse_optimizer",
]

METHODS = ("wgsef", "group_lasso", "hspg", "magnitude")


def sparse_optimizer(method: str, groups, k, lam: float, lr: float, *, half: bool = False):
    """The optimizer of the sparse phase (``half``: HSPG's second, half-space half)."""
    if method == "wgsef":
        return prox_sgd(groups, k, lam)
    if method == "group_lasso" or (method == "hspg" and not half):
        return optax.chain(optax.sgd(lr, momentum=0.9), group_lasso_proximal(groups, lam, lr))
    if method == "hspg":
        return optax.chain(optax.sgd(lr), half_space(groups, lr, lam=lam, epsilon=0.0))
    if method == "magnitude":
        return optax.sgd(lr, momentum=0.9)
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def exact_k(method: str, params, groups, k):
    """``(params with exactly k groups, λ of the exact-k prox step or None)``."""
    if method == "wgsef":
        try:
            return prox_to_k(params, groups, k)
        except ValueError:  # a tie at the k-th place: no λ separates it; project instead
            return project_top_k(params, groups, k)[0], None
    return project_top_k(params, groups, k)[0], None


def finetune_optimizer(groups, lr: float):
    """Momentum SGD with the zero groups frozen (exactly k stay)."""
    return optax.chain(optax.sgd(lr, momentum=0.9), keep_zero_groups(groups))


def latency_ms(fns: dict, *, repeats: int = 50) -> dict:
    """``{name: ms}``: the fastest of ``repeats`` timed calls of each jitted ``fn(*args)``
    (``fns = {name: (fn, args)}``), the calls of the functions interleaved so that load from
    other processes hits all of them alike; one warm-up call each first."""
    jitted = {n: (jax.jit(f), a) for n, (f, a) in fns.items()}
    for f, a in jitted.values():
        jax.block_until_ready(f(*a))
    times = {n: [] for n in jitted}
    for _ in range(repeats):
        for n, (f, a) in jitted.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*a))
            times[n].append(time.perf_counter() - t0)
    return {n: float(np.min(t) * 1e3) for n, t in times.items()}
