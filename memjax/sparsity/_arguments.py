"""Argument checks shared by the WGSEF operators: errors that name the argument.

A check on a concrete value (a Python number, a NumPy array, a JAX array that is not a tracer)
raises ``ValueError`` / ``TypeError`` at once, also while ``jit`` traces. A check on a traced
value rides on the computation through :func:`equinox.error_if`: a bad value raises when the
compiled program runs, with a message that names the argument, instead of letting a NaN travel
silently.

Example:
    >>> from memjax.sparsity._arguments import check_k
    >>> check_k(2, 5)
    2
    >>> check_k(6, 5)
    Traceback (most recent call last):
    ...
    ValueError: k: expected an integer with 1 <= k <= num_groups = 5, got 6
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True when ``x`` is a JAX tracer (inside ``jit``, ``vmap``, ``grad``)."""
    return isinstance(x, jax.core.Tracer)


def _concrete(x):
    """A NumPy view of a concrete value (a JAX array is fetched from its device)."""
    return np.asarray(x)


def guard(carrier, bad, message: str):
    """Raise ``ValueError(message)`` if the concrete ``bad`` holds; attach the check if traced.

    ``carrier`` is the array the runtime check rides on (returned, possibly wrapped).
    """
    if is_traced(bad):
        return eqx.error_if(carrier, bad, message)
    if bool(bad):
        raise ValueError(message)
    return carrier


def check_num_groups(num_groups) -> int:
    """``num_groups`` must be a static positive integer (it fixes array shapes)."""
    if is_traced(num_groups):
        raise TypeError("num_groups: expected a static Python int (it fixes shapes), got a tracer")
    if (
        isinstance(num_groups, bool)
        or not isinstance(num_groups, int | np.integer)
        or num_groups < 1
    ):
        raise ValueError(f"num_groups: expected a positive integer, got {num_groups!r}")
    return int(num_groups)


def _dtype_shape(x) -> tuple[np.dtype, tuple[int, ...]]:
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return np.dtype(x.dtype), tuple(x.shape)
    a = np.asarray(x)
    return a.dtype, a.shape


def check_k(k, num_groups: int):
    """``k`` is an integer scalar with ``1 <= k <= num_groups``; returns a Python int when
    concrete, the tracer otherwise (its range is then checked at run time by :func:`guard_k`)."""
    if isinstance(k, bool):
        raise TypeError("k: expected an integer, got a bool")
    dtype, shape = _dtype_shape(k)
    if shape != () or not np.issubdtype(dtype, np.integer):
        raise TypeError(f"k: expected an integer scalar, got {dtype}{list(shape)} {k!r}")
    if is_traced(k):
        return k
    k = int(_concrete(k))
    if not 1 <= k <= num_groups:
        raise ValueError(
            f"k: expected an integer with 1 <= k <= num_groups = {num_groups}, got {k}"
        )
    return k


def guard_k(carrier, k, num_groups: int):
    """Attach the run-time range check of a traced ``k`` to ``carrier``."""
    if not is_traced(k):
        return carrier
    bad = (k < 1) | (k > num_groups)
    return guard(carrier, bad, f"k: expected 1 <= k <= num_groups = {num_groups}")


def check_x(x, name: str = "x"):
    """``x`` is a floating array (any shape)."""
    dtype, _ = _dtype_shape(x)
    if not np.issubdtype(dtype, np.floating) and dtype != jnp.bfloat16:
        raise TypeError(f"{name}: expected a floating dtype, got {dtype}")
    return x


def guard_finite(carrier, x, name: str = "x"):
    """``x`` holds only finite numbers: one reduction, run at once when ``x`` is concrete
    (``jax.ensure_compile_time_eval`` keeps it eager, and on ``x``'s device, inside ``jit``)."""
    message = f"{name}: expected finite values"
    if is_traced(x):
        return guard(carrier, jnp.any(~jnp.isfinite(x)), message)
    with jax.ensure_compile_time_eval():
        bad = bool(jnp.any(~jnp.isfinite(jnp.asarray(x))))
    return guard(carrier, bad, message)


def check_segment_ids(segment_ids, x_shape: tuple[int, ...], num_groups: int):
    """Integer ids of ``x``'s shape with values in ``[0, num_groups)`` (a concrete array is
    checked now; a traced one by :func:`guard_segment_ids` at run time)."""
    dtype, shape = _dtype_shape(segment_ids)
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"segment_ids: expected an integer dtype, got {dtype}")
    if shape != tuple(x_shape):
        raise ValueError(f"segment_ids: expected the shape of x, {tuple(x_shape)}, got {shape}")
    if not is_traced(segment_ids) and np.prod(shape, dtype=np.int64) > 0:
        ids = _concrete(segment_ids)
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= num_groups:
            raise ValueError(
                f"segment_ids: expected values in [0, num_groups = {num_groups}), "
                f"got values in [{lo}, {hi}]"
            )
    return segment_ids


def guard_segment_ids(carrier, segment_ids, num_groups: int):
    """Attach the run-time range check of traced ``segment_ids`` to ``carrier``."""
    if not is_traced(segment_ids) or segment_ids.size == 0:
        return carrier
    bad = (jnp.min(segment_ids) < 0) | (jnp.max(segment_ids) >= num_groups)
    return guard(carrier, bad, f"segment_ids: expected values in [0, num_groups = {num_groups})")


def check_lam(lam):
    """``lam`` is a real scalar, finite and ``>= 0`` (concrete: checked now; traced: at run)."""
    if isinstance(lam, bool):
        raise TypeError("lam: expected a real number, got a bool")
    dtype, shape = _dtype_shape(lam)
    if shape != ():
        raise ValueError(f"lam: expected a scalar, got shape {shape}")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"lam: expected a real number, got {dtype}")
    if not is_traced(lam):
        v = float(_concrete(lam))
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"lam: expected a finite number >= 0, got {v!r}")
    return lam


def guard_lam(carrier, lam):
    """Attach the run-time check (finite, ``>= 0``) of a traced ``lam`` to ``carrier``."""
    if not is_traced(lam):
        return carrier
    return guard(carrier, ~jnp.isfinite(lam) | (lam < 0), "lam: expected a finite number >= 0")


def check_weights(weights, num_groups: int):
    """``None`` (every d_j = 1), a scalar, or a ``(num_groups,)`` vector of finite values > 0
    (concrete: checked now; traced: by :func:`guard_weights` at run time)."""
    if weights is None:
        return None
    dtype, shape = _dtype_shape(weights)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"weights: expected real numbers, got {dtype}")
    if shape not in ((), (num_groups,)):
        raise ValueError(
            f"weights: expected shape () or (num_groups,) = ({num_groups},), got {shape}"
        )
    if not is_traced(weights):
        w = _concrete(weights)
        if not np.all(np.isfinite(w) & (w > 0)):
            raise ValueError(f"weights: expected finite values > 0, got min {np.min(w)!r}")
    return weights


def guard_weights(carrier, weights):
    """Attach the run-time check (finite, ``> 0``) of traced ``weights`` to ``carrier``."""
    if weights is None or not is_traced(weights):
        return carrier
    bad = jnp.any(~jnp.isfinite(weights) | (weights <= 0))
    return guard(carrier, bad, "weights: expected finite values > 0")


class GroupArgs(NamedTuple):
    """Validated arguments of a group operator (``k`` / ``lam`` may be ``None`` when unused)."""

    x: jax.Array
    segment_ids: jax.Array
    num_groups: int
    k: object
    lam: object
    weights: object


def validate_group_args(
    x, segment_ids, num_groups, k=None, lam=None, weights=None, *, uses_k=True, uses_lam=True
) -> GroupArgs:
    """Check every argument (naming it on failure) and attach the run-time checks of traced
    ones to ``x``. Returns the arguments with ``x`` possibly wrapped by ``eqx.error_if``."""
    num_groups = check_num_groups(num_groups)
    check_x(x)
    if uses_k:
        k = check_k(k, num_groups)
    check_segment_ids(segment_ids, _dtype_shape(x)[1], num_groups)
    if uses_lam:
        check_lam(lam)
    check_weights(weights, num_groups)
    raw = x
    x = jnp.asarray(x)
    x = guard_finite(x, raw)
    x = guard_segment_ids(x, segment_ids, num_groups)
    if uses_k:
        x = guard_k(x, k, num_groups)
    if uses_lam:
        x = guard_lam(x, lam)
    x = guard_weights(x, weights)
    return GroupArgs(x, segment_ids, num_groups, k, lam, weights)
