"""The learning loop compiled as one kernel (``_batched.scan_one_kernel``): the same state and
per-item results as the plain ``lax.scan`` (freezing, permanence and an H input in one mac), the
tag really on the loop's call, the plain scan under an outer trace, and the fallback when the
kernel emitter cannot compile a loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from experiments.sparsey.common import random_patterns
from memjax.memories.sparsey import SparseyMac, _batched

MAC = SparseyMac(n_inputs=64, Q=4, K=8, n_h=16, saturation=0.2, permanence=12)
U_ONLY = SparseyMac(n_inputs=64, Q=4, K=8, saturation=0.2, permanence=12)  # sigmoid tables


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xs, hs = random_patterns(rng, 40, 64, 12), random_patterns(rng, 40, 16, 3)
    return MAC.init_state(), xs, hs, jax.random.key(3)


def same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and bool((np.asarray(x) == np.asarray(y)).all()) for x, y in zip(la, lb)
    )


@pytest.fixture(scope="module")
def plain(data):
    state, xs, hs, key = data
    return _batched._learn_jit(MAC, state, xs, hs, None, key, False, True)


def test_one_kernel_loop_equals_plain_scan(data, plain):
    state, xs, hs, key = data
    lowered = _batched._learn_jit.lower(MAC, state, xs, hs, None, key, True, True)
    hlo = lowered.compile().as_text()
    tagged = [ln for ln in hlo.splitlines() if " call(" in ln and 'xla_cpu_small_call="true"' in ln]
    assert sum("jit(one_kernel_loop)" in ln for ln in tagged) == 1  # the learning loop's call
    fast = _batched._learn_jit(MAC, state, xs, hs, None, key, True, True)
    assert same(fast, plain)
    # The public verb takes the one-kernel path and gives the same again; report="scalars"
    # the same without V and rho.
    assert same(MAC.learn(state, xs, hs=hs, key=key), plain)
    st, lean = MAC.learn(state, xs, hs=hs, key=key, report="scalars")
    assert lean.support is None and lean.rho is None
    assert same((st, lean), (plain[0], plain[1]._replace(support=None, rho=None)))
    with pytest.raises(ValueError, match="report"):
        MAC.learn(state, xs, hs=hs, key=key, report="some")
    out = plain[1]
    assert bool(out.stored.any()) and not bool(out.stored.all())  # the mac froze on the way
    assert bool(plain[0].frozen)


def test_u_only_loop_with_sigmoid_tables_equals_plain_scan(data):
    state, xs, _, key = data
    state = U_ONLY.init_state()
    plain = _batched._learn_jit(U_ONLY, state, xs, None, None, key, False, True)
    hlo = _batched._learn_jit.lower(U_ONLY, state, xs, None, None, key, True, True).as_text()
    assert f"tensor<{len(xs)}x65xf32>" in hlo  # the per-item tables f(u / pi), u = 0..64
    assert same(U_ONLY.learn(state, xs, key=key), plain)
    assert bool(plain[0].frozen) and bool(plain[1].stored[0])


def test_outer_trace_and_fallback_use_the_plain_scan(data, plain, monkeypatch):
    state, xs, hs, key = data
    inner = jax.jit(lambda s, x, h: MAC.learn(s, x, hs=h, key=key))
    assert same(inner(state, xs, hs), plain)

    calls = []
    real = _batched._learn_jit

    def refusing(mac, *args):
        calls.append(args[5])  # one_kernel
        if args[5]:
            raise jax.errors.JaxRuntimeError("UNIMPLEMENTED: Fusion kind not implemented on CPU")
        return real(mac, *args)

    monkeypatch.setattr(_batched, "_learn_jit", refusing)
    monkeypatch.setattr(_batched, "_PLAIN_LOOP", set())
    assert same(MAC.learn(state, xs, hs=hs, key=key), plain)
    assert calls == [True, False]  # tried as one kernel, then the plain scan
    assert same(MAC.learn(state, xs, hs=hs, key=key), plain)
    assert calls == [True, False, False]  # remembered: no second attempt


def test_other_runtime_errors_propagate(data, monkeypatch):
    state, xs, hs, key = data

    def failing(mac, *args):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(_batched, "_learn_jit", failing)
    with pytest.raises(jax.errors.JaxRuntimeError, match="something else"):
        MAC.learn(state, xs, hs=hs, key=key)


def test_tables_by_count_and_scalars_from_cm_maxima_equal_plain_scan(data):
    # More items (40) than counts pi_U = 0..24: one table row per count, read by pi_U; and
    # report="scalars" of a U-only mac takes only each CM's largest raw sum out of the loop.
    _, xs, _, key = data
    mac = SparseyMac(n_inputs=24, Q=4, K=8, saturation=0.3)
    xs = np.ascontiguousarray(xs[:, :24])
    state = mac.init_state()
    plain = _batched._learn_jit(mac, state, xs, None, None, key, False, True)
    hlo = _batched._learn_jit.lower(mac, state, xs, None, None, key, True, False).as_text()
    assert "tensor<25x25xf32>" in hlo and "tensor<40x25xf32>" not in hlo
    assert same(mac.learn(state, xs, key=key), plain)
    st, lean = mac.learn(state, xs, key=key, report="scalars")
    assert same((st, lean), (plain[0], plain[1]._replace(support=None, rho=None)))
    assert bool(plain[0].frozen) and bool(plain[1].stored[0])
