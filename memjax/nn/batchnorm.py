r"""Batch normalisation with running statistics as *state* (Ioffe & Szegedy 2015, Alg. 1–2).

The features are the **last** axis of ``x`` ``(..., C)`` (``(N, C)`` or NHWC); statistics are
taken over every other axis, i.e. over the :math:`m = N H W` positions of a batch. In training
(``train=True``), with the batch mean and the **biased** batch variance

.. math::

    \mu_B = \frac{1}{m}\sum_{i} x_i, \qquad \sigma_B^2 = \frac{1}{m}\sum_i (x_i - \mu_B)^2,
    \qquad y_i = \gamma\, \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} + \beta ,

and the running statistics move by the momentum rule (Flax / Keras convention)

.. math::

    \hat\mu \leftarrow \rho\,\hat\mu + (1 - \rho)\,\mu_B, \qquad
    \hat\sigma^2 \leftarrow \rho\,\hat\sigma^2 + (1 - \rho)\,\tfrac{m}{m-1}\,\sigma_B^2 ,

with :math:`\rho` = ``momentum`` (default ``0.9``; PyTorch's ``momentum=0.1`` is ``0.9`` here).
The running variance takes the **unbiased** estimate :math:`\tfrac{m}{m-1}\sigma_B^2`, as PyTorch
and the paper's inference rule (Alg. 2, step 10) do; ``unbiased_running_var=False`` stores the
biased :math:`\sigma_B^2` instead (Flax). In evaluation (``train=False``) the layer normalises
by the running statistics, :math:`y = \gamma (x - \hat\mu)/\sqrt{\hat\sigma^2 + \epsilon} + \beta`,
and returns the state unchanged. The running statistics start at :math:`\hat\mu = 0`,
:math:`\hat\sigma^2 = 1`; no gradient flows into them.

**Data parallelism.** With ``axis_name`` set, the batch statistics are averaged over that named
axis (``lax.pmean``) under ``jax.vmap``/``shard_map``/``pmap``, so every shard normalises with the
statistics of the whole batch (shards of equal size); under plain ``jit`` with a sharded batch
no name is needed.

**Channel axes** (:mod:`memjax.nn.channels`): ``scale`` and ``bias`` (params) and ``mean`` and
``var`` (state) are all ``out=0``, coupled to the features: pruning channel ``c`` removes entry
``c`` of each (:meth:`BatchNorm.channel_axes` covers the params,
:meth:`BatchNorm.state_channel_axes` the state).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn.batchnorm import BatchNorm
    >>> bn = BatchNorm(2)
    >>> params, state = bn.init_params(jax.random.key(0)), bn.init_state()
    >>> x = jnp.array([[1.0, 0.0], [3.0, 4.0]])
    >>> y, state = bn.apply(params, state, x, train=True)
    >>> y.round(3)
    Array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> state.mean.round(3), state.var.round(3)     # 0.9 * (0, 1) + 0.1 * (mean, unbiased var)
    (Array([0.2, 0.2], dtype=float32), Array([1.1, 1.7], dtype=float32))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes

__all__ = ["BatchNorm", "BatchNormState"]


class BatchNormState(NamedTuple):
    """Running mean and running variance, each ``(num_features,)``."""

    mean: jax.Array
    var: jax.Array


def _features(like: jax.Array, vector: jax.Array) -> jax.Array:
    return jnp.reshape(vector, (1,) * (like.ndim - 1) + vector.shape)


@spec
class BatchNorm:
    """Batch normalisation of ``x (..., num_features)`` with running statistics (module doc).

    Args:
        num_features: channels ``C`` (the last axis of ``x``).
        momentum: :math:`\\rho` of the running-statistics update, in ``[0, 1)``.
        eps: added to the variance.
        use_scale: a learnt per-channel scale :math:`\\gamma` (ones).
        use_bias: a learnt per-channel bias :math:`\\beta` (zeros).
        unbiased_running_var: store :math:`m/(m-1)\\,\\sigma_B^2` (``True``) or :math:`\\sigma_B^2`.
        axis_name: a named batch axis to average the statistics over (``None``: none).
        dtype: dtype of the params and the state.
    """

    num_features: int
    momentum: float = 0.9
    eps: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True
    unbiased_running_var: bool = True
    axis_name: str | None = None
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("num_features", self.num_features)
        m = self.momentum
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0 <= m < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {m!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or self.eps < 0:
            raise ValueError(f"eps: expected a non-negative number, got {self.eps!r}")
        for name in ("use_scale", "use_bias", "unbiased_running_var"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected a bool, got {getattr(self, name)!r}")
        if self.axis_name is not None and not isinstance(self.axis_name, str):
            raise TypeError(f"axis_name: expected a string or None, got {self.axis_name!r}")

    def init_params(self, key: jax.Array) -> dict:
        """``scale`` (ones) and ``bias`` (zeros), each ``(num_features,)``; ``key`` is unused."""
        params = {}
        if self.use_scale:
            params["scale"] = jnp.ones((self.num_features,), self.dtype)
        if self.use_bias:
            params["bias"] = jnp.zeros((self.num_features,), self.dtype)
        return params

    def init_state(self, params: dict | None = None) -> BatchNormState:
        """Running mean zeros and running variance ones (``params`` is not needed)."""
        return BatchNormState(
            mean=jnp.zeros((self.num_features,), self.dtype),
            var=jnp.ones((self.num_features,), self.dtype),
        )

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``scale`` and ``bias``: the features, ``out=0``."""
        names = [n for n, on in (("scale", self.use_scale), ("bias", self.use_bias)) if on]
        return {name: ChannelAxes(out=0) for name in names}

    def state_channel_axes(self) -> dict[str, ChannelAxes]:
        """The running ``mean`` and ``var``: the features, ``out=0``."""
        return {"mean": ChannelAxes(out=0), "var": ChannelAxes(out=0)}

    def batch_stats(self, x: jax.Array) -> tuple[jax.Array, jax.Array, int]:
        """``(mu_B, sigma_B^2, m)``: batch mean, biased batch variance and the count ``m``."""
        axes = tuple(range(x.ndim - 1))
        count = math.prod(x.shape[:-1])
        mean = jnp.mean(x, axis=axes)
        if self.axis_name is not None:
            mean = jax.lax.pmean(mean, self.axis_name)
            count *= jax.lax.axis_size(self.axis_name)
        var = jnp.mean(jnp.square(x - _features(x, mean)), axis=axes)
        if self.axis_name is not None:
            var = jax.lax.pmean(var, self.axis_name)
        return mean, var, count

    def apply(
        self, params: dict, state: BatchNormState, x, /, *, train: bool
    ) -> tuple[jax.Array, BatchNormState]:
        """``(y, new_state)``: batch statistics when ``train`` (and the running update), the
        running statistics otherwise (and the state unchanged)."""
        if not isinstance(train, bool):
            raise TypeError(f"train: expected a Python bool, got {type(train).__name__}")
        if not hasattr(x, "ndim") or x.ndim < 2:
            check_array("x", x, ndim=2)
        check_array("x", x, shape=(*([None] * (x.ndim - 1)), self.num_features), floating=True)
        check_array("state.mean", state.mean, shape=(self.num_features,))
        check_array("state.var", state.var, shape=(self.num_features,))
        if train:
            mean, var, count = self.batch_stats(x)
            if self.unbiased_running_var and count < 2:
                raise ValueError(
                    f"x: training needs more than one value per channel, got shape {x.shape}"
                )
            rho = self.momentum
            unbiased = var * (count / (count - 1)) if self.unbiased_running_var else var
            new_state = BatchNormState(
                mean=(rho * state.mean + (1 - rho) * jax.lax.stop_gradient(mean)),
                var=(rho * state.var + (1 - rho) * jax.lax.stop_gradient(unbiased)),
            )
            new_state = BatchNormState(*(a.astype(s.dtype) for a, s in zip(new_state, state)))
        else:
            mean, var, new_state = state.mean, state.var, state
        y = (x - _features(x, mean)) * jax.lax.rsqrt(_features(x, var) + self.eps)
        if self.use_scale:
            y = y * _features(x, params["scale"])
        if self.use_bias:
            y = y + _features(x, params["bias"])
        return y, new_state
