r"""Within-episode fast weights from synthetic gradients, and one feedback path for K networks.

Two pieces of Fast & Slow Learning (arXiv 2011.05438) whose form is **reconstructed [I]** from
its abstract: "fast" controllers that adapt within an episode, and "the feedback path can be
shared among multiple neural memory networks" [C: abstract].

**Inner loop** (:func:`inner_loop_gradients`, ``SyntheticGradients(mode="inner_loop")``) [I:
Meta Networks / MAML-with-learned-gradients style]. An episode of ``T`` steps is cut into windows
of ``W = truncate`` steps. Starting from the meta-learned :math:`\theta_0` and carrying the
cell's state across windows, window :math:`j` runs with :math:`\theta_j`, adds its loss
:math:`L_j(\theta_j)` to the episode loss, and then takes one fast step from the synthetic
gradients alone (no label needed, update unlocking):

.. math::

    \theta_{j+1} = \theta_j - \eta\, m \odot \textstyle\sum_{t \in j}
        \big(\partial u_t / \partial \theta\big)^{\top} \hat g_t, \qquad
    \hat g_t = \mathrm{SG}_\phi(\mathrm{sg}(u_t), c_t),

:math:`m` masking the ``fast_params`` and the Jacobian-vector product being the backward pass of
the window with :math:`\hat g_t` injected at the targets (:func:`~memjax.controllers.
injection.mix` with :math:`\lambda = 0`) and no loss. The fast weights are reset to
:math:`\theta_0` for every episode (also at meta-test time). The outer loss
:math:`\sum_j L_j(\theta_j)` is differentiated with respect to :math:`\theta_0` *and*
:math:`\phi` through the fast steps (second order), so both are meta-learned. During the first
``warmup_steps`` updates :math:`\eta = 0` (plain BPTT). ``loss_fn(ys, aux)`` must be a sum over
steps (it is called on each window's slice of ``ys`` and of ``aux``, whose leaves have the time
axis first). Only tap targets are allowed in this mode.

**Shared feedback path** (:func:`shared_feedback_gradients`) [I]. One :math:`\phi` serves K
networks (same or different cells whose targets have the same widths): each network gets its
:math:`\hat g` from the shared :math:`\phi`, and :math:`\phi` learns from all of them,
:math:`L_{SG} = \sum_k L^k_{SG}` — the gradient is the sum of the per-network ones.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.controllers import SyntheticGradients, shared_feedback_gradients
    >>> from memjax.memories.nmn import NMNCell
    >>> cell = NMNCell(d_input=3, d_hidden=4, memory_size=5, memory_width=3)
    >>> sg = SyntheticGradients(cell, diagnose=False)
    >>> thetas = [cell.init_params(jax.random.key(k)) for k in (0, 1)]
    >>> phi = sg.init_params(jax.random.key(2), thetas[0])
    >>> loss = lambda ys, aux: jnp.sum((ys - aux) ** 2)
    >>> xs, aux = jnp.ones((2, 4, 3)), jnp.zeros((2, 4, 4))
    >>> outs, g_phi = shared_feedback_gradients([(sg, loss, t, xs, aux) for t in thetas], phi)
    >>> len(outs), jax.tree_util.tree_structure(g_phi) == jax.tree_util.tree_structure(phi)
    (2, True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from memjax.controllers.injection import CARRY, SGOutput, cosine, flatten_steps, mix
from memjax.core import taps
from memjax.core.unroll import unroll

if TYPE_CHECKING:
    from memjax.controllers.synthetic_gradients import SyntheticGradients

__all__ = ["inner_loop_gradients", "inner_loop_predict", "shared_feedback_gradients"]


def _mask(sg: SyntheticGradients, theta):
    """1 on the ``fast_params`` subtrees of ``theta``, 0 elsewhere (all 1 for ``None``)."""
    if sg.fast_params is None:
        return jax.tree_util.tree_map(lambda a: 1.0, theta)
    if not isinstance(theta, dict):
        raise TypeError(f"fast_params: needs dict params, got {type(theta).__name__}")
    unknown = sorted(set(sg.fast_params) - set(theta))
    if unknown:
        raise ValueError(f"fast_params: {unknown} are not keys of the params {sorted(theta)}")
    return {
        k: jax.tree_util.tree_map(lambda a, on=k in sg.fast_params: float(on), v)
        for k, v in theta.items()
    }


def _window_slices(length: int, window: int) -> list[tuple[int, int]]:
    return [(s, min(s + window, length)) for s in range(0, length, window)]


def _check_inner_loop(sg: SyntheticGradients) -> None:
    if CARRY in sg.sg_targets:
        raise ValueError(f"sg_targets: mode='inner_loop' takes tap targets only, not '{CARRY}'")
    if sg.truncate is None:
        raise ValueError("truncate: the inner loop updates the fast weights once per window")


def _fast_episode(sg: SyntheticGradients, theta0, phi, x, ctx_ext, eta, mask):
    r"""One episode from :math:`\theta_0` (module doc): ``(ys per window, ĝ per target)``.

    Window :math:`j` runs with :math:`\theta_j` (its outputs are the episode's predictions),
    then :math:`\theta_{j+1} = \theta_j - \eta\, m \odot J_j^\top \hat g` from the SG alone.
    """
    cell, window = sg.cell, sg.truncate
    targets = sg.tap_targets
    names = tuple(dict.fromkeys(targets + sg.context_taps))
    length = x.shape[0]
    theta, carry = theta0, cell.init_carry(theta0)
    ys_windows, ghats = [], {n: [] for n in targets}
    for start, stop in _window_slices(length, window):
        x_w = x[start:stop]

        def run(th, c, x_w=x_w):
            return unroll(cell, th, c, x_w, precompute=sg.precompute)

        (ys, new_carry), found = taps.collect_taps(run, names)(theta, carry)
        ys_windows.append(ys)
        parts = [jax.lax.stop_gradient(found[n]).reshape(stop - start, -1) for n in sg.context_taps]
        if sg.d_context:
            parts.append(ctx_ext[start:stop])
        ctx = jnp.concatenate(parts, -1) if parts else jnp.zeros((stop - start, 0), x.dtype)
        ghat = {
            n: jax.vmap(lambda u, c, n=n: sg.predict(phi, n, u, c))(
                jax.lax.stop_gradient(found[n]), ctx
            )
            for n in targets
        }
        for n in targets:
            ghats[n].append(ghat[n])

        def injected(th, c=carry, run=run, ghat=ghat):
            combine = lambda u, g: mix(u, g, 0.0)
            (ys, _), _ = taps.collect_taps(lambda th, c: run(th, c), targets, perturb=combine)(
                ghat, th, c
            )
            return ys

        ys0, vjp = jax.vjp(injected, theta)
        (fast,) = vjp(jnp.zeros_like(ys0))
        theta = jax.tree_util.tree_map(lambda p, g, m: p - eta * m * g, theta, fast, mask)
        carry = new_carry
    return ys_windows, {n: jnp.concatenate(v) for n, v in ghats.items()}


def inner_loop_predict(sg: SyntheticGradients) -> Callable:
    r"""``fn(theta, phi, xs, context=None) -> ys``: meta-test predictions *with* the fast steps.

    Each episode (leading batch axis of ``xs (B, T, ...)``) starts from the meta-learned
    :math:`\theta_0 =` ``theta`` (the fast weights are reset per episode), window :math:`j`
    predicts with :math:`\theta_j`, then one fast step from the synthetic gradients alone,
    :math:`\theta_{j+1} = \theta_j - \eta\, m \odot \sum_{t \in j} (\partial u_t /
    \partial\theta)^\top \mathrm{SG}_\phi(u_t, c_t)` with :math:`\eta =` ``sg.inner_lr`` (the
    training warm-up does not apply). No labels or loss enter the fast steps, except through
    the SG's context ``c_t`` (context taps and the external ``context (B, T, d_context)``).
    ``ys (B, T, ...)`` are exactly the per-window outputs :func:`inner_loop_gradients` scores
    in training.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.controllers import SyntheticGradients, inner_loop_predict
        >>> from memjax.memories.nmn import NMNCell
        >>> cell = NMNCell(d_input=3, d_hidden=4, memory_size=5, memory_width=3)
        >>> sg = SyntheticGradients(cell, mode="inner_loop", truncate=2, diagnose=False)
        >>> theta = cell.init_params(jax.random.key(0))
        >>> phi = sg.init_params(jax.random.key(1), theta)
        >>> inner_loop_predict(sg)(theta, phi, jnp.ones((2, 5, 3))).shape
        (2, 5, 4)
    """
    if sg.mode != "inner_loop":
        raise ValueError(f"mode: inner_loop_predict needs mode='inner_loop', got {sg.mode!r}")
    _check_inner_loop(sg)

    def fn(theta, phi, xs, context=None):
        sg._check_batch(xs, context)
        ctx_ext = context if sg.d_context else jnp.zeros((*xs.shape[:2], 0), xs.dtype)
        mask = _mask(sg, theta)
        eta = jnp.asarray(sg.inner_lr, jax.tree_util.tree_leaves(theta)[0].dtype)

        def episode(x, c):
            ys_windows, _ = _fast_episode(sg, theta, phi, x, c, eta, mask)
            return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *ys_windows)

        return jax.vmap(episode)(xs, ctx_ext)

    return fn


def inner_loop_gradients(sg: SyntheticGradients, loss_fn: Callable) -> Callable:
    """``fn(theta, phi, xs, aux, context=None, *, step=0) -> SGOutput`` (module doc).

    ``metrics``: ``lambda`` (0: the fast step uses only the SG), ``inner_lr`` (the effective
    :math:`\\eta`), ``cosine_true/<target>`` (the inner loop's :math:`\\hat g_t` against the
    true :math:`\\delta_t` of plain BPTT at :math:`\\theta_0`) and ``loss_first``/``loss_last``
    (the first and last windows' mean losses: fast learning lowers the later ones).
    """
    _check_inner_loop(sg)

    def episode(theta0, phi, x, aux, ctx_ext, eta, mask):
        ys_windows, ghats = _fast_episode(sg, theta0, phi, x, ctx_ext, eta, mask)
        losses = []
        for (start, stop), ys in zip(_window_slices(x.shape[0], sg.truncate), ys_windows):
            aux_w = jax.tree_util.tree_map(lambda a, s=start, e=stop: a[s:e], aux)
            losses.append(loss_fn(ys, aux_w))
        return sum(losses), (losses[0], losses[-1], ghats)

    def fn(theta, phi, xs, aux, context=None, *, step=0, predictions=None):
        sg._check_batch(xs, context)
        if predictions is not None:
            raise ValueError("predictions: not supported in mode='inner_loop'")
        mask = _mask(sg, theta)  # validates fast_params before any array work
        ctx_ext = context if sg.d_context else jnp.zeros((*xs.shape[:2], 0), xs.dtype)
        eta = jnp.where(jnp.asarray(step) < sg.warmup_steps, 0.0, sg.inner_lr)

        def meta(theta, phi):
            per = jax.vmap(
                lambda x, a, c: episode(theta, phi, x, a, c, eta, mask), in_axes=(0, 0, 0)
            )(xs, aux, ctx_ext)
            total, (first, last, ghats) = per
            return jnp.mean(total), (jnp.mean(first), jnp.mean(last), ghats)

        (loss, (first, last, ghats)), (g_theta, g_phi) = jax.value_and_grad(
            meta, argnums=(0, 1), has_aux=True
        )(theta, phi)
        metrics = {
            "lambda": jnp.asarray(0.0),
            "inner_lr": eta,
            "loss_first": first,
            "loss_last": last,
        }
        if sg.diagnose:
            true = sg.true_targets(loss_fn, theta, xs, aux)
            for n in sg.tap_targets:
                c = cosine(flatten_steps(jax.lax.stop_gradient(ghats[n])), flatten_steps(true[n]))
                metrics[f"cosine_true/{n}"] = jnp.mean(c)
        return SGOutput(loss, g_theta, g_phi, metrics)

    return fn


@functools.lru_cache(maxsize=64)
def _compiled(sg: SyntheticGradients, loss_fn: Callable) -> Callable:
    """One jitted gradient function per (spec, loss): networks sharing both share a compile."""
    return jax.jit(sg.gradients(loss_fn))


def shared_feedback_gradients(
    members: Sequence[tuple], phi: dict, *, step=0
) -> tuple[list[SGOutput], dict]:
    """Gradients of K networks that share one feedback path ``phi`` (module doc).

    Args:
        members: ``(sg, loss_fn, theta, xs, aux)`` or ``(sg, loss_fn, theta, xs, aux,
            context)`` per network; each ``sg`` must have SG params shaped like ``phi``.
        phi: the shared SG params.
        step: the update count (``λ`` warm-up).

    Returns:
        ``(outputs, phi_grads)``: each network's :class:`~memjax.controllers.SGOutput` and the
        sum of their ``phi`` gradients.
    """
    if not members:
        raise ValueError("members: expected at least one network, got none")
    want = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), phi)
    outs = []
    for k, member in enumerate(members):
        if not isinstance(member, tuple) or len(member) not in (5, 6):
            raise ValueError(
                f"members[{k}]: expected (sg, loss_fn, theta, xs, aux[, context]), got {member!r}"
            )
        sg, loss_fn, theta, xs, aux, *rest = member
        shapes = jax.eval_shape(lambda t, sg=sg: sg.init_params(jax.random.key(0), t), theta)
        got = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), shapes)
        if got != want:
            raise ValueError(f"members[{k}]: its SG params {got} do not match phi {want}")
        outs.append(_compiled(sg, loss_fn)(theta, phi, xs, aux, *rest, step=step))
    g_phi = jax.tree_util.tree_map(lambda *g: sum(g), *(o.phi_grads for o in outs))
    return outs, g_phi
