"""Testing helpers: the memory contract as reusable checks, float64 and finite differences.

Every memory in memjax passes :func:`check_memory_contract`; a user writing a new memory can run
the same checks on it::

    from memjax.core.testing import check_memory_contract
    check_memory_contract(lambda dtype: MyMemory(..., dtype=dtype))

Each check raises ``AssertionError`` with a message naming what broke.

Example:
    >>> from memjax.core.testing.memory_contract import check_scan_equals_loop
    >>> from memjax.memories.linear import LinearMemory
    >>> check_scan_equals_loop(lambda dtype: LinearMemory(d_key=3, d_value=2, dtype=dtype))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.drivers import scan
from memjax.core.protocol import Memory
from memjax.core.token_step import step

MemoryFactory = Callable[[str], Memory]


@contextlib.contextmanager
def float64():
    """Enable 64-bit floats inside the block (``jax.enable_x64`` across JAX versions)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:  # pragma: no cover - older JAX
        from jax.experimental import enable_x64 as ctx  # type: ignore[no-redef]

        with ctx():
            yield
        return
    with ctx(True):
        yield


def assert_trees_allclose(actual, expected, *, rtol=1e-6, atol=1e-6, what="tree") -> None:
    """Assert two pytrees have the same structure and allclose leaves."""
    sa, se = jax.tree_util.tree_structure(actual), jax.tree_util.tree_structure(expected)
    assert sa == se, f"{what}: structures differ: {sa} vs {se}"
    for i, (a, e) in enumerate(
        zip(jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected))
    ):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(e), rtol=rtol, atol=atol, err_msg=f"{what}: leaf {i}"
        )


def random_sequence(memory: Memory, length: int, key, dtype="float32"):
    """Random ``(keys, values, queries)`` of ``length`` tokens for ``memory`` (unit-norm keys)."""
    kk, kv, kq = jax.random.split(key, 3)

    def unit(k, shape):
        x = jax.random.normal(k, shape, dtype)
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    return (
        unit(kk, (length, *memory.key_size)),
        jax.random.normal(kv, (length, *memory.value_size), dtype),
        unit(kq, (length, *memory.key_size)),
    )


def loop_of_steps(memory, params, state, keys, values, queries, **controls):
    """The reference: a Python loop of :func:`step`, per-token array controls sliced by hand."""
    ys = []
    for t in range(keys.shape[0]):
        c = {n: (v[t] if hasattr(v, "ndim") and v.ndim >= 1 else v) for n, v in controls.items()}
        y, state = step(memory, params, state, keys[t], values[t], queries[t], **c)
        ys.append(y)
    return jnp.stack(ys), state


def directional_fd(f, params, direction, eps):
    """Central finite difference of scalar ``f`` at ``params`` along ``direction``."""
    plus = jax.tree_util.tree_map(lambda p, d: p + eps * d, params, direction)
    minus = jax.tree_util.tree_map(lambda p, d: p - eps * d, params, direction)
    return (f(plus) - f(minus)) / (2 * eps)


def _setup(factory: MemoryFactory, dtype: str, length: int, seed: int):
    memory = factory(dtype)
    params = memory.init_params(jax.random.key(seed))
    params = jax.tree_util.tree_map(
        lambda p: p + 0.1 * jax.random.normal(jax.random.key(seed + 1), p.shape, p.dtype), params
    )
    state = memory.init_state(params)
    seq = random_sequence(memory, length, jax.random.key(seed + 2), dtype)
    return memory, params, state, seq


def check_shapes_and_dtypes(factory: MemoryFactory, length: int = 5) -> None:
    memory, params, state, (ks, vs, qs) = _setup(factory, "float32", length, 0)
    new_state = memory.write(params, state, ks[0], vs[0])
    s0, s1 = jax.tree_util.tree_structure(state), jax.tree_util.tree_structure(new_state)
    assert s0 == s1, f"write changed the state structure: {s0} -> {s1}"
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(new_state)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"write changed a leaf {a.shape}{a.dtype}"
    y = memory.read(params, new_state, qs[0])
    assert y.shape == memory.value_size, f"read shape {y.shape} != {memory.value_size}"
    assert y.dtype == jnp.float32, f"read dtype {y.dtype}"
    ys, _ = scan(memory, params, state, ks, vs, qs)
    assert ys.shape == (length, *memory.value_size), f"scan reads shape {ys.shape}"


def check_scan_equals_loop(factory: MemoryFactory, length: int = 7, **controls) -> None:
    with float64():
        memory, params, state, (ks, vs, qs) = _setup(factory, "float64", length, 1)
        ref_ys, ref_state = loop_of_steps(memory, params, state, ks, vs, qs, **controls)
        for chunk_size in (1, 3, length, None):
            for remat in (False, True):
                ys, st = scan(
                    memory,
                    params,
                    state,
                    ks,
                    vs,
                    qs,
                    chunk_size=chunk_size,
                    remat=remat,
                    **controls,
                )
                what = f"scan(chunk_size={chunk_size}, remat={remat}) vs loop of step"
                assert_trees_allclose(ys, ref_ys, rtol=1e-10, atol=1e-10, what=what)
                assert_trees_allclose(st, ref_state, rtol=1e-10, atol=1e-10, what=what)


def check_jit_equals_eager(factory: MemoryFactory, length: int = 6) -> None:
    memory, params, state, (ks, vs, qs) = _setup(factory, "float32", length, 2)
    eager = scan(memory, params, state, ks, vs, qs, chunk_size=4)
    jitted = jax.jit(lambda m, p, s, k, v, q: scan(m, p, s, k, v, q, chunk_size=4))(
        memory, params, state, ks, vs, qs
    )
    assert_trees_allclose(jitted, eager, rtol=1e-5, atol=1e-5, what="jit vs eager")


def check_vmap_equals_stacked(factory: MemoryFactory, length: int = 5, batch: int = 3) -> None:
    memory, params, state, _ = _setup(factory, "float32", length, 3)
    seqs = [random_sequence(memory, length, jax.random.key(10 + b)) for b in range(batch)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *seqs)
    batched = jax.vmap(lambda k, v, q: scan(memory, params, state, k, v, q, chunk_size=2))(*stacked)
    singles = [scan(memory, params, state, *s, chunk_size=2) for s in seqs]
    expected = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *singles)
    assert_trees_allclose(batched, expected, rtol=1e-5, atol=1e-5, what="vmap vs stacked calls")


def check_no_recompile(factory: MemoryFactory, length: int = 4) -> None:
    traces = []

    @jax.jit
    def run(memory, params, state, ks, vs, qs):
        traces.append(1)
        return scan(memory, params, state, ks, vs, qs, chunk_size=2)

    memory, params, state, (ks, vs, qs) = _setup(factory, "float32", length, 4)
    run(memory, params, state, ks, vs, qs)
    memory2 = factory("float32")  # an equal spec, a new object
    run(memory2, params, state, ks + 1.0, vs * 2.0, qs)
    assert len(traces) == 1, f"second call retraced ({len(traces)} traces)"


def check_known_unused_controls_ignored(factory: MemoryFactory, length: int = 4) -> None:
    """A known control the memory does not use (a PRNG ``key=``) changes nothing."""
    memory, params, state, (ks, vs, qs) = _setup(factory, "float32", length, 5)
    plain = scan(memory, params, state, ks, vs, qs)
    extra = scan(memory, params, state, ks, vs, qs, key=jax.random.key(3))
    assert_trees_allclose(extra, plain, rtol=0, atol=0, what="known but unused controls")
    y_plain, _ = step(memory, params, state, ks[0], vs[0], qs[0])
    y_extra, _ = step(memory, params, state, ks[0], vs[0], qs[0], key=jax.random.key(4))
    assert_trees_allclose(y_extra, y_plain, rtol=0, atol=0, what="step with an unused control")


def check_unknown_control_raises(factory: MemoryFactory, length: int = 3) -> None:
    """A control name no memjax component knows is an error naming it, in scan and step."""
    memory, params, state, (ks, vs, qs) = _setup(factory, "float32", length, 5)
    calls = {
        "scan": lambda: scan(memory, params, state, ks, vs, qs, thteta=0.1),
        "step": lambda: step(memory, params, state, ks[0], vs[0], qs[0], thteta=0.1),
    }
    for where, call in calls.items():
        try:
            call()
        except ValueError as exc:
            assert "'thteta'" in str(exc), f"{where}: error does not name the control: {exc}"
            assert "'theta'" in str(exc), f"{where}: error does not suggest 'theta': {exc}"
        else:
            raise AssertionError(f"{where}: unknown control 'thteta' raised no ValueError")


def check_gradients(factory: MemoryFactory, length: int = 6, eps: float = 1e-6) -> None:
    with float64():
        memory, params, _, (ks, vs, qs) = _setup(factory, "float64", length, 6)
        leaves = jax.tree_util.tree_leaves(params)
        assert leaves, "the memory has no params to differentiate"

        def loss(p):
            ys, _ = scan(memory, p, memory.init_state(p), ks, vs, qs, chunk_size=2)
            return jnp.sum(jnp.sin(ys))

        grads = jax.grad(loss)(params)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
        for i in range(3):
            direction = jax.tree_util.tree_map(
                lambda p, k=i: jax.random.normal(jax.random.key(100 + k), p.shape, p.dtype), params
            )
            analytic = sum(
                jnp.vdot(g, d)
                for g, d in zip(
                    jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction)
                )
            )
            numeric = directional_fd(loss, params, direction, eps)
            np.testing.assert_allclose(
                float(analytic),
                float(numeric),
                rtol=1e-6,
                atol=1e-8,
                err_msg="gradient through scan vs finite differences",
            )


def check_cond_stable(factory: MemoryFactory) -> None:
    memory, params, state, (ks, vs, _) = _setup(factory, "float32", 2, 7)

    @jax.jit
    def maybe_write(pred, state):
        return jax.lax.cond(
            pred, lambda s: memory.write(params, s, ks[0], vs[0]), lambda s: s, state
        )

    written = maybe_write(True, state)
    kept = maybe_write(False, state)
    assert_trees_allclose(kept, state, rtol=0, atol=0, what="cond false branch")
    assert_trees_allclose(written, memory.write(params, state, ks[0], vs[0]), what="cond write")


def check_bad_input_errors(factory: MemoryFactory) -> None:
    memory, params, state, (ks, vs, qs) = _setup(factory, "float32", 3, 8)
    cases = [
        ("key", lambda: memory.write(params, state, ks[0][..., :-1], vs[0]), ValueError),
        ("value", lambda: memory.write(params, state, ks[0], vs[0][..., :-1]), ValueError),
        ("query", lambda: memory.read(params, state, qs[0][None]), ValueError),
        ("key", lambda: memory.write(params, state, ks[0].astype(jnp.int32), vs[0]), TypeError),
        ("values", lambda: scan(memory, params, state, ks, vs[:2], qs), ValueError),
        ("chunk_size", lambda: scan(memory, params, state, ks, vs, qs, chunk_size=0), ValueError),
    ]
    for name, call, error in cases:
        try:
            call()
        except error as exc:
            assert name in str(exc), f"error for bad {name!r} does not name it: {exc}"
        else:
            raise AssertionError(f"bad {name!r} raised no {error.__name__}")


CONTRACT_CHECKS = (
    check_shapes_and_dtypes,
    check_scan_equals_loop,
    check_jit_equals_eager,
    check_vmap_equals_stacked,
    check_no_recompile,
    check_known_unused_controls_ignored,
    check_unknown_control_raises,
    check_gradients,
    check_cond_stable,
    check_bad_input_errors,
)


def check_memory_contract(factory: MemoryFactory) -> None:
    """Run every contract check on the memory built by ``factory(dtype)``."""
    for check in CONTRACT_CHECKS:
        check(factory)
