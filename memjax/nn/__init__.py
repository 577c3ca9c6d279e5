"""Functional building blocks (each a spec + params like the rest of memjax)."""

from memjax.nn.attention import (
    Attention as Attention,
)
from memjax.nn.attention import (
    AttentionState as AttentionState,
)
from memjax.nn.attention import (
    masked_attention as masked_attention,
)
from memjax.nn.attention import (
    rope as rope,
)
from memjax.nn.conv1d import causal_depthwise_conv as causal_depthwise_conv
from memjax.nn.conv1d import init_conv as init_conv

__all__ = [
    "Attention",
    "AttentionState",
    "causal_depthwise_conv",
    "init_conv",
    "masked_attention",
    "rope",
]
