"""Small CNNs built from :mod:`memjax.nn`, over NHWC images, tapped for pruning scores.

* :class:`LeNet5` — LeNet-5 (two convs, three dense layers, a flatten between);
* :class:`VGG` — VGG-BN, CIFAR style (:data:`VGG16` is the paper's VGG-16-BN);
* :class:`ResNet` — CIFAR ResNets with option-A shortcuts (:func:`resnet20`,
  :func:`resnet56`, :func:`resnet110`);
* :class:`ResNet18` — ResNet-18 (He et al. 2016) with projection shortcuts, CIFAR stem;
* :class:`MobileNetV1` — MobileNetV1 (depthwise-separable blocks, width multiplier).

Every model is a frozen spec with ``init_params(key)``, ``init_state()`` (BatchNorm running
statistics; ``{}`` for LeNet-5), ``apply(params, state, x, *, train) -> (logits, new_state)``,
``conv_layers()`` (``(layer name, kernel path, layer spec)`` for the scorer) and
``pruned(kept) -> spec`` (the spec after :func:`memjax.pruning.shrink`, the protocol that
:func:`memjax.pruning.materialize` calls). Each conv and dense layer exposes ``"<layer>:in"``,
``"<layer>:out"`` and ``"<layer>:act"`` through :mod:`memjax.core.taps`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import resnet20
    >>> net = resnet20()
    >>> params = jax.eval_shape(net.init_params, jax.random.key(0))
    >>> sum(a.size for a in jax.tree_util.tree_leaves(params))
    269722
"""

from memjax.models.cnn.layers import select_channels as select_channels
from memjax.models.cnn.lenet import LeNet5 as LeNet5
from memjax.models.cnn.mobilenet import MOBILENET_V1 as MOBILENET_V1, MobileNetV1 as MobileNetV1
from memjax.models.cnn.resnet import (
    ResNet as ResNet,
    resnet20 as resnet20,
    resnet56 as resnet56,
    resnet110 as resnet110,
)
from memjax.models.cnn.resnet18 import ResNet18 as ResNet18
from memjax.models.cnn.vgg import VGG as VGG, VGG16 as VGG16

__all__ = [
    "MOBILENET_V1",
    "VGG",
    "VGG16",
    "LeNet5",
    "MobileNetV1",
    "ResNet",
    "ResNet18",
    "resnet20",
    "resnet56",
    "resnet110",
    "select_channels",
]
