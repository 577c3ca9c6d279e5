"""NumPy (float64) references shared by the memory-cell tests: activations, the two controllers,
Dense, clipping and the cosine with ``eps`` inside the square roots, written from the equations."""

import jax
import numpy as np


def to_numpy(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


def oneplus(x):
    return 1.0 + softplus(x)


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def cosine(key, memory, eps):
    """K[k, M(i)] for every row i."""
    return np.array(
        [key @ row / (np.sqrt(key @ key + eps) * np.sqrt(row @ row + eps)) for row in memory]
    )


def dense(p, x):
    return x @ p["kernel"] + p["bias"]


def clip(x, c=20.0):
    return np.minimum(np.maximum(x, -c), c)


def lstm_step(p, carry, x):
    """Gates i, f, g, o of memjax.nn.LSTMCell: z = x W_x + h W_h + b."""
    h, c = carry
    z = np.einsum("d,dgh->gh", x, p["w_x"]) + np.einsum("d,dgh->gh", h, p["w_h"]) + p["bias"]
    i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), np.tanh(z[2]), sigmoid(z[3])
    c = f * c + i * g
    h = o * np.tanh(c)
    return h, (h, c)


def ff_step(p, carry, x):
    """One tanh layer (FeedForwardController's default), no carry."""
    for layer in p:
        x = np.tanh(dense(layer, x))
    return x, carry


def controller(kind):
    return {"lstm": lstm_step, "feedforward": ff_step}[kind]


def initial_controller_carry(kind, d_hidden):
    return (np.zeros(d_hidden), np.zeros(d_hidden)) if kind == "lstm" else ()


def perturbed_params(cell, seed, scale=0.5):
    """The cell's init params plus Gaussian noise (so biases and gates take varied values)."""
    params = cell.init_params(jax.random.key(seed))
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    leaves = [np.asarray(a) + scale * rng.standard_normal(a.shape) for a in leaves]
    return jax.tree_util.tree_unflatten(treedef, [np.asarray(a, np.float64) for a in leaves])
