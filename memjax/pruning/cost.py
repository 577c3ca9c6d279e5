r"""The cost a user pays: FLOPs from XLA's cost analysis, parameter counts, measured latency.

Masks make nothing faster; a materialised network (:func:`~memjax.pruning.materialize`) does,
and the honest way to show it is to ask the compiler and the clock, not a hand-written counter.

* :func:`xla_flops` — the ``"flops"`` entry of
  ``jax.jit(fn).lower(*args).compile().cost_analysis()``: what XLA's HLO cost model counts for
  the compiled program. For a convolution that is :math:`2 \sum_{p} |T(p)| \, C_{in} C_{out}`
  per image, :math:`T(p)` the kernel taps of output position :math:`p` that fall inside the
  input (padded taps are not counted); a dense layer :math:`2 d_{in} d_{out}`; an elementwise
  op (bias, ReLU as ``max``, BatchNorm arithmetic) one per element; a :math:`k \times k` max-pool
  :math:`k^2 - 1` comparisons per output. (thop, which the Beta-Rank paper's tables use, counts
  multiply-accumulates over padded taps as well, so its "FLOPs" are about half of these.)
* :func:`measure_latency` — the median wall time of a jitted call over ``repeats`` runs after
  ``warmup`` runs, each ending in ``block_until_ready``; compile time is reported separately,
  and so is the median **CPU time** of the process per call (``time.process_time``, all of
  XLA's threads): on a machine shared with other jobs wall time also counts the waits for a
  core, which CPU time leaves out.
* :func:`measure_latencies` — several calls timed in turns (one run of each per round), so a
  machine whose load drifts slows them alike and their ratio stays fair.
* :func:`model_cost` — FLOPs per image, parameters, and latency at batch 1 and 64 of one
  ``apply(params, x)`` in one call, the row a pruning table prints before and after surgery.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.pruning import xla_flops
    >>> f = lambda w, x: x @ w
    >>> xla_flops(f, jnp.ones((5, 3)), jnp.ones((2, 5)))          # 2 * batch * d_in * d_out
    60.0
    >>> from memjax.pruning import measure_latency
    >>> lat = measure_latency(f, jnp.ones((5, 3)), jnp.ones((2, 5)), repeats=3, warmup=1)
    >>> lat.repeats, lat.median_s > 0, lat.compile_s > 0, lat.cpu_s >= 0
    (3, True, True, True)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_positive_int
from memjax.pruning.surgery import count_params

__all__ = ["Latency", "measure_latencies", "measure_latency", "model_cost", "xla_flops"]


def _compiled(fn: Callable, args):
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    return jax.jit(fn).lower(*args).compile()


def xla_flops(fn: Callable, *args) -> float:
    r"""FLOPs of ``fn(*args)`` by XLA's cost analysis of the compiled program (module doc).

    ``args`` may be arrays or ``jax.ShapeDtypeStruct``\ s (nothing is run).
    """
    cost = _compiled(fn, args).cost_analysis()
    if isinstance(cost, Sequence):  # older JAX returned one dict per device
        cost = cost[0]
    if not cost or "flops" not in cost:
        raise RuntimeError("fn: the backend's cost analysis reports no 'flops' for this program")
    return float(cost["flops"])


class Latency(NamedTuple):
    """Wall times in seconds of a jitted call: the median, 10th and 90th percentiles over
    ``repeats`` runs, the time to lower and compile, and the median process CPU time per
    call (``cpu_s``, every thread's)."""

    median_s: float
    p10_s: float
    p90_s: float
    repeats: int
    compile_s: float
    cpu_s: float = float("nan")


def measure_latency(fn: Callable, *args, repeats: int = 20, warmup: int = 3) -> Latency:
    """Median latency of ``jax.jit(fn)(*args)`` (module doc); ``args`` must be arrays."""
    check_positive_int("repeats", repeats)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected a non-negative int, got {warmup!r}")
    start = time.perf_counter()
    compiled = _compiled(fn, args)
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times, cpu = [], []
    for _ in range(repeats):
        times.append(_timed(compiled, args, cpu))
    return _summary(times, compile_s, cpu)


def _timed(compiled, args, cpu: list) -> float:
    start, start_cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(*args))
    cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start


def _summary(times, compile_s, cpu) -> Latency:
    times = sorted(times)
    pick = lambda q: times[min(len(times) - 1, int(q * (len(times) - 1) + 0.5))]
    return Latency(
        statistics.median(times),
        pick(0.1),
        pick(0.9),
        len(times),
        compile_s,
        statistics.median(cpu),
    )


def measure_latencies(calls: dict, *, repeats: int = 20, warmup: int = 3) -> dict:
    """``{name: Latency}`` of ``calls = {name: (fn, args)}``, timed in interleaved rounds."""
    check_positive_int("repeats", repeats)
    if not isinstance(calls, dict) or not calls:
        raise ValueError("calls: expected a non-empty dict name -> (fn, args)")
    compiled, compile_s = {}, {}
    for name, (fn, args) in calls.items():
        start = time.perf_counter()
        compiled[name] = _compiled(fn, tuple(args))
        compile_s[name] = time.perf_counter() - start
        for _ in range(warmup):
            jax.block_until_ready(compiled[name](*args))
    times = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (_, args) in calls.items():
            times[name].append(_timed(compiled[name], tuple(args), cpu[name]))
    return {name: _summary(times[name], compile_s[name], cpu[name]) for name in calls}


def model_cost(
    apply_fn: Callable,
    params,
    image_shape: Sequence[int],
    *,
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = 20,
    warmup: int = 3,
    dtype=jnp.float32,
    seed: int = 0,
) -> dict:
    """FLOPs per image, parameters and latency of ``apply_fn(params, x)`` (module doc).

    Args:
        apply_fn: ``apply_fn(params, x) -> logits`` (evaluation mode).
        params: the arrays closed over (everything counted by :func:`count_params`).
        image_shape: one image's shape, e.g. ``(32, 32, 3)``.
        batch_sizes: batches to time (``()`` skips timing).

    Returns:
        A dict: ``"flops"`` per image (XLA, batch 1), ``"params"`` (int), ``"latency_ms"``
        (``{batch: median ms}``), ``"latency_p10_ms"``, ``"latency_p90_ms"`` and
        ``"cpu_ms"`` (median process CPU time per call; same keys).
    """
    shape = tuple(image_shape)
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"image_shape: expected positive ints, got {image_shape!r}")
    one = jax.ShapeDtypeStruct((1, *shape), dtype)
    out = {"flops": xla_flops(apply_fn, params, one), "params": count_params(params)}
    lat, p10, p90, cpu = {}, {}, {}, {}
    key = jax.random.key(seed)
    for b in batch_sizes:
        check_positive_int("batch_sizes", b)
        x = jax.random.normal(key, (b, *shape), dtype)
        m = measure_latency(apply_fn, params, x, repeats=repeats, warmup=warmup)
        lat[b], p10[b], p90[b] = m.median_s * 1e3, m.p10_s * 1e3, m.p90_s * 1e3
        cpu[b] = m.cpu_s * 1e3
    out.update(latency_ms=lat, latency_p10_ms=p10, latency_p90_ms=p90, cpu_ms=cpu)
    return out
