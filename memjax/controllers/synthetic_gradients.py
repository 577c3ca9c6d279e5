r"""Synthetic gradients for any :class:`memjax.core.Cell`: fast controllers, a slow feedback path.

Fast & Slow Learning (Fernando, Denman, Sridharan & Fookes 2020, arXiv 2011.05438) decouples
the learning of a memory network's controllers: a *feedback path* predicts the gradient of the
task loss with respect to a controller's output, the controller learns *fast* from that
prediction, and the feedback path learns *slowly* from the true gradient; one feedback path can
be shared by several memory networks. **Only the paper's abstract is confirmed [C].** Everything
below is a reconstruction from the DNI literature (Jaderberg et al. 2017, arXiv 1608.05343,
"DNI"; Czarnecki et al. 2017) — the tags say which: [C] confirmed in a named source, [L]
literature fact, [I] inferred/reconstructed (not the paper's text), [D] checked numerically here.

**The SG model** [C for DNI, I for this paper]. For each target :math:`u_t` named in
``sg_targets`` — a tap of the cell (:mod:`memjax.core.taps`; the NMN/NTM/MANN cells tap their
``"write"`` interface, the default) or ``"carry"``, the carry entering each truncation window
(DNI for RNNs, §3.2 of DNI; works for a plain LSTM, which has no taps) —

.. math::

    \hat g_t = \mathrm{SG}_\phi(u_t, c_t) = s \cdot \mathrm{MLP}_\phi([u_t \,\|\, c_t])
    \approx \delta_t = \partial L / \partial u_t ,

with scale :math:`s = 0.1` and the MLP's last layer zero-initialised, so :math:`\hat g = 0` at
first (DNI's RNN conventions [C: koz4k/dni-pytorch]). The context :math:`c_t` (cDNI) is the
values of ``context_taps`` at step ``t`` and an external per-step ``context`` (e.g. the one-hot
label) [C for cDNI; I: which context a write SG needs].

**The fast update** (``mode="dni"``, update unlocking). The forward pass is unchanged; in
reverse mode the cotangent sent *upstream* of a target is

.. math::

    \bar u_t \leftarrow \lambda\, \bar u_t + (1 - \lambda)\, \hat g_t ,

:math:`\bar u_t` being the cotangent arriving from the later computation. With :math:`\lambda =
0` the controller's parameters :math:`\theta` get exactly the gradient of the surrogate
:math:`\sum_t \langle \mathrm{stop\_gradient}(\hat g_t), u_t(\theta)\rangle` through the local
Jacobian :math:`\partial u_t/\partial\theta` (nothing later flows back through :math:`u_t`),
plus the true gradient of every path that avoids the targets. :math:`\lambda` blends SG and
backprop (1 = backprop only [C: ixaxaar/pytorch-dni's convention]); for the first
``warmup_steps`` updates :math:`\lambda = 1` (pure BPTT warm-up, koz4k issue #2 [C]). At a
truncation boundary there is no backprop, so the ``"carry"`` target receives
:math:`(1-\lambda)\hat g` (:func:`memjax.core.cut`). One update is one forward and one backward
pass of the windows plus the SG nets: each tap target's :math:`\hat g_t` is predicted at the tap
from the value there. Only a context built from ``context_taps``, or an external ``context``,
needs the targets' values before that pass, and then costs one more forward pass.

**SG-with-oracle ≡ BPTT** [D]. If :math:`\hat g_t` is the true :math:`\delta_t` for every target
(``predictions=``), the fast update equals the BPTT gradient exactly, for any :math:`\lambda`:
every node's adjoint is a sum over its consumers, and the one consumer edge that changed now
carries the true adjoint. ``tests/controllers`` checks it in float64.

**The slow update** [C for DNI's loss; I for this paper]. The same backward pass gives each
target's *training target* :math:`\tilde\delta_t`, the cotangent that reached :math:`u_t` — with
:math:`\lambda = 1` and no truncation the true :math:`\delta_t` for all :math:`t` from one
backward pass through taps; with :math:`\lambda < 1` or truncation windows it contains the later
synthetic gradients (DNI's *bootstrapped* target, TD(λ)-like [C: koz4k README]); for
``"carry"`` it is :math:`\partial L/\partial c` at the start of each window (the window's
gradient plus the SG injected at its end). :math:`\phi` minimises

.. math::

    L_{SG}(\phi) = \textstyle\sum_{\text{targets}} \operatorname{mean}_{b,t}
        \lVert \mathrm{SG}_\phi(\mathrm{sg}(u_t), c_t) - \mathrm{sg}(\tilde\delta_t)\rVert^2 .

**Diagnostic.** Every call reports ``cosine/<target>`` (mean over batch and steps of
:math:`\cos(\hat g_t, \tilde\delta_t)`) and, for tap targets, ``cosine_true/<target>`` against
the true :math:`\delta_t` of untruncated BPTT (one extra backward pass; ``diagnose=False`` skips
it). An SG for the write controller sees only the present while its true gradient depends on
future reads; where the context cannot predict them the cosine stays near 0 [D in the spec's
random-label toy]. ``mode="inner_loop"`` (within-episode fast weights) and the shared feedback
path are in :mod:`memjax.controllers.fast_weights`.

**Losses.** ``loss_fn(ys, aux) -> scalar`` is one sequence's loss, ``ys (T, d_out)`` the cell's
outputs, ``aux`` any pytree of per-sequence arrays (targets). Batches are ``xs (B, T, d_in)``,
``aux`` with leading axis ``B`` and ``context (B, T, d_context)``; the reported loss and
:math:`\theta` gradient are means over the batch, the SG predicts one sequence's gradient.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.controllers import SyntheticGradients
    >>> from memjax.memories.nmn import NMNCell
    >>> cell = NMNCell(d_input=3, d_hidden=4, memory_size=5, memory_width=3)
    >>> sg = SyntheticGradients(cell, sg_targets=("write",), mix_lambda=0.0)
    >>> theta = cell.init_params(jax.random.key(0))
    >>> phi = sg.init_params(jax.random.key(1), theta)
    >>> loss_fn = lambda ys, aux: jnp.sum((ys - aux) ** 2)
    >>> xs, aux = jnp.ones((2, 6, 3)), jnp.zeros((2, 6, 4))
    >>> out = jax.jit(sg.gradients(loss_fn))(theta, phi, xs, aux)
    >>> sorted(out.metrics)
    ['cosine/write', 'cosine_true/write', 'lambda', 'sg_loss/write']
    >>> float(out.metrics["cosine/write"])            # zero-initialised SG predicts 0
    0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from memjax.controllers.fast_weights import inner_loop_gradients
from memjax.controllers.injection import (
    CARRY,
    MODES,
    SGOutput,
    cosine,
    flat_size,
    flatten,
    flatten_steps,
    mix,
    unflatten,
)
from memjax.core import taps
from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.protocol import Cell
from memjax.core.spec import spec
from memjax.core.unroll import unroll
from memjax.nn.activations import ACTIVATIONS
from memjax.nn.mlp import MLP

__all__ = ["SyntheticGradients"]

_BOUNDARY = "_sg_window_carry"
_INLINE = True  # predict ĝ inside the injecting pass where possible (tests switch it off)


def _check_names(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple):
        raise TypeError(f"{name}: expected a tuple of names, got {value!r}")
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"{name}: expected names (str), got {v!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name}: expected distinct names, got {value!r}")
    return value


def _check_fraction(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")


@spec
class SyntheticGradients:
    """Synthetic gradients for ``cell`` (module doc). A frozen, hashable spec.

    Args:
        cell: any :class:`~memjax.core.Cell`.
        sg_targets: tap names of the cell and/or ``"carry"`` (the carry entering each
            truncation window; needs ``truncate``).
        context_taps: taps of the cell whose per-step values join the SG's context.
        d_context: width of the external per-step ``context`` (0: none).
        hidden: hidden widths of the SG MLP (``()``: a linear SG).
        activation: the MLP's activation.
        scale: the SG output scale ``s``.
        zero_init: zero the MLP's last layer.
        mix_lambda: ``λ ∈ [0, 1]`` after warm-up (1 = backprop only, 0 = SG only).
        warmup_steps: updates of pure BPTT (``λ = 1``) before the SG is switched on.
        truncate: truncation window length (``None``: whole sequences).
        mode: ``"dni"`` (update unlocking) or ``"inner_loop"`` (within-episode fast weights,
            :mod:`memjax.controllers.fast_weights`).
        inner_lr: the fast learning rate ``η`` of ``mode="inner_loop"``.
        fast_params: top-level keys of the cell's params updated in the inner loop
            (``None``: all).
        diagnose: also report the cosine against the true untruncated ``δ`` (tap targets).
        precompute: unroll with the cell's input-projection hook
            (:func:`memjax.core.unroll` ``precompute=True``; same values up to rounding).
    """

    cell: Any
    sg_targets: tuple[str, ...] = ("write",)
    context_taps: tuple[str, ...] = ()
    d_context: int = 0
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    scale: float = 0.1
    zero_init: bool = True
    mix_lambda: float = 0.5
    warmup_steps: int = 0
    truncate: int | None = None
    mode: str = "dni"
    inner_lr: float = 0.1
    fast_params: tuple[str, ...] | None = None
    diagnose: bool = True
    precompute: bool = False

    def __post_init__(self):
        if not isinstance(self.cell, Cell):
            raise TypeError(
                f"cell: expected a Cell (init_params, init_carry, step), got {self.cell!r}"
            )
        _check_names("sg_targets", self.sg_targets)
        _check_names("context_taps", self.context_taps)
        if not self.sg_targets:
            raise ValueError("sg_targets: expected at least one target, got ()")
        known = tuple(getattr(self.cell, "tap_names", ()))
        for group, names in (("sg_targets", self.sg_targets), ("context_taps", self.context_taps)):
            unknown = [
                n for n in names if n not in known and not (group == "sg_targets" and n == CARRY)
            ]
            if unknown:
                raise ValueError(
                    f"{group}: {unknown} are not taps of {type(self.cell).__name__} "
                    f"(its taps: {', '.join(known) or 'none'}; '{CARRY}' targets the carry at "
                    "truncation windows)"
                )
        if (
            isinstance(self.d_context, bool)
            or not isinstance(self.d_context, int)
            or self.d_context < 0
        ):
            raise ValueError(f"d_context: expected an int >= 0, got {self.d_context!r}")
        if not isinstance(self.hidden, tuple):
            raise TypeError(f"hidden: expected a tuple of widths, got {self.hidden!r}")
        for width in self.hidden:
            check_positive_int("hidden", width)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if (
            isinstance(self.scale, bool)
            or not isinstance(self.scale, int | float)
            or not self.scale > 0
        ):
            raise ValueError(f"scale: expected a positive number, got {self.scale!r}")
        _check_fraction("mix_lambda", self.mix_lambda)
        if (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ValueError(f"warmup_steps: expected an int >= 0, got {self.warmup_steps!r}")
        if self.truncate is not None:
            check_positive_int("truncate", self.truncate)
        check_choice("mode", self.mode, MODES)
        if CARRY in self.sg_targets and self.truncate is None:
            raise ValueError(
                f"truncate: the '{CARRY}' target needs truncation windows; pass truncate"
            )
        if self.mode == "inner_loop" and self.truncate is None:
            raise ValueError("truncate: mode='inner_loop' updates the fast weights once per window")
        if (
            isinstance(self.inner_lr, bool)
            or not isinstance(self.inner_lr, int | float)
            or self.inner_lr < 0
        ):
            raise ValueError(f"inner_lr: expected a number >= 0, got {self.inner_lr!r}")
        if self.fast_params is not None:
            _check_names("fast_params", self.fast_params)
        if not isinstance(self.precompute, bool):
            raise TypeError(f"precompute: expected a bool, got {self.precompute!r}")

    # ----------------------------------------------------------------- shapes and the SG model

    @property
    def tap_targets(self) -> tuple[str, ...]:
        """The targets that are taps (not ``"carry"``)."""
        return tuple(n for n in self.sg_targets if n != CARRY)

    def _example_x(self, theta):
        dtype = jax.tree_util.tree_leaves(theta)[0].dtype
        shape = getattr(self.cell, "input_shape", (self.cell.d_input,))
        return jnp.zeros(shape, dtype)

    def step_shapes(self, theta) -> dict:
        """Per-step shapes of the tapped targets and context taps, and of the carry."""
        names = tuple(dict.fromkeys(self.tap_targets + self.context_taps))
        carry = jax.eval_shape(self.cell.init_carry, theta)
        out = {}
        if names:
            fn = taps.collect_taps(self.cell.step, names)
            x = self._example_x(theta)
            _, found = jax.eval_shape(lambda p, c: fn(p, c, x), theta, self.cell.init_carry(theta))
            out.update(found)
        out[CARRY] = carry
        return out

    def context_width(self, theta) -> int:
        """Width of :math:`c_t`: the flattened context taps plus ``d_context``."""
        shapes = self.step_shapes(theta)
        return sum(flat_size(shapes[n]) for n in self.context_taps) + self.d_context

    def mlp(self, d_target: int, d_context: int) -> MLP:
        """The SG network ``[u ‖ c] -> ĝ`` for a target of width ``d_target``."""
        dtype = "float32"
        return MLP((d_target + d_context, *self.hidden, d_target), self.activation, dtype=dtype)

    def init_params(self, key: jax.Array, theta) -> dict:
        """``φ``: one MLP per target (last layer zero with ``zero_init``)."""
        shapes = self.step_shapes(theta)
        d_ctx = self.context_width(theta)
        dtype = jax.tree_util.tree_leaves(theta)[0].dtype
        phi = {}
        for name, k in zip(self.sg_targets, jax.random.split(key, len(self.sg_targets))):
            mlp = self.mlp(flat_size(shapes[name]), d_ctx)
            layers = list(mlp.init_params(k))
            if self.zero_init:
                layers[-1] = jax.tree_util.tree_map(jnp.zeros_like, layers[-1])
            phi[name] = jax.tree_util.tree_map(lambda a: a.astype(dtype), tuple(layers))
        return phi

    def predict(self, phi: dict, name: str, u, ctx: jax.Array):
        """``ĝ = s·MLP([u ‖ c])`` for one step's target ``u`` (a pytree) and context ``c``."""
        v = flatten(u)
        layers = phi[name]
        widths = (layers[0]["kernel"].shape[0], *(p["kernel"].shape[1] for p in layers))
        mlp = MLP(widths, self.activation, dtype=str(layers[0]["kernel"].dtype))
        out = self.scale * mlp(layers, jnp.concatenate([v, ctx.astype(v.dtype)]))
        return unflatten(out, u)

    def mixing(self, step) -> jax.Array:
        """``λ`` at update ``step``: 1 during warm-up, then ``mix_lambda``."""
        return jnp.where(jnp.asarray(step) < self.warmup_steps, 1.0, self.mix_lambda)

    # ----------------------------------------------------------------- the passes

    def _run(self, theta, xs, *, truncate, boundary=None, boundary_tap=None):
        carry = self.cell.init_carry(theta)
        return unroll(
            self.cell,
            theta,
            carry,
            xs,
            truncate=truncate,
            boundary=boundary,
            boundary_tap=boundary_tap,
            precompute=self.precompute,
        )[0]

    def _context(self, found, context, batch: int, length: int, dtype):
        parts = [
            jax.lax.stop_gradient(found[n]).reshape(batch, length, -1) for n in self.context_taps
        ]
        if self.d_context:
            parts.append(context.astype(dtype))
        if not parts:
            return jnp.zeros((batch, length, 0), dtype)
        return jnp.concatenate([p.astype(dtype) for p in parts], -1)

    def _check_batch(self, xs, context):
        check_array("xs", xs, ndim=3, floating=True)
        if self.d_context:
            if context is None:
                raise ValueError(f"context: expected (B, T, {self.d_context}) arrays, got None")
            check_array("context", context, shape=(*xs.shape[:2], self.d_context), floating=True)
        elif context is not None:
            raise ValueError("context: this SyntheticGradients has d_context=0; pass none")

    def _inline_targets(self, theta, predictions, carry_shape) -> tuple[str, ...]:
        """The tap targets whose ĝ pass 2 predicts at the tap itself, so that no separate forward
        pass is needed: possible when the SG has no context (its input is the tap's value alone)
        and the targets are arrays whose per-step shapes tell them apart (from each other and
        from the carry leaves, which pass through the same injection at window starts)."""
        if not _INLINE or self.context_taps or self.d_context:
            return ()
        shapes = self.step_shapes(theta)
        keys = []  # the injected tap targets (oracle ones too), each told apart by its shape
        for n in self.tap_targets:
            if not isinstance(shapes[n], jax.ShapeDtypeStruct):
                return ()
            keys.append((shapes[n].shape, jnp.dtype(shapes[n].dtype)))
        leaves = [] if carry_shape is None else jax.tree_util.tree_leaves(carry_shape)
        carry_keys = {(s.shape, jnp.dtype(s.dtype)) for s in leaves}
        if len(set(keys)) != len(keys) or carry_keys & set(keys):
            return ()
        return tuple(n for n in self.tap_targets if n not in predictions)

    def true_targets(self, loss_fn: Callable, theta, xs, aux, names=None) -> dict:
        """:math:`\\delta_t = \\partial L_b/\\partial u_t` for tapped targets by untruncated BPTT
        (one backward pass through taps); each ``(B, T, ...)``."""
        names = self.tap_targets if names is None else tuple(names)

        def total(theta, xs, aux):
            ys = taps.vmap(lambda x: self._run(theta, x, truncate=None))(xs)
            return jnp.sum(jax.vmap(loss_fn)(ys, aux))

        _, _, grads = taps.tap_gradients(total, names)(theta, xs, aux)
        return grads

    def gradients(self, loss_fn: Callable) -> Callable:
        """``fn(theta, phi, xs, aux, context=None, *, step=0, predictions=None) -> SGOutput``.

        ``predictions`` (name → ``(B, T, ...)``, for ``"carry"`` ``(B, windows-1, ...)``)
        replaces the SG's outputs (the oracle test). In ``mode="inner_loop"`` the call is
        :func:`memjax.controllers.fast_weights.inner_loop_gradients`.
        """
        if not callable(loss_fn):
            raise TypeError(f"loss_fn: expected a callable (ys, aux) -> scalar, got {loss_fn!r}")
        if self.mode == "inner_loop":
            return inner_loop_gradients(self, loss_fn)

        def fn(theta, phi, xs, aux, context=None, *, step=0, predictions=None):
            self._check_batch(xs, context)
            return self._dni(loss_fn, theta, phi, xs, aux, context, step, predictions)

        return fn

    def _dni(self, loss_fn, theta, phi, xs, aux, context, step, predictions):
        batch, length = xs.shape[:2]
        dtype = xs.dtype
        lam = self.mixing(step)
        tap_t = self.tap_targets
        # one window spanning the sequence has no boundary: the carry target is then unused
        use_carry = CARRY in self.sg_targets and self.truncate < length
        active = tap_t + ((CARRY,) if use_carry else ())
        predictions = {} if predictions is None else dict(predictions)
        unknown = sorted(set(predictions) - set(self.sg_targets))
        if unknown:
            raise ValueError(f"predictions: {unknown} are not sg_targets {self.sg_targets}")

        window = self.truncate
        n_windows = 0 if window is None else -(-length // window)
        carry_shape = jax.eval_shape(self.cell.init_carry, theta)
        inline = self._inline_targets(theta, predictions, carry_shape if use_carry else None)

        # pass 1, only where some ĝ must be known before pass 2 (a context built from taps, or a
        # target that can neither be predicted at its tap nor is given): the forward values of
        # the tapped targets and context taps. Otherwise pass 2's tap values are the SG inputs.
        separate = any(n not in inline and n not in predictions for n in tap_t)
        names1 = tap_t + self.context_taps if separate or self.context_taps else ()
        names1 = tuple(dict.fromkeys(names1))
        found = {}
        if names1:
            fwd = taps.collect_taps(
                lambda th, xs: taps.vmap(lambda x: self._run(th, x, truncate=self.truncate))(xs),
                names1,
            )
            _, found = fwd(theta, xs)
            found = jax.lax.stop_gradient(found)
        ctx = self._context(found, context, batch, length, dtype)

        def predict_all(phi, name, values, ctx_b):
            one = lambda u, c: self.predict(phi, name, u, c)
            return jax.vmap(jax.vmap(one))(values, ctx_b)

        ghat = {n: predictions.get(n) for n in tap_t}
        for n in tap_t:
            if ghat[n] is None and n not in inline:
                ghat[n] = predict_all(phi, n, found[n], ctx)
        ghat = jax.lax.stop_gradient(ghat)

        # pass 2: forward + one backward with the SGs injected; targets = cotangents at the taps.
        # An inline target's perturbation is zeros: its ĝ is predicted at the tap from the value
        # there (the same value pass 1 would give: the forward is the same), plus the zeros, whose
        # cotangent is the training target.
        step_shapes = self.step_shapes(theta)
        perturb = {
            n: jnp.zeros((batch, length, *step_shapes[n].shape), step_shapes[n].dtype)
            if n in inline
            else ghat[n]
            for n in tap_t
        }
        by_shape = {(step_shapes[n].shape, jnp.dtype(step_shapes[n].dtype)): n for n in inline}
        no_ctx = jnp.zeros((0,), dtype)

        def combine(u, g):
            name = by_shape.get((u.shape, jnp.dtype(u.dtype)))
            if name is not None:
                g = (
                    jax.lax.stop_gradient(self.predict(phi, name, jax.lax.stop_gradient(u), no_ctx))
                    + g
                )
            return mix(u, g, lam)

        if use_carry:
            perturb[_BOUNDARY] = jax.tree_util.tree_map(
                lambda s: jnp.zeros((batch, n_windows - 1, *s.shape), s.dtype), carry_shape
            )
        oracle_carry = predictions.get(CARRY)

        def sequence(theta, x, ctx_b, oracle_b):
            def boundary(carry, index):
                if oracle_b is not None:
                    g = jax.tree_util.tree_map(lambda a: a[index - 1], oracle_b)
                else:
                    c = ctx_b[index * window - 1]
                    g = self.predict(phi, CARRY, jax.lax.stop_gradient(carry), c)
                return jax.tree_util.tree_map(lambda a: (1 - lam).astype(a.dtype) * a, g)

            return self._run(
                theta,
                x,
                truncate=window,
                boundary=boundary if use_carry else None,
                boundary_tap=_BOUNDARY if use_carry else None,
            )

        names2 = tap_t + ((_BOUNDARY,) if use_carry else ())

        def total(theta, deltas):
            def batched(theta):
                seq = lambda x, c, o: sequence(theta, x, c, o)
                axes = (0, 0, None if oracle_carry is None else 0)
                ys = taps.vmap(seq, in_axes=axes, axis_size=batch)(xs, ctx, oracle_carry)
                return jnp.sum(jax.vmap(loss_fn)(ys, aux))

            value, values = taps.collect_taps(batched, names2, perturb=combine)(deltas, theta)
            return value, values

        (value, values), (g_theta, targets) = jax.value_and_grad(
            total, argnums=(0, 1), has_aux=True
        )(theta, perturb)
        g_theta = jax.tree_util.tree_map(lambda g: g / batch, g_theta)
        targets = jax.lax.stop_gradient(targets)
        found.update({n: jax.lax.stop_gradient(values[n]) for n in tap_t if n not in found})
        sg_inputs = {n: found[n] for n in tap_t}
        if use_carry:
            sg_inputs[CARRY] = jax.lax.stop_gradient(values[_BOUNDARY])
            targets[CARRY] = targets.pop(_BOUNDARY)
            starts = jnp.arange(1, n_windows) * window - 1
            carry_ctx = ctx[:, starts]

        def sg_loss(phi):
            losses, preds = {}, {}
            for n in active:
                c = carry_ctx if n == CARRY else ctx
                pred = predict_all(phi, n, sg_inputs[n], c)
                diff = jax.tree_util.tree_map(
                    lambda p, t: (p - t).reshape(*p.shape[:2], -1), pred, targets[n]
                )
                sq = sum(jnp.sum(d**2, -1) for d in jax.tree_util.tree_leaves(diff))
                losses[n] = jnp.mean(sq)
                preds[n] = pred
            return sum(losses.values(), jnp.zeros((), dtype)), (losses, preds)

        (_, (losses, preds)), g_phi = jax.value_and_grad(sg_loss, has_aux=True)(phi)
        metrics = {"lambda": lam}
        for n in active:
            if n == CARRY:
                used = oracle_carry if oracle_carry is not None else preds[n]
            else:  # an inline ĝ is the prediction from the same φ and inputs: preds[n]
                used = preds[n] if n in inline else ghat[n]
                ghat[n] = used
            metrics[f"cosine/{n}"] = jnp.mean(
                cosine(flatten_steps(used), flatten_steps(targets[n]))
            )
            metrics[f"sg_loss/{n}"] = losses[n]
        if self.diagnose and tap_t:
            true = self.true_targets(loss_fn, theta, xs, aux)
            for n in tap_t:
                metrics[f"cosine_true/{n}"] = jnp.mean(
                    cosine(flatten_steps(ghat[n]), flatten_steps(true[n]))
                )
        return SGOutput(value / batch, g_theta, g_phi, metrics)
