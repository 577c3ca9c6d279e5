"""Bad input gets an error that names the argument: at once for concrete values, when the
compiled program runs for traced ones (equinox.error_if)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.sparsity import (
    group_norms,
    prox_group_lasso,
    prox_wgsef,
    prox_wgsef_linear_time,
    sef_value,
    wgsef_value,
    wgsef_value_linear_time,
)

X = jnp.array([1.0, 2.0, 0.5, -1.0])
IDS = jnp.array([0, 0, 1, 2])
M = 3

PROX = {
    "prox_wgsef": lambda x=X, ids=IDS, m=M, k=2, lam=0.5, w=None: prox_wgsef(x, ids, m, k, lam, w),
    "prox_wgsef_linear_time": lambda x=X, ids=IDS, m=M, k=2, lam=0.5, w=None: (
        prox_wgsef_linear_time(np.asarray(x), np.asarray(ids), m, k, lam, w)
    ),
}
VALUE = {
    "wgsef_value": lambda x=X, ids=IDS, m=M, k=2, w=None: wgsef_value(x, ids, m, k, w),
    "wgsef_value_linear_time": lambda x=X, ids=IDS, m=M, k=2, w=None: wgsef_value_linear_time(
        np.asarray(x), np.asarray(ids), m, k, w
    ),
}
BOTH = {**PROX, **VALUE}


@pytest.mark.parametrize("name", sorted(BOTH))
@pytest.mark.parametrize("k", [0, -1, 4])
def test_k_out_of_range(name, k):
    with pytest.raises(ValueError, match=r"^k: expected an integer with 1 <= k <= num_groups = 3"):
        BOTH[name](k=k)


@pytest.mark.parametrize("name", sorted(BOTH))
def test_k_not_an_integer(name):
    with pytest.raises(TypeError, match=r"^k: "):
        BOTH[name](k=1.5)


@pytest.mark.parametrize("name", sorted(PROX))
@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_negative_or_non_finite_lam(name, lam):
    with pytest.raises(ValueError, match=r"^lam: expected a finite number >= 0"):
        PROX[name](lam=lam)


@pytest.mark.parametrize("name", sorted(BOTH))
@pytest.mark.parametrize("ids", [[0, 0, 1, 3], [-1, 0, 1, 2]])
def test_segment_ids_out_of_range(name, ids):
    with pytest.raises(ValueError, match=r"^segment_ids: expected values in \[0, num_groups = 3\)"):
        BOTH[name](ids=jnp.asarray(ids))


@pytest.mark.parametrize("name", sorted(BOTH))
def test_segment_ids_shape_and_dtype(name):
    with pytest.raises(ValueError, match=r"^segment_ids: expected the shape of x"):
        BOTH[name](ids=jnp.array([0, 1, 2]))
    with pytest.raises(TypeError, match=r"^segment_ids: expected an integer dtype"):
        BOTH[name](ids=jnp.array([0.0, 0.0, 1.0, 2.0]))


@pytest.mark.parametrize("name", sorted(BOTH))
@pytest.mark.parametrize("w", [[1.0, 0.0, 2.0], [1.0, -2.0, 1.0], [1.0, np.nan, 1.0], -1.0])
def test_weights_must_be_positive_and_finite(name, w):
    with pytest.raises(ValueError, match=r"^weights: expected finite values > 0"):
        BOTH[name](w=jnp.asarray(w))


@pytest.mark.parametrize("name", sorted(BOTH))
def test_weights_shape(name):
    with pytest.raises(ValueError, match=r"^weights: expected shape \(\) or \(num_groups,\)"):
        BOTH[name](w=jnp.ones(4))


@pytest.mark.parametrize("name", sorted(BOTH))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(name, bad):
    with pytest.raises(ValueError, match=r"^x: expected finite values"):
        BOTH[name](x=X.at[1].set(bad))


@pytest.mark.parametrize("name", sorted(BOTH))
def test_x_dtype_and_num_groups(name):
    with pytest.raises(TypeError, match=r"^x: expected a floating dtype"):
        BOTH[name](x=jnp.array([1, 2, 0, 1]))
    for m in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"^num_groups: expected a positive integer"):
            BOTH[name](m=m)


def test_sef_value_group_norms_group_lasso_and_method():
    with pytest.raises(ValueError, match=r"^k: expected an integer with 1 <= k <= num_groups = 4"):
        sef_value(X, 5)
    with pytest.raises(ValueError, match=r"^x: expected finite values"):
        sef_value(X.at[0].set(jnp.nan), 2)
    with pytest.raises(ValueError, match=r"^segment_ids: expected values"):
        group_norms(X, IDS, 2)
    with pytest.raises(ValueError, match=r"^lam: expected a finite number >= 0"):
        prox_group_lasso(X, IDS, M, -1.0)
    with pytest.raises(ValueError, match=r"^method: expected one of"):
        prox_wgsef(X, IDS, M, 2, 0.5, method="cumsum")
    with pytest.raises(ValueError, match=r"^lam: expected a scalar"):
        prox_wgsef(X, IDS, M, 2, jnp.ones(2))


def test_concrete_arguments_are_checked_while_tracing():
    """Inside jit a closed-over (concrete) bad value still fails at trace time, with the name."""
    with pytest.raises(ValueError, match=r"^lam: "):
        jax.jit(lambda x: prox_wgsef(x, IDS, M, 2, -1.0))(X)
    bad_ids = jnp.array([0, 0, 1, 5])  # made outside: a concrete constant of the traced program
    with pytest.raises(ValueError, match=r"^segment_ids: "):
        jax.jit(lambda x: prox_wgsef(x, bad_ids, M, 2, 0.5))(X)


def test_traced_arguments_are_checked_at_run_time():
    """Traced k, λ, segment ids, weights and x: the compiled program raises, naming the
    argument, instead of returning NaNs."""
    prox = jax.jit(lambda x, ids, k, lam, w: prox_wgsef(x, ids, M, k, lam, w))
    ok = (X, IDS, jnp.asarray(2), jnp.asarray(0.5), jnp.ones(M))
    prox(*ok).block_until_ready()
    cases = {
        "k: expected 1 <= k <= num_groups = 3": (2, jnp.asarray(4)),
        "lam: expected a finite number >= 0": (3, jnp.asarray(-0.5)),
        "segment_ids: expected values in": (1, jnp.array([0, 0, 1, 3])),
        "weights: expected finite values > 0": (4, jnp.array([1.0, 0.0, 1.0])),
        "x: expected finite values": (0, X.at[2].set(jnp.nan)),
    }
    for message, (position, value) in cases.items():
        args = list(ok)
        args[position] = value
        with pytest.raises(Exception, match=message):
            prox(*args).block_until_ready()
    value = jax.jit(lambda x, k: wgsef_value(x, IDS, M, k))
    with pytest.raises(Exception, match="k: expected 1 <= k"):
        value(X, jnp.asarray(0)).block_until_ready()
    with pytest.raises(TypeError, match=r"^k: expected an integer scalar"):
        value(X, jnp.asarray(1.0))
