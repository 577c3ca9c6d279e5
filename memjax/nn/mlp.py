r"""A multi-layer perceptron: Dense layers with an activation between them.

For ``widths`` :math:`(d_0, d_1, \dots, d_L)` and activation :math:`\phi`,

.. math::

    h_0 = x, \qquad h_\ell = \phi(h_{\ell-1} W_\ell + b_\ell) \;(\ell < L), \qquad
    y = h_{L-1} W_L + b_L ,

(:math:`\phi` on the last layer too with ``activate_final=True``), each layer a
:class:`memjax.nn.dense.Dense` and :math:`\phi` from :data:`memjax.nn.activations.ACTIVATIONS`.

``params`` is a tuple with one Dense params dict per layer, and :meth:`MLP.channel_axes` the tuple
of their channel axes: layer ``ℓ``'s output channels (``kernel`` axis 1, ``bias`` axis 0) are
layer ``ℓ+1``'s input channels (``kernel`` axis 0), the coupling a pruner removes together.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn.mlp import MLP
    >>> mlp = MLP((4, 8, 2), activation="gelu")
    >>> params = mlp.init_params(jax.random.key(0))
    >>> [p["kernel"].shape for p in params]
    [(4, 8), (8, 2)]
    >>> mlp(params, jnp.ones((3, 4))).shape
    (3, 2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core.checks import check_choice, check_positive_int
from memjax.core.spec import spec
from memjax.nn.activations import ACTIVATIONS, activation
from memjax.nn.channels import ChannelAxes
from memjax.nn.dense import INITS, Dense

__all__ = ["MLP"]


@spec
class MLP:
    """Dense layers of ``widths`` with ``activation`` between them (module doc).

    Args:
        widths: ``(d_in, hidden..., d_out)``, at least two positive ints.
        activation: a name in :data:`memjax.nn.activations.ACTIVATIONS`.
        use_bias: every layer has a bias.
        activate_final: apply the activation after the last layer too.
        init: kernel initialisation of every layer (:data:`memjax.nn.dense.INITS`).
        dtype: dtype of the params.
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    use_bias: bool = True
    activate_final: bool = False
    init: str = "lecun_normal"
    dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.widths, tuple) or len(self.widths) < 2:
            raise ValueError(
                f"widths: expected a tuple of at least two ints (d_in, ..., d_out), "
                f"got {self.widths!r}"
            )
        for width in self.widths:
            check_positive_int("widths", width)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if not isinstance(self.activate_final, bool):
            raise TypeError(f"activate_final: expected a bool, got {self.activate_final!r}")
        check_choice("init", self.init, INITS)
        if not isinstance(self.use_bias, bool):
            raise TypeError(f"use_bias: expected a bool, got {self.use_bias!r}")
        if not jnp.issubdtype(jnp.dtype(self.dtype), jnp.floating):
            raise TypeError(f"dtype: expected a floating dtype, got {self.dtype!r}")

    @property
    def layers(self) -> tuple[Dense, ...]:
        """The Dense specs, one per consecutive pair of ``widths``."""
        return tuple(
            Dense(d_in, d_out, self.use_bias, self.init, self.dtype)
            for d_in, d_out in zip(self.widths[:-1], self.widths[1:])
        )

    def init_params(self, key: jax.Array) -> tuple[dict, ...]:
        """One Dense params dict per layer."""
        keys = jax.random.split(key, len(self.layers))
        return tuple(layer.init_params(k) for layer, k in zip(self.layers, keys))

    def channel_axes(self) -> tuple[dict[str, ChannelAxes], ...]:
        """One Dense :meth:`~memjax.nn.dense.Dense.channel_axes` dict per layer."""
        return tuple(layer.channel_axes() for layer in self.layers)

    def apply(self, params: tuple[dict, ...], x) -> jax.Array:
        """``x (..., widths[0]) -> (..., widths[-1])``."""
        if len(params) != len(self.layers):
            raise ValueError(
                f"params: expected {len(self.layers)} layers' params, got {len(params)}"
            )
        phi = activation(self.activation)
        last = len(self.layers) - 1
        for n, (layer, p) in enumerate(zip(self.layers, params)):
            x = layer(p, x)
            if n < last or self.activate_final:
                x = phi(x)
        return x

    __call__ = apply
