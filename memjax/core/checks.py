"""Argument checks at the boundary: clear errors that name the argument.

Shapes and dtypes are static under ``jax.jit``, so these checks run at trace time
and cost nothing in the compiled program.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.core.checks import check_array
    >>> check_array("keys", jnp.zeros((3, 4)), shape=(None, 4))
    >>> check_array("keys", jnp.zeros((3, 5)), shape=(None, 4))
    Traceback (most recent call last):
    ...
    ValueError: keys: expected shape (*, 4), got (3, 5)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _fmt(shape: Sequence[int | None]) -> str:
    inner = ", ".join("*" if s is None else str(s) for s in shape)
    return f"({inner}{',' if len(shape) == 1 else ''})"


def check_array(
    name: str,
    x,
    *,
    shape: Sequence[int | None] | None = None,
    ndim: int | None = None,
    floating: bool = False,
    integer: bool = False,
) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``x`` matches.

    ``shape`` entries of ``None`` match any size. ``floating``/``integer`` check the dtype kind.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(x.shape)}")
    if shape is not None:
        ok = len(shape) == x.ndim and all(s is None or s == d for s, d in zip(shape, x.shape))
        if not ok:
            raise ValueError(f"{name}: expected shape {_fmt(shape)}, got {tuple(x.shape)}")
    if floating and not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected a floating dtype, got {x.dtype}")
    if integer and not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{name}: expected an integer dtype, got {x.dtype}")


def check_positive_int(name: str, value) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def check_choice(name: str, value, choices: Sequence) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")


def check_prng_key(name: str, key) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``key`` is a typed PRNG key (``jax.random.key``).

    Legacy ``uint32`` keys (``jax.random.PRNGKey``) are refused: their dtype says nothing about
    being a key, so a stray integer array would pass for one.

    Example:
        >>> import jax
        >>> from memjax.core.checks import check_prng_key
        >>> check_prng_key("key", jax.random.key(0))
        >>> check_prng_key("key", 0)
        Traceback (most recent call last):
        ...
        TypeError: key: expected a typed PRNG key (jax.random.key(seed)), got int
    """
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise TypeError(
            f"{name}: expected a typed PRNG key (jax.random.key(seed)), got "
            f"{type(key).__name__} {getattr(key, 'dtype', '')}".rstrip()
        )


def is_scalar_like(x) -> bool:
    """True for Python numbers and 0-d arrays (a control shared by every token/head)."""
    return isinstance(x, int | float | bool) or (
        isinstance(x, jax.Array | np.ndarray) and x.ndim == 0
    )


def check_heads(d_model: int, num_heads: int, d_head: int | None) -> None:
    """Raise naming the argument unless heads of ``d_head`` (or ``d_model // num_heads``) fit."""
    check_positive_int("d_model", d_model)
    check_positive_int("num_heads", num_heads)
    if d_head is None and d_model % num_heads:
        raise ValueError(
            f"num_heads: d_model={d_model} is not divisible by num_heads={num_heads}; pass d_head"
        )
    if d_head is not None:
        check_positive_int("d_head", d_head)
