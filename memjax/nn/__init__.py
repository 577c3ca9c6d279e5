"""Functional building blocks, each a frozen spec + a params pytree like the rest of memjax.

Layers are pure: ``spec.init_params(key) -> params`` and ``spec.apply(params, x)`` (``__call__``
too); a layer with running statistics also has ``init_state`` and returns its new state
(:class:`BatchNorm`), a recurrent cell has ``init_carry`` and ``step`` (:class:`LSTMCell`, the
``Cell`` protocol) and a sequence layer ``init_state`` and ``apply -> (ys, state)``
(:class:`Attention`). Layers are unbatched where that is natural (``jax.vmap`` outside) and take
any leading axes where the maths is per position (:class:`Dense`); :class:`Conv2D` and
:class:`BatchNorm` take NHWC batches. Every layer declares which axis of each parameter holds its
output and input channels (``channel_axes()``, :mod:`memjax.nn.channels`), for pruning and group
sparsity.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax import nn
    >>> layer = nn.Dense(4, 2)
    >>> params = layer.init_params(jax.random.key(0))
    >>> layer(params, jnp.ones(4)).shape
    (2,)
    >>> layer.channel_axes()["kernel"]
    ChannelAxes(out=1, in_=0)
"""

from memjax.nn.activations import ACTIVATIONS as ACTIVATIONS, activation as activation
from memjax.nn.attention import (
    Attention as Attention,
    AttentionState as AttentionState,
    masked_attention as masked_attention,
    rope as rope,
)
from memjax.nn.batchnorm import BatchNorm as BatchNorm, BatchNormState as BatchNormState
from memjax.nn.channels import ChannelAxes as ChannelAxes, check_channel_axes as check_channel_axes
from memjax.nn.conv1d import (
    CausalConv1D as CausalConv1D,
    CausalConvState as CausalConvState,
    causal_depthwise_conv as causal_depthwise_conv,
    init_conv as init_conv,
)
from memjax.nn.conv2d import Conv2D as Conv2D
from memjax.nn.dense import INITS as INITS, Dense as Dense, init_kernel as init_kernel
from memjax.nn.lstm import LSTMCarry as LSTMCarry, LSTMCell as LSTMCell
from memjax.nn.mlp import MLP as MLP
from memjax.nn.norms import (
    LayerNorm as LayerNorm,
    RMSNorm as RMSNorm,
    l2_normalize as l2_normalize,
    layer_norm as layer_norm,
    rms_norm as rms_norm,
)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "Attention",
    "AttentionState",
    "BatchNorm",
    "BatchNormState",
    "CausalConv1D",
    "CausalConvState",
    "ChannelAxes",
    "Conv2D",
    "Dense",
    "LSTMCarry",
    "LSTMCell",
    "LayerNorm",
    "RMSNorm",
    "activation",
    "causal_depthwise_conv",
    "check_channel_axes",
    "init_conv",
    "init_kernel",
    "l2_normalize",
    "layer_norm",
    "masked_attention",
    "rms_norm",
    "rope",
]
