"""Controls: unknown names raise (naming them), concrete values are checked, known ones ignored."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import MultiHead, controls, scan, step, unroll
from memjax.core.controls import check_controls, in_range, known_controls, register_control
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer
from memjax.nn.lstm import LSTMCell

MEM = LinearMemory(d_key=3, d_value=2, eta=0.5, momentum=True)
P = MEM.init_params(jax.random.key(0))
S = MEM.init_state(P)
K, V = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.5, -1.0])
KS, VS = jnp.eye(3), jnp.ones((3, 2))
MH = MultiHead(MEM, 2)
MP = MH.init_params(jax.random.key(1))
MS = MH.init_state(MP)
CELL = LSTMCell(2, 3)
CP = CELL.init_params(jax.random.key(2))
LAYER = AssociativeLayer(4, 1, LinearMemory(2, 2))
LP = LAYER.init_params(jax.random.key(3))

CALLS = {
    "scan": lambda **c: scan(MEM, P, S, KS, VS, KS, **c),
    "step": lambda **c: step(MEM, P, S, K, V, K, **c),
    "MultiHead.write": lambda **c: MH.write(MP, MS, jnp.stack([K, K]), jnp.stack([V, V]), **c),
    "MultiHead.read": lambda **c: MH.read(MP, MS, jnp.stack([K, K]), **c),
    "LinearMemory.write": lambda **c: MEM.write(P, S, K, V, **c),
    "LinearMemory.read": lambda **c: MEM.read(P, S, K, **c),
    "LinearMemory.init_state": lambda **c: MEM.init_state(P, **c),
    "unroll": lambda **c: unroll(CELL, CP, CELL.init_carry(CP), jnp.ones((3, 2)), **c),
    "AssociativeLayer.apply": lambda **c: LAYER.apply(
        LP, LAYER.init_state(LP), jnp.ones((3, 4)), **c
    ),
}


@pytest.mark.parametrize("where", sorted(CALLS))
def test_typo_raises_naming_it_and_suggesting(where):
    with pytest.raises(ValueError) as info:
        CALLS[where](thetta=0.5)
    message = str(info.value)
    assert message.startswith(f"{where}: unknown control 'thetta'")
    accepted = message.split("accepted: ")[1].split(";")[0].split(", ")
    assert {"alpha", "eta", "key", "theta"} <= set(accepted) and accepted == sorted(accepted)
    assert message.endswith("did you mean 'theta'?")


def test_explicit_keywords_are_listed_and_suggested():
    with pytest.raises(ValueError, match="did you mean 'chunk_size'") as info:
        scan(MEM, P, S, KS, VS, KS, chunk_sise=2)
    assert "chunk_size" in str(info.value) and "order" in str(info.value)


@pytest.mark.parametrize("where", ["scan", "step", "MultiHead.write", "LinearMemory.write"])
@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("eta", 5.0, r"eta: expected values in \[0, 1\], got 5.0"),
        ("theta", -1.0, r"theta: expected values >= 0, got -1.0"),
        ("alpha", 1.5, r"alpha: expected values in \[0, 1\], got 1.5"),
        ("alpha", float("nan"), r"alpha: expected values in \[0, 1\], got nan"),
    ],
)
def test_bad_values_raise(where, name, value, expected):
    with pytest.raises(ValueError, match=f"{where}: {expected}"):
        CALLS[where](**{name: value})


def test_bad_array_values_raise_with_their_range():
    theta = jnp.array([0.1, -0.2, 0.3])
    with pytest.raises(ValueError, match=r"theta: expected values >= 0, got an array of shape"):
        scan(MEM, P, S, KS, VS, KS, theta=theta)
    with pytest.raises(ValueError, match="eta"):
        scan(MEM, P, S, KS, VS, KS, eta=np.array([0.5, 1.2, 0.5]))


def test_good_values_pass_and_change_the_result():
    plain, _ = scan(MEM, P, S, KS, VS, KS)
    slow, _ = scan(MEM, P, S, KS, VS, KS, theta=jnp.full(3, 0.1), eta=0.0, alpha=1.0)
    assert not np.allclose(plain, slow)


def test_traced_values_are_not_checked():
    """Under jit a value is a tracer: the check is skipped (no concretisation error), and the
    maths runs as written (orthogonal keys: each read is theta * its value)."""
    mem = LinearMemory(d_key=3, d_value=2)
    run = jax.jit(lambda th: scan(mem, {}, mem.init_state({}), KS, VS, KS, theta=th)[0])
    np.testing.assert_allclose(run(jnp.full(3, -1.0)), -VS)


def test_key_must_be_a_typed_prng_key():
    with pytest.raises(TypeError, match="key: expected a typed PRNG key"):
        step(MEM, P, S, K, V, K, key=jnp.array([0, 1], jnp.uint32))


@pytest.mark.parametrize("where", ["scan", "step", "MultiHead.write", "LinearMemory.write"])
def test_known_but_unused_control_is_ignored(where):
    plain = CALLS[where]()
    extra = CALLS[where](key=jax.random.key(5))
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(extra)):
        np.testing.assert_array_equal(a, b)


def test_none_means_not_given():
    check_controls({"theta": None, "eta": None}, where="here")


def test_register_control_for_a_new_paper():
    name = "test_gamma"
    assert name not in known_controls()
    check = in_range(name, 0.0, 2.0)
    register_control(name, check)
    try:
        register_control(name, check)  # the same registration again is a no-op
        check_controls({name: 1.5}, where="mine")
        with pytest.raises(ValueError, match=r"mine: test_gamma: expected values in \[0, 2\]"):
            check_controls({name: 3.0}, where="mine")
        with pytest.raises(ValueError, match="already registered"):
            register_control(name, in_range(name, 0.0, 1.0))
        # a known control a memory does not use is ignored by it
        np.testing.assert_array_equal(
            step(MEM, P, S, K, V, K, **{name: 1.0})[0], step(MEM, P, S, K, V, K)[0]
        )
    finally:
        controls._REGISTRY.pop(name)
    with pytest.raises(ValueError, match="unknown control 'test_gamma'"):
        check_controls({name: 1.0}, where="mine")


def test_register_control_rejects_bad_names_and_checks():
    with pytest.raises(ValueError, match="name"):
        register_control("not an identifier")
    with pytest.raises(TypeError, match="check"):
        register_control("fine_name", check=3)
    with pytest.raises(ValueError, match="low"):
        in_range("x")


def test_in_range_rejects_non_numbers():
    with pytest.raises(TypeError, match="theta: expected a number"):
        check_controls({"theta": "fast"}, where="scan")
