r"""LeNet-5 (LeCun et al. 1998) over NHWC images, built from :mod:`memjax.nn`.

``conv1`` (5×5, VALID) → ReLU → 2×2 max-pool → ``conv2`` (5×5, VALID) → ReLU → 2×2 max-pool →
flatten (:math:`(h, w, c)` order) → ``fc1`` → ReLU → ``fc2`` → ReLU → ``fc3`` (logits). For a
32×32 input the flattened features are :math:`5 \cdot 5 \cdot 16 = 400`; after pruning
``conv2`` to :math:`C'` channels ``fc1`` reads :math:`25 C'` (its rows :math:`f` with
:math:`f \bmod 16` kept). No BatchNorm, so the model state is ``{}``.

Every conv and dense layer is tapped (:mod:`memjax.models.cnn.layers`): ``"conv1:in"``,
``"conv1:out"``, ``"conv1:act"``, …

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import LeNet5
    >>> net = LeNet5()
    >>> params, state = net.init_params(jax.random.key(0)), net.init_state()
    >>> logits, _ = net.apply(params, state, jnp.ones((2, 32, 32, 1)), train=False)
    >>> logits.shape, params["fc1"]["kernel"].shape
    ((2, 10), (400, 120))
    >>> net.pruned({("params/conv2/kernel", 3): list(range(8))}).channels
    (6, 8)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.spec import spec
from memjax.core.taps import tap
from memjax.models.cnn.layers import max_pool, tapped, width
from memjax.nn import Conv2D, Dense

__all__ = ["LeNet5"]


@spec
class LeNet5:
    """LeNet-5 (module doc).

    Args:
        in_channels: image channels.
        num_classes: logits.
        image_size: height = width of the input (at least 16).
        channels: the two conv widths.
        hidden: the two hidden dense widths.
        dtype: dtype of the params.
    """

    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 32
    channels: tuple[int, int] = (6, 16)
    hidden: tuple[int, int] = (120, 84)
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("in_channels", self.in_channels)
        check_positive_int("num_classes", self.num_classes)
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ValueError(f"image_size: expected an int >= 16, got {self.image_size!r}")
        for name in ("channels", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) != 2:
                raise ValueError(f"{name}: expected a pair of ints, got {value!r}")
            for v in value:
                check_positive_int(name, v)

    @property
    def feature_size(self) -> int:
        """Spatial size after the second pooling."""
        return ((self.image_size - 4) // 2 - 4) // 2

    def _layers(self) -> dict:
        c1, c2 = self.channels
        h1, h2 = self.hidden
        flat = self.feature_size**2 * c2
        return {
            "conv1": Conv2D(self.in_channels, c1, 5, padding="VALID", dtype=self.dtype),
            "conv2": Conv2D(c1, c2, 5, padding="VALID", dtype=self.dtype),
            "fc1": Dense(flat, h1, dtype=self.dtype),
            "fc2": Dense(h1, h2, dtype=self.dtype),
            "fc3": Dense(h2, self.num_classes, dtype=self.dtype),
        }

    def conv_layers(self) -> tuple:
        """``(layer name, kernel path in params, layer spec)`` for every conv and dense."""
        return tuple((n, (n, "kernel"), layer) for n, layer in self._layers().items())

    def init_params(self, key: jax.Array) -> dict:
        """One params dict per layer."""
        layers = self._layers()
        keys = jax.random.split(key, len(layers))
        return {n: layer.init_params(k) for (n, layer), k in zip(layers.items(), keys)}

    def init_state(self) -> dict:
        """``{}``: LeNet-5 has no running statistics."""
        return {}

    def apply(self, params: dict, state: dict, x, *, train: bool = False):
        """``x (N, S, S, in_channels) -> (logits (N, num_classes), state)``."""
        s = self.image_size
        check_array("x", x, shape=(None, s, s, self.in_channels), floating=True)
        layers = self._layers()
        h = x
        for n in ("conv1", "conv2"):
            h = tap(f"{n}:act", jax.nn.relu(tapped(n, layers[n], params[n], h)))
            h = max_pool(h)
        h = jnp.reshape(h, (h.shape[0], -1))
        for n in ("fc1", "fc2"):
            h = tap(f"{n}:act", jax.nn.relu(tapped(n, layers[n], params[n], h)))
        return tapped("fc3", layers["fc3"], params["fc3"], h), state

    __call__ = apply

    def pruned(self, kept) -> LeNet5:
        """The spec after surgery (``kept``: :func:`memjax.pruning.shrink`)."""
        c = tuple(
            width(kept, f"params/conv{i}/kernel", 3, w) for i, w in zip((1, 2), self.channels)
        )
        h = tuple(width(kept, f"params/fc{i}/kernel", 1, w) for i, w in zip((1, 2), self.hidden))
        return LeNet5(self.in_channels, self.num_classes, self.image_size, c, h, self.dtype)
