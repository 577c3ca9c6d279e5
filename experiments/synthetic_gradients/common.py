"""Pieces the synthetic-gradient experiments share: a read-out cell, the SG train loop, output.

* :class:`ReadoutCell` — any cell plus a Dense read-out (the prediction head inside the cell, so
  the loss is a function of the cell's outputs only, as :class:`memjax.controllers.
  SyntheticGradients` wants); taps pass through.
* :func:`build_cell` — LSTM / MANN / NMN / NTM by name.
* :func:`train_sg` — Adam on θ and φ with :meth:`SyntheticGradients.gradients`, one jitted step.
  ``method="bptt"`` runs the same code with λ = 1 (exactly (truncated) BPTT, the tested
  warm-up path) and no SG update; ``"sg"`` uses the spec's λ.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.controllers import SyntheticGradients
from memjax.core.spec import spec
from memjax.memories.mann import MANNCell
from memjax.memories.nmn import NMNCell
from memjax.memories.ntm import NTMCell
from memjax.nn.dense import Dense
from memjax.nn.lstm import LSTMCell

CELLS = ("lstm", "mann", "nmn", "ntm")


@spec
class ReadoutCell:
    """``y_t = cell(x_t) W + b``: a cell with its prediction head (module doc)."""

    cell: Any
    d_out: int

    @property
    def d_input(self) -> int:
        return self.cell.d_input

    @property
    def tap_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.cell, "tap_names", ()))

    @property
    def readout(self) -> Dense:
        width = getattr(self.cell, "d_output", None) or self.cell.d_hidden
        return Dense(width, self.d_out)

    def init_params(self, key):
        k1, k2 = jax.random.split(key)
        return {"cell": self.cell.init_params(k1), "readout": self.readout.init_params(k2)}

    def init_carry(self, params):
        return self.cell.init_carry(params["cell"])

    def step(self, params, carry, x, /, **controls):
        h, carry = self.cell.step(params["cell"], carry, x, **controls)
        return self.readout(params["readout"], h), carry


def build_cell(
    name: str, d_input: int, d_out: int, *, hidden: int, memory: tuple[int, int], heads: int = 1
) -> ReadoutCell:
    """The cell ``name`` in :data:`CELLS` with a read-out to ``d_out``."""
    slots, width = memory
    if name == "lstm":
        cell = LSTMCell(d_input, hidden)
    elif name == "mann":
        cell = MANNCell(d_input, hidden, memory_size=slots, memory_width=width, num_heads=heads)
    elif name == "nmn":
        cell = NMNCell(d_input, hidden, memory_size=slots, memory_width=width)
    elif name == "ntm":
        cell = NTMCell(d_input, hidden, memory_size=slots, memory_width=width, num_read_heads=heads)
    else:
        raise ValueError(f"cells: expected names from {CELLS}, got {name!r}")
    return ReadoutCell(cell, d_out)


def train_sg(
    sg: SyntheticGradients,
    loss_fn: Callable,
    get_batch: Callable[[int], dict],
    *,
    steps: int,
    seed: int,
    lr: float,
    lr_sg: float,
    method: str,
    log_every: int = 50,
    eval_fn: Callable | None = None,
):
    """Train θ (and φ for ``method="sg"``); return ``(theta, phi, history, seconds)``.

    ``get_batch(step)`` gives ``{"xs", "aux"[, "context"]}`` (numpy). ``history`` holds a row
    per ``log_every`` steps with the loss, the cosine metrics and ``eval_fn(theta)``'s dict.
    """
    if method not in ("bptt", "sg"):
        raise ValueError(f"method: expected 'bptt' or 'sg', got {method!r}")
    if method == "bptt":
        sg = dataclass_replace(sg, mix_lambda=1.0, warmup_steps=0)
    k_theta, k_phi = jax.random.split(jax.random.key(seed))
    theta = sg.cell.init_params(k_theta)
    phi = sg.init_params(k_phi, theta)
    opt, opt_sg, step = _stepper(sg, loss_fn, method, lr, lr_sg)
    state = (theta, phi, opt.init(theta), opt_sg.init(phi))
    history, start = [], time.perf_counter()
    for i in range(steps):
        batch = jax.tree_util.tree_map(jnp.asarray, get_batch(i))
        state, loss, metrics = step(state, batch, jnp.asarray(i))
        if (i + 1) % log_every == 0 or i + 1 == steps:
            row = {"step": i + 1, "loss": float(loss)}
            row.update({k: float(v) for k, v in metrics.items()})
            if eval_fn is not None:
                row.update(eval_fn(state[0]))
            history.append(row)
    return state[0], state[1], history, time.perf_counter() - start


@functools.lru_cache(maxsize=32)
def _stepper(sg, loss_fn, method, lr, lr_sg):
    """One jitted update per (spec, loss, method, rates): seeds share the compile."""
    opt, opt_sg = optax.chain(optax.clip_by_global_norm(50.0), optax.adam(lr)), optax.adam(lr_sg)
    grads = sg.gradients(loss_fn)

    @jax.jit
    def step(state, batch, i):
        theta, phi, s_t, s_p = state
        out = grads(theta, phi, batch["xs"], batch["aux"], batch.get("context"), step=i)
        u, s_t = opt.update(out.theta_grads, s_t, theta)
        theta = optax.apply_updates(theta, u)
        if method == "sg":
            v, s_p = opt_sg.update(out.phi_grads, s_p, phi)
            phi = optax.apply_updates(phi, v)
        return (theta, phi, s_t, s_p), out.loss, out.metrics

    return opt, opt_sg, step


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def median(values) -> float:
    return float(np.median(np.asarray(values, float)))


def plot_series(path, series: dict, *, xlabel: str, ylabel: str, title: str, logy=False) -> None:
    """Lines with distinct colours and markers, legend outside the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    markers = "osD^vP*X<>"
    for n, (name, (x, y)) in enumerate(series.items()):
        ax.plot(
            x,
            y,
            marker=markers[n % len(markers)],
            markersize=4,
            label=name,
            color=plt.cm.tab10(n % 10),
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
