r"""A dense (fully connected) layer: :math:`y = x W + b`.

``kernel`` ``W`` has shape ``(d_in, d_out)`` and ``bias`` ``b`` shape ``(d_out,)``; ``x`` may carry
any leading axes ``(..., d_in)`` (the product is over the last axis only), so one call serves a
vector, a sequence or a batch.

**Initialisation** of the kernel, by name (``fan_in = d_in``, ``fan_out = d_out``):

* ``"lecun_normal"`` (default): :math:`\mathcal{N}(0, 1/\text{fan\_in})` truncated at two standard
  deviations (``jax.nn.initializers.lecun_normal``, LeCun et al. 1998);
* ``"he_normal"``: the same with variance :math:`2/\text{fan\_in}` (He et al. 2015, for ReLU);
* ``"glorot_uniform"``: :math:`U(\pm\sqrt{6/(\text{fan\_in}+\text{fan\_out})})` (Glorot &
  Bengio 2010);
* ``"torch"``: :math:`U(\pm 1/\sqrt{\text{fan\_in}})` for kernel *and* bias (PyTorch's
  ``nn.Linear``);
* ``"zeros"``.

The bias is zero except under ``"torch"``.

**Channel axes** (:mod:`memjax.nn.channels`): ``kernel`` ``in_=0, out=1``; ``bias`` ``out=0``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn.dense import Dense
    >>> layer = Dense(3, 2)
    >>> params = layer.init_params(jax.random.key(0))
    >>> layer(params, jnp.ones((5, 3))).shape
    (5, 2)
    >>> params["bias"].tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.linear import linear
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes

__all__ = ["INITS", "Dense", "init_kernel"]

INITS = ("lecun_normal", "he_normal", "glorot_uniform", "torch", "zeros")


def init_kernel(key: jax.Array, shape, init: str, dtype="float32") -> jax.Array:
    """A kernel of ``shape`` drawn by the named ``init`` (module doc).

    The last axis of ``shape`` is the output axis and the others the inputs (a Dense kernel
    ``(d_in, d_out)``, a conv kernel HWIO): ``fan_in = prod(shape[:-1])``,
    ``fan_out = prod(shape[:-2]) * shape[-1]`` (``jax.nn.initializers`` conventions).
    """
    check_choice("init", init, INITS)
    shape = tuple(shape)
    if init == "torch":
        bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return _INITIALIZERS[init](key, shape, dtype)


_INITIALIZERS = {
    "lecun_normal": jax.nn.initializers.lecun_normal(),
    "he_normal": jax.nn.initializers.he_normal(),
    "glorot_uniform": jax.nn.initializers.glorot_uniform(),
    "zeros": jax.nn.initializers.zeros,
}


def _rows(vector: jax.Array, like: jax.Array) -> jax.Array:
    return jnp.reshape(vector, (1,) * (like.ndim - vector.ndim) + vector.shape)


@spec
class Dense:
    """``y = x @ kernel + bias`` over the last axis of ``x`` ``(..., d_in)`` (module doc).

    Args:
        d_in: input width.
        d_out: output width.
        use_bias: add a learnt bias.
        init: kernel initialisation, one of :data:`INITS`.
        dtype: dtype of the params.
    """

    d_in: int
    d_out: int
    use_bias: bool = True
    init: str = "lecun_normal"
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("d_in", self.d_in)
        check_positive_int("d_out", self.d_out)
        if not isinstance(self.use_bias, bool):
            raise TypeError(f"use_bias: expected a bool, got {self.use_bias!r}")
        check_choice("init", self.init, INITS)
        if not jnp.issubdtype(jnp.dtype(self.dtype), jnp.floating):
            raise TypeError(f"dtype: expected a floating dtype, got {self.dtype!r}")

    def init_params(self, key: jax.Array) -> dict:
        """``{"kernel": (d_in, d_out), "bias": (d_out,)}`` (no ``bias`` without ``use_bias``)."""
        k_w, k_b = jax.random.split(key)
        shape = (self.d_in, self.d_out)
        params = {"kernel": init_kernel(k_w, shape, self.init, self.dtype)}
        if self.use_bias:
            if self.init == "torch":
                bound = 1.0 / math.sqrt(self.d_in)
                params["bias"] = jax.random.uniform(k_b, (self.d_out,), self.dtype, -bound, bound)
            else:
                params["bias"] = jnp.zeros((self.d_out,), self.dtype)
        return params

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``kernel``: inputs on axis 0, outputs on axis 1; ``bias``: outputs on axis 0."""
        axes = {"kernel": ChannelAxes(out=1, in_=0)}
        if self.use_bias:
            axes["bias"] = ChannelAxes(out=0)
        return axes

    def apply(self, params: dict, x) -> jax.Array:
        """``x (..., d_in) -> (..., d_out)``."""
        if not hasattr(x, "ndim") or x.ndim < 1:
            check_array("x", x, ndim=1)
        check_array("x", x, shape=(*([None] * (x.ndim - 1)), self.d_in), floating=True)
        # memjax.core.linear.linear: x @ kernel, whose weight gradient unroll(weight_grads=
        # "after_loop") forms after the loop when this layer runs inside a cell's step
        y = linear(x, params["kernel"])
        return y + _rows(params["bias"], y) if self.use_bias else y

    __call__ = apply
