"""AssociativeLayer, the causal convolution and SequenceModel: oracles, streaming, causality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import MultiHead, scan
from memjax.core.testing import float64
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer
from memjax.models.sequence_model import SequenceModel
from memjax.nn.conv1d import causal_depthwise_conv

MEMORY = LinearMemory(4, 4, alpha=0.1, gated=("theta", "alpha"), decay_form="gated_deltanet")
LAYER = AssociativeLayer(8, 2, MEMORY, conv_width=3, chunk_size=4)
MODEL = SequenceModel(vocab_size=11, d_model=8, num_layers=2, mixer=LAYER)


def test_conv_matches_numpy_convolve():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(9, 3)), rng.normal(size=(4, 3))
    y, tail = causal_depthwise_conv(jnp.asarray(x), jnp.asarray(w), jnp.zeros((3, 3)))
    for c in range(3):  # y_t = Σ_i w_i x_{t-3+i}  ==  full convolution with the reversed kernel
        want = np.convolve(x[:, c], w[::-1, c])[: len(x)]
        np.testing.assert_allclose(y[:, c], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tail, x[-3:].astype(np.float32))


def test_conv_hand_written_gradient_equals_autodiff_of_the_plain_sum():
    """The conv's custom backward == ``jax.grad`` of ``Σ_i w_i x_{t-3+i}`` written plainly."""
    rng = np.random.default_rng(1)
    x, w, tail, g = (rng.normal(size=s) for s in ((9, 3), (4, 3), (3, 3), (9, 3)))

    def plain(x, w, tail):
        full = jnp.concatenate([tail, x])
        return sum(w[i][None, :] * full[i : i + 9] for i in range(4))

    with float64():
        args = tuple(map(jnp.asarray, (x, w, tail)))
        got = jax.grad(lambda *a: jnp.sum(causal_depthwise_conv(*a)[0] * g), (0, 1, 2))(*args)
        want = jax.grad(lambda *a: jnp.sum(plain(*a) * g), (0, 1, 2))(*args)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_layer_without_conv_matches_hand_written_heads():
    layer = AssociativeLayer(8, 2, MEMORY, conv_width=0, activation="identity", qk_norm=False)
    p = layer.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (7, 8))
    ys, _ = layer.apply(p, layer.init_state(p), xs)
    q, k, v = ((xs @ p[w]).reshape(7, 2, 4) for w in ("wq", "wk", "wv"))
    heads = MultiHead(MEMORY, 2)
    reads, _ = scan(heads, p["memory"], heads.init_state(p["memory"]), k, v, q)
    np.testing.assert_allclose(ys, reads.reshape(7, 8) @ p["wo"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("split", [1, 5, 9])
def test_streaming_in_pieces_equals_whole(split):
    p = MODEL.init_params(jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (13,), 0, 11)
    whole, s_whole = MODEL.apply(p, MODEL.init_state(p), tokens)
    a, s = MODEL.apply(p, MODEL.init_state(p), tokens[:split])
    b, s = MODEL.apply(p, s, tokens[split:])
    np.testing.assert_allclose(jnp.concatenate([a, b]), whole, rtol=1e-5, atol=1e-5)
    for x, y in zip(jax.tree_util.tree_leaves(s), jax.tree_util.tree_leaves(s_whole)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_causality_future_tokens_never_change_past_outputs():
    p = MODEL.init_params(jax.random.key(2))
    tokens = jax.random.randint(jax.random.key(3), (12,), 0, 11)
    changed = tokens.at[7].set((tokens[7] + 1) % 11)
    a, _ = MODEL.apply(p, MODEL.init_state(p), tokens)
    b, _ = MODEL.apply(p, MODEL.init_state(p), changed)
    np.testing.assert_array_equal(a[:7], b[:7])
    assert not np.allclose(a[7:], b[7:])


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="conv_width"):
        AssociativeLayer(8, 2, MEMORY, conv_width=-1)
    with pytest.raises(ValueError, match="activation"):
        AssociativeLayer(8, 2, MEMORY, activation="relu6")
    with pytest.raises(ValueError, match="mixer"):
        SequenceModel(11, 16, 1, LAYER)
    p = MODEL.init_params(jax.random.key(0))
    with pytest.raises(TypeError, match="tokens"):
        MODEL.apply(p, MODEL.init_state(p), jnp.ones(4))
    with pytest.raises(ValueError, match="xs"):
        LAYER.apply(
            p["blocks"][0]["mixer"], LAYER.init_state(p["blocks"][0]["mixer"]), jnp.ones((3, 5))
        )
