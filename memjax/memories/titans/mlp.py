r"""The Titans memory MLP: the network whose weights are the test-time state (Titans §3.1).

:class:`MemoryMLP` is a depth-:math:`L_M` MLP acting on one vector (unbatched; ``jax.vmap`` adds
tokens), in the row convention ``z_l = h_{l-1} W_l (+ b_l)``, ``h_l = act(z_l)`` for ``l < L_M``,
``out = z_{L_M}``. With ``residual_norm=True`` the output is wrapped TTT / titans-pytorch style:
``y = LN(out) * (1 + gamma) + x`` where ``LN`` has no affine parameters and ``gamma`` (zeros at
init) is part of the memory weights. Weights are a pytree
``{"layers": ({"w": (d_in, d_out), "b": (d_out,)?}, ...), "gamma": (d_out,)?}``.

The associative loss is Titans eq. 12, :math:`\ell(M; k, v) = c \lVert M(k) - v \rVert^2` with
``c = 1`` (``"sum"``, eq. 12, the default), ``1/2`` (``"half_sum"``, Appendix C) or ``1/d_value``
(``"mean"``, titans-pytorch). The reduction rescales the effective step size θ.

Two ways to get the per-token gradient :math:`u = \nabla_M \ell(M; k, v)`:

* :func:`loss_gradient` — ``jax.grad`` on the weights (the reference; a full weights pytree);
* :func:`gradient_factors` — the *factored* gradients of a block of tokens, used by the dual
  form: every dense layer's gradient is an outer product :math:`x_l^\top \delta_l` (layer input
  times the gradient of the loss w.r.t. the layer's pre-activation), the bias gradient is
  :math:`\delta_l`. The backward pass is written out by hand as block matmuls, so the factors
  cost ``O(d_in + d_out)`` memory per layer and token instead of ``O(d_in d_out)`` and a second
  differentiation (the outer training loss) stays cheap.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans.mlp import MemoryMLP
    >>> mlp = MemoryMLP(d_in=4, d_out=4, depth=2, expansion=2)
    >>> w = mlp.init(jax.random.key(0))
    >>> mlp(w, jnp.ones(4)).shape
    (4,)
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from memjax.core.checks import check_choice, check_positive_int
from memjax.core.spec import spec
from memjax.nn.activations import ACTIVATIONS
from memjax.nn.norms import layer_norm

LOSS_REDUCTIONS = ("sum", "half_sum", "mean")
LN_EPS = 1e-5
"""``ε`` of the residual wrapper's affine-free LayerNorm (:func:`memjax.nn.norms.layer_norm`)."""


def _rows(vector: jax.Array, like: jax.Array) -> jax.Array:
    """``vector`` reshaped to broadcast over the leading axes of ``like``."""
    return vector.reshape((1,) * (like.ndim - 1) + vector.shape)


def check_max_grad_norm(value) -> None:
    """Raise naming ``max_grad_norm`` unless ``value`` is ``None`` or a positive number."""
    if value is not None and not (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    ):
        raise ValueError(f"max_grad_norm: expected None or a positive number, got {value!r}")


def loss_scale(reduction: str, d_value: int) -> float:
    """The constant ``c`` of ``c * ||M(k) - v||^2`` for ``reduction``."""
    return {"sum": 1.0, "half_sum": 0.5, "mean": 1.0 / d_value}[reduction]


@spec
class MemoryMLP:
    """A depth-``depth`` MLP ``d_in -> expansion*d_in -> ... -> d_out`` (see module doc).

    Args:
        d_in: input (key/query) size.
        d_out: output (value) size.
        depth: number of dense layers :math:`L_M \\ge 1` (1 = linear memory).
        expansion: hidden width = ``expansion * d_in``.
        activation: one of :data:`memjax.nn.activations.ACTIVATIONS` (``"gelu"`` is the exact,
            erf GELU).
        bias: dense layers have biases.
        residual_norm: wrap as ``LN(out) * (1 + gamma) + x`` (needs ``d_in == d_out``). Off by
            default: the paper's memory is a plain MLP (§3.1); the wrapper is TTT's and
            titans-pytorch's, and it slows or stalls outer training on associative recall
            (:mod:`memjax.memories.titans`).
    """

    d_in: int
    d_out: int
    depth: int = 2
    expansion: int = 4
    activation: str = "gelu"
    bias: bool = False
    residual_norm: bool = False

    def __post_init__(self):
        check_positive_int("d_in", self.d_in)
        check_positive_int("d_out", self.d_out)
        check_positive_int("depth", self.depth)
        check_positive_int("expansion", self.expansion)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if self.residual_norm and self.d_in != self.d_out:
            raise ValueError(
                f"residual_norm: the residual wrapper needs d_in == d_out, got {self.d_in} "
                f"and {self.d_out}"
            )

    @property
    def widths(self) -> tuple[int, ...]:
        hidden = self.expansion * self.d_in
        return (self.d_in, *([hidden] * (self.depth - 1)), self.d_out)

    def init(self, key: jax.Array, dtype="float32") -> dict:
        """Random initial weights :math:`W_0` (normal, std ``1/sqrt(fan_in)``; zero biases)."""
        widths = self.widths
        keys = jax.random.split(key, self.depth)
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layer = {"w": jax.random.normal(keys[i], (a, b), dtype) / math.sqrt(a)}
            if self.bias:
                layer["b"] = jnp.zeros((b,), dtype)
            layers.append(layer)
        weights: dict = {"layers": tuple(layers)}
        if self.residual_norm:
            weights["gamma"] = jnp.zeros((self.d_out,), dtype)
        return weights

    def __call__(self, weights: dict, x: jax.Array) -> jax.Array:
        """``M(x)`` for ``x`` of shape ``(..., d_in)``."""
        act = ACTIVATIONS[self.activation]
        h = x
        for i, layer in enumerate(weights["layers"]):
            h = h @ layer["w"]
            if self.bias:
                h = h + _rows(layer["b"], h)
            if i < self.depth - 1:
                h = act(h)
        if self.residual_norm:
            h = layer_norm(h, eps=LN_EPS) * (1.0 + _rows(weights["gamma"], h)) + x
        return h


def associative_loss(mlp: MemoryMLP, reduction: str, weights, key, value) -> jax.Array:
    """Titans eq. 12: ``c * ||M(k) - v||^2`` (``c`` from :func:`loss_scale`)."""
    diff = mlp(weights, key) - value
    return loss_scale(reduction, mlp.d_out) * jnp.sum(jnp.square(diff))


def tree_norm_sq(tree) -> jax.Array:
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree))


def clip_scale(norm_sq: jax.Array, max_norm: float | None) -> jax.Array:
    """``min(1, max_norm / ||u||)``, safe (and differentiable) at ``||u|| = 0``."""
    if max_norm is None:
        return jnp.ones_like(norm_sq)
    positive = norm_sq > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, norm_sq, 1.0)), 0.0)
    return max_norm / jnp.maximum(norm, max_norm)


def loss_gradient(mlp: MemoryMLP, reduction: str, max_norm, weights, key, value):
    """:math:`u = \\nabla_M \\ell(M; k, v)` by ``jax.grad``, its norm clipped to ``max_norm``."""
    grad = jax.grad(associative_loss, argnums=2)(mlp, reduction, weights, key, value)
    scale = clip_scale(tree_norm_sq(grad), max_norm)
    return jax.tree_util.tree_map(lambda g: g * scale, grad)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_grad(z):
    """d/dz of the exact GELU: Φ(z) + z φ(z)."""
    return 0.5 * (1.0 + jax.lax.erf(z * _SQRT_HALF)) + z * jnp.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _gelu_tanh_grad(z):
    """d/dz of the tanh GELU ``z (1 + tanh(u)) / 2``, ``u = √(2/π)(z + 0.044715 z³)``."""
    u = _SQRT_2_OVER_PI * (z + 0.044715 * z**3)
    t = jnp.tanh(u)
    du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * z * z)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du


def _silu_grad(z):
    s = jax.nn.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


ACTIVATION_GRADS = {
    "gelu": _gelu_grad,
    "gelu_tanh": _gelu_tanh_grad,
    "silu": _silu_grad,
    "relu": lambda z: (z > 0).astype(z.dtype),
    "tanh": lambda z: 1.0 - jnp.square(jnp.tanh(z)),
    "identity": jnp.ones_like,
}


def output_gradient(mlp: MemoryMLP, reduction: str, out, keys, values, gamma):
    """Rowwise: the loss gradient w.r.t. the last layer's pre-activation ``out`` (``(C, d_out)``)
    and, with the ``residual_norm`` wrapper, w.r.t. ``gamma`` (``(1, d_out)`` broadcast; else
    ``None``): ``(g, gamma_grad)``, unclipped."""
    grad = 2.0 * loss_scale(reduction, mlp.d_out)
    if not mlp.residual_norm:
        return grad * (out - values), None
    h = out
    mean = jnp.mean(h, axis=-1, keepdims=True)
    rstd = jax.lax.rsqrt(jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True) + LN_EPS)
    normed = (h - mean) * rstd
    scale = 1.0 + gamma
    g = grad * (normed * scale + keys - values)
    gamma_grad = g * normed
    g = g * scale
    g = rstd * (
        g
        - jnp.mean(g, axis=-1, keepdims=True)
        - normed * jnp.mean(g * normed, axis=-1, keepdims=True)
    )
    return g, gamma_grad


FACTOR_NAME = "titans_factor_matmul"
"""The ``jax.ad_checkpoint.checkpoint_name`` of :func:`factor_forward`'s matmul outputs (the
pre-activations and the delta recurrence's products): a ``jax.checkpoint`` policy
``save_only_these_names(FACTOR_NAME)`` keeps them for the backward instead of re-running those
matmuls."""


def _named(x):
    return checkpoint_name(x, FACTOR_NAME)


def factor_forward(mlp: MemoryMLP, reduction: str, max_norm, weights, keys, values, queries=None):
    """:func:`gradient_factors` and the residuals its hand-written backward needs:
    ``(factors, (inputs, pre_activations, unclipped deltas, unclipped gamma_grad, norm_sq))``
    (``norm_sq``: each token's squared gradient norm, ``None`` without clipping).

    With ``queries`` (``(R, d_in)``) the reads ``M(queries)`` at the same ``weights`` ride along
    the keys' forward pass (their rows stacked under the keys', one matmul per layer for both),
    and ``(factors, residuals, reads)`` is returned."""
    act, act_grad = ACTIVATIONS[mlp.activation], ACTIVATION_GRADS[mlp.activation]
    layers = weights["layers"]
    size = keys.shape[0]
    h = keys if queries is None else jnp.concatenate([keys, queries])
    inputs, pre = [], []
    for i, layer in enumerate(layers):
        inputs.append(h[:size])
        z = _named(h @ layer["w"])
        if mlp.bias:
            z = z + layer["b"][None, :]
        pre.append(z[:size])
        h = act(z) if i < mlp.depth - 1 else z
    h, reads = h[:size], h[size:]
    gamma = weights["gamma"][None, :] if mlp.residual_norm else None
    if queries is not None and mlp.residual_norm:
        reads = layer_norm(reads, eps=LN_EPS) * (1.0 + gamma) + queries
    g, gamma_grad = output_gradient(mlp, reduction, h, keys, values, gamma)
    deltas = [g]
    for i in range(mlp.depth - 2, -1, -1):
        g = _named(g @ layers[i + 1]["w"].T) * act_grad(pre[i])
        deltas.insert(0, g)
    raw, raw_gamma, norm_sq = tuple(deltas), gamma_grad, None
    if max_norm is not None:
        sq = lambda a: jnp.sum(jnp.square(a), axis=-1)
        norm_sq = sum(sq(x) * sq(d) for x, d in zip(inputs, deltas))
        if mlp.bias:
            norm_sq = norm_sq + sum(sq(d) for d in deltas)
        if gamma_grad is not None:
            norm_sq = norm_sq + sq(gamma_grad)
        scale = clip_scale(norm_sq, max_norm)[:, None]
        deltas = [d * scale for d in deltas]
        if gamma_grad is not None:
            gamma_grad = gamma_grad * scale
    factors = (tuple(inputs), tuple(deltas), gamma_grad)
    residuals = (tuple(inputs), tuple(pre), raw, raw_gamma, norm_sq)
    return (factors, residuals) if queries is None else (factors, residuals, reads)


def gradient_factors(mlp: MemoryMLP, reduction: str, max_norm, weights, keys, values):
    """The factored, clipped gradients ``(inputs, deltas, gamma_grad)`` of a block of tokens.

    ``keys`` ``(C, d_in)`` and ``values`` ``(C, d_out)`` are ``C`` independent tokens, all
    differentiated at the same ``weights``. ``inputs[l]`` ``(C, d_in_l)`` and ``deltas[l]``
    ``(C, d_out_l)`` give token ``j``'s dense-layer gradient ``outer(inputs[l][j],
    deltas[l][j])`` and bias gradient ``deltas[l][j]``; ``gamma_grad`` ``(C, d_out)`` is the
    wrapper's ``gamma`` gradient (``None`` without the wrapper). Each token's clipping scale
    (:func:`clip_scale` of its global gradient norm) is folded into its deltas and
    ``gamma_grad``.

    The backward pass is written out by hand (chain rule through the dense layers, the activation's
    closed-form derivative :data:`ACTIVATION_GRADS` and the LayerNorm), as matrix products over the
    block, so that differentiating it once more for the outer loss costs a few whole-block
    matmuls instead of a second automatic differentiation of ``C`` per-token gradients.
    :func:`loss_gradient` (``jax.grad``) is the reference it is tested against.
    """
    return factor_forward(mlp, reduction, max_norm, weights, keys, values)[0]


def factors_to_tree(mlp: MemoryMLP, factors, weights_row) -> dict:
    """``Σ_j c_j u_j`` as a weights pytree, from stacked factors (leading token axis) and
    coefficients ``c`` (shape ``(C,)``)."""
    inputs, deltas, gamma_grad = factors
    layers = []
    for x, d in zip(inputs, deltas):
        layer = {"w": jnp.einsum("j,ja,jb->ab", weights_row, x, d)}
        if mlp.bias:
            layer["b"] = weights_row @ d
        layers.append(layer)
    tree: dict = {"layers": tuple(layers)}
    if mlp.residual_norm:
        tree["gamma"] = weights_row @ gamma_grad
    return tree
