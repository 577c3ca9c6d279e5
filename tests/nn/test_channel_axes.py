"""Every nn layer's declared channel axes fit its params and mean what they say.

Sizes: ``check_channel_axes`` plus the layer's output/input widths. Meaning: zeroing index ``j``
along every declared ``out`` axis silences output channel ``j``; zeroing index ``j`` along every
declared ``in_`` axis makes the output independent of input channel ``j``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.nn import (
    MLP,
    Attention,
    BatchNorm,
    CausalConv1D,
    ChannelAxes,
    Conv2D,
    Dense,
    LayerNorm,
    LSTMCell,
    RMSNorm,
    check_channel_axes,
)


def _bn_train(bn):
    return lambda p, x: bn.apply(p, bn.init_state(), x, train=True)[0]


def _lstm_two_steps(cell):
    def run(p, xs):
        carry = cell.init_carry(p)
        for x in xs:
            y, carry = cell.step(p, carry, x)
        return y

    return run


def _sequence(layer):
    return lambda p, xs: layer.apply(p, layer.init_state(p), xs)[0]


# name -> (layer, call(params, x), input shape, output width, input width or None)
LAYERS = {
    "dense": (Dense(5, 3), None, (4, 5), 3, 5),
    "dense_no_bias": (Dense(5, 3, use_bias=False), None, (5,), 3, 5),
    "conv2d": (Conv2D(3, 4, kernel_size=3, stride=2), None, (2, 5, 5, 3), 4, 3),
    "conv2d_grouped": (Conv2D(4, 6, kernel_size=2, groups=2), None, (1, 4, 4, 4), 6, None),
    "rms_norm": (RMSNorm(5), None, (3, 5), 5, None),
    "layer_norm": (LayerNorm(5), None, (3, 5), 5, None),
    "batch_norm": (BatchNorm(4), "bn", (3, 2, 2, 4), 4, None),
    "lstm": (LSTMCell(3, 4), "lstm", (2, 3), 4, 3),
    "attention": (Attention(8, num_heads=2, num_persistent=2), "seq", (5, 8), 8, 8),
    "causal_conv1d": (CausalConv1D(4, width=3), "seq", (6, 4), 4, 4),
}


def _call(layer, how):
    if how == "bn":
        return _bn_train(layer)
    if how == "lstm":
        return _lstm_two_steps(layer)
    if how == "seq":
        return _sequence(layer)
    return layer.apply


def _zero_index(params, axes, kind, j):
    out = dict(params)
    for name, entry in axes.items():
        for axis in entry.out_axes if kind == "out" else entry.in_axes:
            out[name] = out[name].at[(slice(None),) * axis + (j,)].set(0.0)
    return out


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_declared_axes_match_shapes(name):
    layer, _, _, d_out, d_in = LAYERS[name]
    params = layer.init_params(jax.random.key(0))
    axes = layer.channel_axes()
    check_channel_axes(axes, params)
    assert all(isinstance(entry, ChannelAxes) for entry in axes.values())
    outs = {params[n].shape[a] for n, e in axes.items() for a in e.out_axes}
    ins = {params[n].shape[a] for n, e in axes.items() for a in e.in_axes}
    assert outs == {d_out}
    assert ins == (set() if d_in is None else {d_in})


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_declared_axes_mean_what_they_say(name):
    layer, how, shape, d_out, d_in = LAYERS[name]
    call = jax.jit(_call(layer, how))
    params = layer.init_params(jax.random.key(0))
    # make every param non-trivial (biases and norm scales start at 0 / 1)
    keys = iter(jax.random.split(jax.random.key(1), len(params)))
    params = {n: p + 0.3 * jax.random.normal(next(keys), p.shape) for n, p in params.items()}
    x = jax.random.normal(jax.random.key(2), shape)
    axes = layer.channel_axes()
    j = 1
    y = np.asarray(call(_zero_index(params, axes, "out", j), x))
    assert y.shape[-1] == d_out
    np.testing.assert_array_equal(y[..., j], 0.0)
    assert np.all(np.any(np.delete(y, j, axis=-1) != 0, axis=tuple(range(y.ndim - 1))))
    if d_in is not None:
        cut = _zero_index(params, axes, "in", j)
        bumped = x.at[..., j].add(5.0)
        np.testing.assert_allclose(
            np.asarray(call(cut, bumped)), np.asarray(call(cut, x)), rtol=1e-6, atol=1e-6
        )
        assert not np.allclose(np.asarray(call(params, bumped)), np.asarray(call(params, x)))


def test_batchnorm_state_axes():
    bn = BatchNorm(4)
    state = bn.init_state()
    check_channel_axes(bn.state_channel_axes(), state._asdict())
    assert {state._asdict()[n].shape[e.out] for n, e in bn.state_channel_axes().items()} == {4}


def test_mlp_axes_chain_layer_to_layer():
    mlp = MLP((3, 7, 5, 2))
    params = mlp.init_params(jax.random.key(0))
    axes = mlp.channel_axes()
    assert len(axes) == len(params) == 3
    for layer_axes, layer_params in zip(axes, params):
        check_channel_axes(layer_axes, layer_params)
    for (a, p), (a_next, p_next) in zip(zip(axes, params), zip(axes[1:], params[1:])):
        assert p["kernel"].shape[a["kernel"].out] == p_next["kernel"].shape[a_next["kernel"].in_]


def test_check_channel_axes_catches_mistakes():
    params = {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}
    with pytest.raises(ValueError, match="channel_axes: declares"):
        check_channel_axes({"kernel": ChannelAxes(out=1, in_=0)}, params)
    with pytest.raises(ValueError, match="kernel: out axis 2"):
        check_channel_axes({"kernel": ChannelAxes(out=2), "bias": ChannelAxes(out=0)}, params)
    with pytest.raises(ValueError, match="output-channel axis"):
        check_channel_axes({"kernel": ChannelAxes(out=0), "bias": ChannelAxes(out=0)}, params)
