"""MQAR, copy / repeat-copy and needle-in-a-haystack, checked against brute-force loops."""

import jax
import numpy as np
import pytest

from memjax import data as md


def test_mqar_brute_force():
    v, t, d = 64, 40, 6
    b = md.mqar(jax.random.key(0), batch_size=8, vocab_size=v, seq_len=t, num_kv_pairs=d)
    inputs, targets, mask = (np.asarray(a) for a in b)
    assert inputs.shape == targets.shape == mask.shape == (8, t)
    assert inputs.dtype == np.int32 and targets.dtype == np.int32
    for seq, tgt, m in zip(inputs, targets, mask, strict=True):
        pairs = {}
        for i in range(0, 2 * d, 2):
            k, val = int(seq[i]), int(seq[i + 1])
            assert 1 <= k < v // 2 <= val < v
            assert k not in pairs
            pairs[k] = val
        assert len(set(pairs.values())) == d
        queried = []
        for i in range(2 * d, t):
            if tgt[i] == md.IGNORE_INDEX:
                assert seq[i] == 0 and not m[i]
            else:
                assert m[i] and tgt[i] == pairs[int(seq[i])]
                queried.append(int(seq[i]))
        assert (tgt[: 2 * d] == md.IGNORE_INDEX).all()
        assert sorted(queried) == sorted(pairs)  # every key queried exactly once


def test_mqar_queries_are_random_order_subset():
    b = md.mqar(jax.random.key(1), 16, vocab_size=128, seq_len=64, num_kv_pairs=8, num_queries=3)
    assert (np.asarray(b.mask).sum(1) == 3).all()
    inputs = np.asarray(b.inputs)
    # query order differs from context order in some sequence
    orders = []
    for seq, m in zip(inputs, np.asarray(b.mask), strict=True):
        ctx = list(seq[:16:2])
        orders.append([ctx.index(k) for k in seq[m]])
    assert any(o != sorted(o) for o in orders)


def test_mqar_determinism_and_jit():
    k = jax.random.key(5)
    a = md.mqar(k, 4, 64, 32, 4)
    b = md.mqar(k, 4, 64, 32, 4)
    c = md.mqar(jax.random.key(6), 4, 64, 32, 4)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    jitted = jax.jit(lambda key: md.mqar(key, 4, 64, 32, 4))(k)
    np.testing.assert_array_equal(jitted.targets, a.targets)


def test_mqar_bad_arguments():
    with pytest.raises(ValueError, match="seq_len"):
        md.mqar(jax.random.key(0), 2, vocab_size=64, seq_len=10, num_kv_pairs=8)
    with pytest.raises(ValueError, match="vocab_size"):
        md.mqar(jax.random.key(0), 2, vocab_size=16, seq_len=64, num_kv_pairs=8)
    with pytest.raises(ValueError, match="num_queries"):
        md.mqar(jax.random.key(0), 2, 64, 64, 4, num_queries=5)


def test_copy_task_targets_equal_pattern():
    b = md.copy_task(jax.random.key(0), batch_size=6, max_len=7, width=5, min_len=2)
    x, y, m, lengths = (np.asarray(a) for a in b[:4])
    assert x.shape == (6, 15, 6) and y.shape == (6, 15, 5) and m.shape == (6, 15)
    assert set(np.unique(x)) <= {0.0, 1.0}
    for i in range(6):
        n = int(lengths[i])
        assert 2 <= n <= 7
        pattern = x[i, :n, :5]
        np.testing.assert_array_equal(x[i, :n, 5], 0)
        assert x[i, n, 5] == 1 and (x[i, n, :5] == 0).all()
        assert (x[i, n + 1 :] == 0).all()
        np.testing.assert_array_equal(y[i, n + 1 : 2 * n + 1], pattern)
        assert m[i].sum() == n and m[i, n + 1 : 2 * n + 1].all()
        assert (y[i][~m[i]] == 0).all()


def test_repeat_copy_targets_equal_repeated_pattern():
    b = md.repeat_copy_task(jax.random.key(2), 5, max_len=4, max_repeats=3, width=3)
    x, y, m, lengths, reps = (np.asarray(a) for a in b)
    assert x.shape == (5, 4 + 1 + 12 + 1, 5) and y.shape == (5, 18, 4)
    for i in range(5):
        n, r = int(lengths[i]), int(reps[i])
        pattern = x[i, :n, :3]
        assert x[i, n, 3] == 1 and np.isclose(x[i, n, 4], r / 3)
        for j in range(r):
            s = n + 1 + j * n
            np.testing.assert_array_equal(y[i, s : s + n, :3], pattern)
        end = n + 1 + r * n
        assert y[i, end, 3] == 1 and y[i, :end, 3].sum() == 0
        assert m[i].sum() == r * n + 1 and m[i, n + 1 : end + 1].all()


def test_copy_determinism_and_errors():
    a = md.copy_task(jax.random.key(0), 2, 5)
    np.testing.assert_array_equal(a.inputs, md.copy_task(jax.random.key(0), 2, 5).inputs)
    assert not np.array_equal(a.inputs, md.copy_task(jax.random.key(1), 2, 5).inputs)
    with pytest.raises(ValueError, match="min_len"):
        md.copy_task(jax.random.key(0), 2, max_len=5, min_len=6)
    with pytest.raises(ValueError, match="max_repeats"):
        md.repeat_copy_task(jax.random.key(0), 2, max_repeats=0)


@pytest.mark.parametrize("kind", ["passkey", "number", "uuid"])
@pytest.mark.parametrize("haystack", ["noise", "shakespeare"])
def test_needle_answer_inside_haystack(kind, haystack):
    b = md.needle_haystack(0, batch_size=3, seq_len=1024, kind=kind, haystack=haystack)
    assert b.tokens.shape == (3, 1024) and b.tokens.dtype == np.int32
    a = b.answer.shape[1]
    assert a == {"passkey": 5, "number": 7, "uuid": 36}[kind]
    for i in range(3):
        text = md.needle_decode(b.tokens[i])
        assert len(text) == 1024
        answer = md.needle_decode(b.answer[i])
        v = int(b.value_pos[i])
        assert text[v : v + a] == answer  # the needle's value sits at value_pos
        assert text.endswith(answer) and text.count(answer) >= 2
        assert b.needle_pos[i] <= v < b.needle_pos[i] + 80
        assert b.answer_mask[i].sum() == a and b.answer_mask[i, -a:].all()
        scored = b.targets[i] != md.IGNORE_INDEX
        np.testing.assert_array_equal(b.targets[i][scored], b.answer[i])
        np.testing.assert_array_equal(np.flatnonzero(scored) + 1, np.flatnonzero(b.answer_mask[i]))


def test_needle_depth_and_determinism():
    b = md.needle_haystack(1, 2, seq_len=4096, depth=0.5)
    assert np.all(np.abs(b.depth - 0.5) < 0.05)
    assert md.needle_decode(b.tokens[0])[b.needle_pos[0] :].startswith("The pass key is ")
    b0 = md.needle_haystack(1, 2, seq_len=4096, depth=0.0)
    assert (b0.needle_pos == 0).all()
    c = md.needle_haystack(1, 2, seq_len=4096, depth=0.5)
    np.testing.assert_array_equal(b.tokens, c.tokens)
    d = md.needle_haystack(2, 2, seq_len=4096, depth=0.5)
    assert not np.array_equal(b.answer, d.answer)
    big = md.needle_haystack(0, 1, seq_len=16384, kind="uuid")
    assert big.tokens.shape == (1, 16384)


def test_needle_bad_arguments():
    with pytest.raises(ValueError, match="seq_len"):
        md.needle_haystack(0, 1, seq_len=50)
    with pytest.raises(ValueError, match="kind"):
        md.needle_haystack(0, 1, kind="essay")
    with pytest.raises(ValueError, match="depth"):
        md.needle_haystack(0, 1, depth=1.5)
