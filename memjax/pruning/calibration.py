r"""Filter scores of every layer of a model from a calibration batch, through taps.

:func:`score_layers` runs the model's pure apply function over a calibration batch in chunks,
collects each layer's input and raw output through :mod:`memjax.core.taps` (the layer named
``L`` taps ``"L:in"`` and ``"L:out"``, and ``"L:act"`` after its nonlinearity for HRank, as the
:mod:`memjax.models.cnn` models do), and scores every listed layer with one method:

* ``"beta_rank"`` — :func:`~memjax.pruning.beta_rank_scores` (``mode``, ``reduce``); the batch
  sums of each chunk are accumulated (:func:`~memjax.pruning.beta_rank_statistics`), so the
  result equals scoring the whole batch at once, at the memory cost of one chunk;
* ``"l1"`` — :func:`~memjax.pruning.l1_scores` (no data needed);
* ``"hrank"`` — :func:`~memjax.pruning.hrank_scores` of the ``"L:act"`` maps, averaged over the
  whole batch;
* ``"random"`` — :func:`~memjax.pruning.random_scores` (needs ``key``).

A layer is ``(name, kernel path in params, spec)`` with a :class:`memjax.nn.Conv2D` spec (stride,
padding and dilation are read from it) or a :class:`memjax.nn.Dense` spec (scored as a 1×1
convolution over a 1×1 map: the receptive field is the whole input vector); the memjax CNNs list
theirs in ``conv_layers()``. The result is keyed by the kernel's variable name
(``"params/conv1/kernel"``), the key :func:`~memjax.pruning.group_scores` reads.

**Calibration data** (spec ``beta_rank.md`` §3.1): the paper mode wants a user-given batch of at
least ``min_batch = 512`` images without augmentation (an error otherwise; lower ``min_batch``
knowingly); ``code_compat`` accepts the authors' single batch (128 on CIFAR, 16 on ISIC/IDRiD).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import LeNet5
    >>> from memjax.pruning import score_layers
    >>> net = LeNet5(channels=(2, 3), hidden=(4, 4))
    >>> params = net.init_params(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (16, 32, 32, 1))
    >>> fn = lambda p, x: net.apply(p, {}, x)[0]
    >>> scores = score_layers("beta_rank", fn, params, x, net.conv_layers()[:2],
    ...                       mode="code_compat", chunk_size=8)
    >>> {k: v.shape for k, v in scores.items()}
    {'params/conv1/kernel': (2,), 'params/conv2/kernel': (3,)}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.taps import collect_taps
from memjax.nn import Conv2D, Dense
from memjax.pruning.baselines import hrank_scores, l1_scores, random_scores
from memjax.pruning.groups import path_name
from memjax.pruning.scores import beta_rank_from_statistics, beta_rank_statistics, minmax

__all__ = ["METHODS", "score_layers"]

METHODS = ("beta_rank", "l1", "hrank", "random")


def _leaf(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _as_conv(spec, kernel, x, y):
    """``(kernel HWIO, x NHWC, y NHWC, geometry)`` of a Conv2D or a Dense layer."""
    if isinstance(spec, Conv2D):
        return (
            kernel,
            x,
            y,
            {"stride": spec.stride, "padding": spec.padding_pairs, "dilation": spec.dilation},
        )
    if isinstance(spec, Dense):
        d_in, d_out = kernel.shape
        return (
            jnp.reshape(kernel, (1, 1, d_in, d_out)),
            jnp.reshape(x, (-1, 1, 1, d_in)),
            jnp.reshape(y, (-1, 1, 1, d_out)),
            {"stride": 1, "padding": "VALID", "dilation": 1},
        )
    raise TypeError(f"layers: expected memjax.nn.Conv2D or Dense specs, got {type(spec).__name__}")


def score_layers(
    method: str,
    apply_fn: Callable,
    params,
    batch,
    layers: Sequence,
    *,
    mode: str = "paper",
    reduce: str = "sum",
    normalize="default",
    chunk_size: int = 128,
    min_batch: int | None = None,
    key=None,
) -> dict:
    """Scores ``{kernel name: (C_out,)}`` of ``layers`` (module doc).

    Args:
        method: one of :data:`METHODS`.
        apply_fn: ``apply_fn(params, x) -> anything``, tapping ``"<layer>:in"``/``":out"``
            (and ``":act"`` for HRank).
        params: the model's params (the kernels are read from them).
        batch: the calibration images, e.g. ``(N, H, W, C)``.
        layers: ``(name, kernel path in params, Conv2D or Dense spec)`` triples.
        mode, reduce: Beta-Rank's options.
        normalize: ``"minmax"`` or ``None``; ``"default"``: ``"minmax"`` for Beta-Rank
            (the method's own), ``None`` for the baselines.
        chunk_size: images per forward pass.
        min_batch: the smallest accepted batch (default 512 for ``mode="paper"`` Beta-Rank,
            else 1).
        key: a PRNG key for ``"random"``.
    """
    check_choice("method", method, METHODS)
    check_positive_int("chunk_size", chunk_size)
    check_array("batch", batch, floating=True)
    if normalize == "default":
        normalize = "minmax" if method == "beta_rank" else None
    check_choice("normalize", normalize, ("minmax", None))
    if min_batch is None:
        min_batch = 512 if (method == "beta_rank" and mode == "paper") else 1
    n = batch.shape[0]
    if n < min_batch:
        raise ValueError(
            f"batch: {method} ({mode}) wants a calibration batch of at least "
            f"min_batch={min_batch} images, got {n}; pass min_batch= to use fewer"
        )
    layers = tuple(layers)
    kernels = {name: _leaf(params, path) for name, path, _ in layers}
    keys = {name: path_name(("params", *path)) for name, path, _ in layers}
    if method == "l1":
        return {keys[name]: l1_scores(kernels[name], normalize=normalize) for name, _, _ in layers}
    if method == "random":
        if key is None:
            raise ValueError("key: the random method needs a PRNG key")
        subkeys = jax.random.split(key, len(layers))
        return {
            keys[name]: random_scores(
                k,
                spec.out_channels if isinstance(spec, Conv2D) else spec.d_out,
                normalize=normalize,
            )
            for (name, _, spec), k in zip(layers, subkeys)
        }
    wanted = (
        [f"{name}:act" for name, _, _ in layers]
        if method == "hrank"
        else [f"{name}:{kind}" for name, _, _ in layers for kind in ("in", "out")]
    )
    collect = jax.jit(collect_taps(apply_fn, wanted))
    try:
        jax.eval_shape(collect, params, batch[:chunk_size])
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(
            f"batch: a calibration batch shaped {tuple(batch.shape)} does not fit the model "
            f"(or lacks the taps {wanted[:2]}...): {err}"
        ) from err
    totals: dict = {}
    shapes: dict = {}
    for start in range(0, n, chunk_size):
        _, taps = collect(params, batch[start : start + chunk_size])
        count = taps[wanted[0]].shape[0]
        for name, _, spec in layers:
            if method == "hrank":
                ranks = hrank_scores(taps[f"{name}:act"]) * count
                totals[name] = totals.get(name, 0.0) + ranks
                continue
            k, x, y, geometry = _as_conv(
                spec, kernels[name], taps[f"{name}:in"], taps[f"{name}:out"]
            )
            previous = totals.get(name)
            shift = None if previous is None else (previous.in_shift, previous.out_shift)
            stats = beta_rank_statistics(k, x, y, layout="NHWC", mode=mode, shift=shift, **geometry)
            if previous is not None:
                stats = stats._replace(
                    **{
                        f: getattr(previous, f) + getattr(stats, f)
                        for f in ("count", "in_sum", "in_sq", "out_sum", "out_sq")
                    }
                )
            totals[name] = stats
            shapes[name] = (k, x.shape, y.shape, geometry)
    out = {}
    for name, _, _ in layers:
        if method == "hrank":
            scores = totals[name] / n
            out[keys[name]] = scores if normalize is None else minmax(scores)
            continue
        k, x_shape, y_shape, geometry = shapes[name]
        out[keys[name]] = beta_rank_from_statistics(
            totals[name],
            k,
            conv_input_shape=x_shape,
            conv_output_shape=y_shape,
            layout="NHWC",
            mode=mode,
            reduce=reduce,
            normalize=normalize,
            **geometry,
        )
    return out
