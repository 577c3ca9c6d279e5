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

**Non-finite inputs.** :func:`check_finite` raises at once, naming the argument, when it is given
a concrete array (eager code). Under ``jax.jit`` values are unknown at trace time, so the check is
opt-in there: set the environment variable ``MEMJAX_JIT_CHECKS=1`` (or call
``memjax.core.checks.set_jit_checks(True)``) *before* the first trace, and every checked input
gets a run-time test whose failure raises (through ``jax.debug.callback``) with the same message.
It costs one reduction per input and a host callback per call; off, it costs nothing.

    >>> import jax
    >>> from memjax.core.checks import check_finite, jit_checks
    >>> check_finite("xs", jnp.array([1.0, jnp.nan]))
    Traceback (most recent call last):
    ...
    ValueError: xs: 1 of 2 entries are NaN or Inf (first at index (1,))
    >>> with jit_checks(True):
    ...     f = jax.jit(lambda x: (check_finite("xs", x), 2 * x)[1])
    ...     f(jnp.ones(2)).tolist()
    [2.0, 2.0]
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence

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


JIT_CHECKS_ENV = "MEMJAX_JIT_CHECKS"
_JIT_CHECKS = [os.environ.get(JIT_CHECKS_ENV, "0").strip().lower() not in ("", "0", "false", "no")]


def set_jit_checks(enabled: bool) -> bool:
    """Switch the run-time checks under ``jit`` on or off; return the previous setting.

    Checks are inserted when a function is *traced*, so set this before the first call of a
    jitted function (a cached trace keeps the setting it was traced with). The environment
    variable ``MEMJAX_JIT_CHECKS=1`` sets it at import.
    """
    previous = _JIT_CHECKS[0]
    _JIT_CHECKS[0] = bool(enabled)
    return previous


def jit_checks_enabled() -> bool:
    """Whether :func:`check_finite` adds run-time checks to traced code."""
    return _JIT_CHECKS[0]


@contextlib.contextmanager
def jit_checks(enabled: bool = True) -> Iterator[None]:
    """``with jit_checks(): ...``: :func:`set_jit_checks` inside the block only."""
    previous = set_jit_checks(enabled)
    try:
        yield
    finally:
        set_jit_checks(previous)


def is_traced(x) -> bool:
    """True when ``x`` is a JAX tracer (inside ``jit``/``vmap``/``grad``): no value to inspect."""
    return isinstance(x, jax.core.Tracer)


def _raise_if_bad(message: str, bad, first) -> None:
    # under vmap, jax.debug.callback calls this once per example with unbatched values
    if int(np.asarray(bad)):
        index = tuple(int(i) for i in np.asarray(first).reshape(-1))
        raise FloatingPointError(message.format(bad=int(np.asarray(bad)), first=index))


def check_finite(name: str, x) -> None:
    """Raise ``ValueError`` naming ``name`` if the floating array ``x`` holds NaN or Inf.

    A concrete ``x`` is checked now. A traced ``x`` is checked at run time only while
    :func:`jit_checks_enabled` (module doc); the failure then surfaces as an error whose message
    names ``name`` when the result is computed. Non-floating arrays pass.
    """
    if not hasattr(x, "dtype") or not jnp.issubdtype(x.dtype, jnp.inexact):
        return
    message = f"{name}: {{bad}} of {x.size} entries are NaN or Inf (first at index {{first}})"
    if not is_traced(x):
        finite = np.isfinite(np.asarray(x))
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(message.format(bad=int((~finite).sum()), first=first))
        return
    if jit_checks_enabled():
        finite = jnp.isfinite(x)
        first = jnp.unravel_index(jnp.argmin(finite), x.shape)
        first = jnp.stack(first) if first else jnp.zeros((0,), jnp.int32)
        bad = jnp.sum(~finite)
        jax.debug.callback(lambda b, f: _raise_if_bad(message, b, f), bad, first)


def error_if(pred, message: str) -> None:
    """Raise ``ValueError(message)`` where ``pred`` is true: now if concrete, else at run time.

    For misuse that depends on a traced flag (always on: it only appears on a rare path).
    """
    if not is_traced(pred):
        if bool(np.asarray(pred).any()):
            raise ValueError(message)
        return

    def fail(p):
        if np.asarray(p).any():
            raise ValueError(message)

    jax.debug.callback(fail, pred)


def check_dtype(name: str, dtype) -> None:
    """Raise ``ValueError`` naming ``name`` if ``dtype`` is 64-bit while JAX runs in 32 bits.

    Without x64 JAX would warn at every array it makes and silently compute in float32.
    """
    if dtype is None:
        return
    wanted = np.dtype(dtype)
    if wanted.itemsize == 8 and jax.dtypes.canonicalize_dtype(wanted) != wanted:
        raise ValueError(
            f"{name}: {wanted} needs 64-bit JAX, which is off (JAX would silently compute in "
            f"{jax.dtypes.canonicalize_dtype(wanted)}). Enable it at startup with "
            "jax.config.update('jax_enable_x64', True) or JAX_ENABLE_X64=1, or in a block with "
            "`with jax.enable_x64(True):`"
        )


def check_spec_dtypes(name: str, spec) -> None:
    """:func:`check_dtype` on every ``dtype`` field of a spec and of the specs nested in it."""
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        return
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name, None)
        if field.name == "dtype" and isinstance(value, str | np.dtype):
            check_dtype(f"{name}.dtype", value)
        elif dataclasses.is_dataclass(value):
            check_spec_dtypes(f"{name}.{field.name}", value)


def _describe(tree) -> str:
    return type(tree).__name__ if tree is not None else "None"


def _path_str(path) -> str:
    return "".join(str(k) for k in path) or "(root)"


def check_tree_like(name: str, tree, expected, *, what: str = "") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``tree`` has ``expected``'s structure and shapes.

    ``expected`` is a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``);
    dtypes are not compared (a cast tree still fits). The message gives the first path that
    differs. ``what`` says where ``expected`` comes from.
    """
    got = dict(jax.tree_util.tree_flatten_with_path(tree)[0])
    want = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
    source = f" ({what})" if what else ""
    if jax.tree_util.tree_structure(tree) != jax.tree_util.tree_structure(expected):
        missing = [p for p in want if p not in got]
        extra = [p for p in got if p not in want]
        detail = []
        if missing:
            detail.append(f"missing {_path_str(missing[0])}")
        if extra:
            detail.append(f"unexpected {_path_str(extra[0])}")
        raise ValueError(
            f"{name}: expected a {_describe(expected)} like this spec's{source}, got a "
            f"{_describe(tree)} of another structure"
            + (f" ({', '.join(detail)})" if detail else "")
        )
    for path, leaf in got.items():
        shape, wanted = tuple(np.shape(leaf)), tuple(np.shape(want[path]))
        if shape != wanted:
            raise ValueError(
                f"{name}: at {_path_str(path)} expected shape {wanted}{source}, got {shape}; "
                "was it made by a different spec?"
            )


def check_params_and_state(spec, params, state, *, expected_params, expected_state) -> None:
    """Check ``params`` and ``state`` against a spec's (cached) expected trees; detect a swap.

    ``expected_params``/``expected_state`` are ``jax.eval_shape`` trees of ``init_params`` and
    ``init_state`` (``None``: skip that one).
    """
    where = type(spec).__name__
    if expected_params is not None and expected_state is not None:
        swapped = _same_structure(params, expected_state) and _same_structure(
            state, expected_params
        )
        if swapped and not _same_structure(params, expected_params):
            raise ValueError(
                f"params, state: {where}.apply got params of type {_describe(params)} and state of "
                f"type {_describe(state)}; they look swapped: call apply(params, state, ...)"
            )
    if expected_params is not None:
        check_tree_like("params", params, expected_params, what=f"{where}.init_params")
    if expected_state is not None:
        check_tree_like("state", state, expected_state, what=f"{where}.init_state")


def _same_structure(a, b) -> bool:
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
