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
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.controllers import SyntheticGradients
from memjax.core.spec import spec
from memjax.core.unroll import unroll
from memjax.memories.mann import MANNCell
from memjax.memories.nmn import NMNCell
from memjax.memories.ntm import NTMCell
from memjax.nn.dense import Dense
from memjax.nn.lstm import LSTMCell
from memjax.train import draw_lines, legend_outside, write_results_table

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
    phi=None,
    eval_with_phi: bool = False,
):
    """Train θ (and φ for ``method="sg"``); return ``(theta, phi, history, seconds)``.

    ``phi`` starts the SG from given params (a transferred feedback path) instead of
    ``sg.init_params``.

    ``get_batch(step)`` gives ``{"xs", "aux"[, "context"]}`` (numpy). ``history`` holds a row
    per ``log_every`` steps with the loss, the cosine metrics and ``eval_fn(theta)``'s dict
    (``eval_fn(theta, phi)`` with ``eval_with_phi``: an evaluation that uses the SG, e.g. the
    inner loop's fast steps).
    """
    if method not in ("bptt", "sg"):
        raise ValueError(f"method: expected 'bptt' or 'sg', got {method!r}")
    if method == "bptt":
        sg = dataclass_replace(sg, mix_lambda=1.0, warmup_steps=0, diagnose=False)
    k_theta, k_phi = jax.random.split(jax.random.key(seed))
    theta = sg.cell.init_params(k_theta)
    phi = sg.init_params(k_phi, theta) if phi is None else phi
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
                row.update(eval_fn(state[0], state[1]) if eval_with_phi else eval_fn(state[0]))
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


@functools.lru_cache(maxsize=32)
def predictor(cell) -> Callable:
    """``fn(theta, xs (B, T, d_in)) -> ys (B, T, d_out)``: the untruncated forward pass, jitted
    once per cell (the evaluation of every experiment here)."""

    @jax.jit
    def fn(theta, xs):
        return jax.vmap(lambda x: unroll(cell, theta, cell.init_carry(theta), x)[0])(xs)

    return fn


def make_sg(cell, *, method: str, window: int | None, length: int, mode: str = "dni", **options):
    """The :class:`SyntheticGradients` of one run.

    Memory cells (a ``"write"`` tap) get a write SG (``options``: ``d_context``, ``mix_lambda``,
    ...), with ``mode="inner_loop"`` fast weights updated once per window of ``window`` steps; a
    plain LSTM gets the carry SG at windows of ``window`` steps (``λ = 0``); ``method="bptt"``
    with ``window=None`` is full BPTT (one window spanning the sequence).
    """
    if "write" in cell.tap_names and (window is None or mode == "inner_loop"):
        truncate = window if mode == "inner_loop" else None
        return SyntheticGradients(cell, ("write",), mode=mode, truncate=truncate, **options)
    options.pop("mix_lambda", None)
    truncate = length if window is None else window
    return SyntheticGradients(cell, ("carry",), truncate=truncate, mix_lambda=0.0, **options)


def updates_to(history: list[dict], key: str, threshold: float, *, above: bool) -> int | None:
    """The first logged step where ``history[key]`` reaches ``threshold`` (``None``: never)."""
    for row in history:
        if (row[key] >= threshold) if above else (row[key] <= threshold):
            return row["step"]
    return None


def plot_series(
    path,
    series: dict,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
    chance: float | None = None,
    chance_label: str = "chance",
) -> None:
    """Lines in distinct styles (:func:`memjax.train.draw_lines`), the legend outside the data,
    and ``chance`` as a dotted grey line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    draw_lines(ax, series, legend=False)
    if chance is not None:
        ax.axhline(chance, color="0.3", linestyle=":", linewidth=1.6, label=chance_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_outputs(run, name: str, rows, *, title: str, notes: dict, plot: dict) -> None:
    """``results.md`` (table + notes), ``<name>.png`` (:func:`plot_series` with ``plot``) and
    ``summary.json`` in the run folder; prints the table."""
    write_results_table(run.out_dir / "results.md", rows, title=title, notes=notes)
    plot_series(run.out_dir / f"{name}.png", **plot)
    (run.out_dir / "summary.json").write_text(json.dumps(rows, indent=1, default=str))
    print((run.out_dir / "results.md").read_text(), flush=True)
