"""Functional building blocks (each a spec + params like the rest of memjax)."""

from memjax.nn.attention import (
    Attention as Attention,
    AttentionState as AttentionState,
    masked_attention as masked_attention,
    rope as rope,
)
from memjax.nn.channels import ChannelAxes as ChannelAxes, check_channel_axes as check_channel_axes
from memjax.nn.conv1d import causal_depthwise_conv as causal_depthwise_conv, init_conv as init_conv
from memjax.nn.lstm import LSTMCarry as LSTMCarry, LSTMCell as LSTMCell

__all__ = [
    "Attention",
    "AttentionState",
    "ChannelAxes",
    "LSTMCarry",
    "LSTMCell",
    "causal_depthwise_conv",
    "check_channel_axes",
    "init_conv",
    "masked_attention",
    "rope",
]
