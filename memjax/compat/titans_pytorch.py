r"""titans-pytorch 0.5.5 ``NeuralMemory`` as a :class:`~memjax.models.titans.TitansLMM`.

:func:`titans_pytorch_lmm` is the layer that computes what the port computes (its options and
defaults); :func:`convert_state_dict` converts the port's weights for it, and
:func:`from_state_dict` does both, reading the sizes from the weights.

The input is the module's ``state_dict`` as a mapping of NumPy arrays (``{k: v.numpy() for k, v in
module.state_dict().items()}``, or an ``np.load`` of a saved ``.npz``), so memjax never imports
torch. With the layer of :func:`titans_pytorch_lmm` (same ``chunk_size``, ``batch_size`` and
``max_lr`` as the port) the converted params give the port's output (tested to ≤ 1e-5 in
float32 against fixtures made with titans-pytorch 0.5.5; ``tests/fixtures/titans_pytorch``).

Mapping (torch ``Linear`` weights are ``(out, in)``, memjax's ``(in, out)``: transposed; ``H``
heads of size ``d``, ``D = d_model``):

* ``store_norm.weight`` ``(D,)`` → ``pre_norm.store``; ``retrieve_norm.weight`` →
  ``pre_norm.retrieve``;
* ``to_keys.weight``, ``to_values.weight``, ``to_queries.weight`` ``(H d, D)`` → ``qkv.w``
  ``(D, 3 H d)``, columns ``[k | v | q]``;
* ``to_adaptive_step.0.weight`` / ``.bias`` → ``gates.theta.w`` ``(D, H)`` / ``gates.theta.b``;
  ``to_momentum.0.*`` → ``gates.eta``; ``to_decay_factor.0.*`` → ``gates.alpha``;
* ``memory_model_parameters.{i}`` (the learned per-head initial weights, in the order of the
  port's memory model parameters: ResidualNorm's ``norm.gamma``, then ``model.weights.{l}``) →
  ``memory.gamma`` ``(H, d)`` and ``memory.layers[l].w`` ``(H, d_in, d_out)``;
* ``retrieve_gate.0.weight`` ``(H, D)`` (heads > 1) → ``out_gate.w`` ``(D, H)``
  (``output_gate="head"``);
* ``combine_heads.weight`` ``(D, H d)`` (heads > 1) → ``out.w``; with one head the port has no
  output projection and ``out.w`` is the identity;
* ``memory_model.*`` — the port's unused template copy of the memory model — ignored (its key
  names tell the memory's structure).

Per-head initial weights without a head axis (``per_head_learned_parameters=False``) are
broadcast to every head; a memory without the ResidualNorm wrapper
(``mem_model_norm_add_residual=False``) maps to ``residual_norm=False``.

**Not supported** (a key they add raises ``ValueError`` naming the port option): ``activation``
(``to_queries.0.weight``…), ``qk_rmsnorm``, ``post_rmsnorm``, ``per_parameter_lr_modulation``,
``learned_momentum_combine``, ``momentum_order > 1``, ``momentum=False``, ``num_kv_per_token >
1``, ``attn_pool_chunks``, ``accept_weight_residual``, ``gated_transition``, memory models other
than ``MemoryMLP``. Options that leave no trace in the state dict must be at the port's defaults
for the outputs to agree — not checkable here: ``store_memory_loss_fn`` (mean squared error),
``adaptive_step_transform`` (``sigmoid · max_lr``: pass the same ``max_lr``), ``max_grad_norm``
(``None``), ``spectral_norm_surprises``, ``store_with_lookahead_value``,
``qkv_receives_diff_views``, a tuple ``chunk_size``, ``batch_size`` other than ``None`` or
``chunk_size``, the MLP's activation (GELU).

Example:
    >>> import numpy as np
    >>> from memjax.compat.titans_pytorch import infer_config
    >>> memory = {"norm.gamma": (16,), "model.weights.0": (16, 64), "model.weights.1": (64, 16)}
    >>> sd = {"to_keys.weight": np.zeros((32, 32)), "to_adaptive_step.0.weight": np.zeros((2, 32))}
    >>> for i, (name, shape) in enumerate(memory.items()):
    ...     sd[f"memory_model.{name}"] = np.zeros(shape)  # the port's template copy
    ...     sd[f"memory_model_parameters.{i}"] = np.zeros((2, *shape))  # per head
    >>> infer_config(sd)
    {'d_model': 32, 'num_heads': 2, 'd_head': 16, 'depth': 2, 'expansion': 4, 'residual_norm': True}
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_positive_int
from memjax.models.titans.lmm import TitansLMM

__all__ = ["convert_state_dict", "from_state_dict", "infer_config", "titans_pytorch_lmm"]


def titans_pytorch_lmm(
    d_model: int,
    num_heads: int = 1,
    d_head: int | None = None,
    chunk_size: int = 1,
    batch_size: int | None = None,
    **overrides,
) -> TitansLMM:
    r"""The :class:`~memjax.models.titans.TitansLMM` that computes what titans-pytorch 0.5.5
    ``NeuralMemory`` computes (the port's preset).

    Arguments as the port's ``NeuralMemory(dim=d_model, heads=num_heads,
    dim_head=d_head, chunk_size=chunk_size, batch_size=batch_size)`` with its defaults
    otherwise (``MemoryMLP`` depth 2, expansion 4, in the ``LN(out)·(1+γ) + x`` wrapper,
    momentum order 1, ``default_step_transform_max_lr=1``, pre-RMSNorm, no post / qk norm,
    no activation, no grad-norm clamp). ``d_head`` defaults to ``d_model`` (the port's
    ``dim_head``), not ``d_model // num_heads``.

    ``batch_size`` (the port's TTT batch): ``None`` → ``grad_point="initial"`` (every
    gradient at the learned :math:`W_0`), ``chunk_size`` → ``"chunk_start"``; other
    multiples of the chunk are not supported. Sets ``gate_granularity="chunk_step"``,
    ``read_point="token"`` (together: the port's update and read, :mod:`memjax.models.titans.lmm`),
    ``loss_reduction="mean"``, ``max_grad_norm=None``, ``pre_norm=True`` (ε: float32's machine
    epsilon, as ``torch.nn.RMSNorm``), ``output_gate="head"`` when ``num_heads > 1`` (else
    none), no conv, SiLU, ℓ2-norm, persistent tokens or output norm. With one head the port
    has no output projection: :func:`convert_state_dict` sets
    ``out`` to the identity. Fresh params start at the port's mean initial gates
    (:math:`\theta = \text{max\_lr}/2`, :math:`\eta = \alpha = 1/2`; its biases are
    centred on 0). ``overrides`` replace any field (e.g. ``max_lr``, ``depth``,
    ``expansion``, ``dtype``).

    Example:
        >>> from memjax.compat.titans_pytorch import titans_pytorch_lmm
        >>> layer = titans_pytorch_lmm(32, num_heads=2, d_head=16, chunk_size=4)
        >>> layer.gate_granularity, layer.grad_point, layer.output_gate
        ('chunk_step', 'initial', 'head')
    """
    check_positive_int("chunk_size", chunk_size)
    if batch_size is None:
        grad_point = "initial"
    elif batch_size == chunk_size and not isinstance(batch_size, bool):
        grad_point = "chunk_start"
    else:
        raise ValueError(
            f"batch_size: expected None or chunk_size ({chunk_size}), got {batch_size!r} "
            "(other TTT batch sizes of titans-pytorch are not supported)"
        )
    max_lr = overrides.get("max_lr", 1.0)
    fields = dict(
        d_model=d_model,
        num_heads=num_heads,
        d_head=d_model if d_head is None else d_head,
        chunk_size=chunk_size,
        depth=2,
        expansion=4,
        activation="gelu",
        bias=False,
        residual_norm=True,
        loss_reduction="mean",
        max_grad_norm=None,
        max_lr=max_lr,
        theta_init=0.5 * max_lr,
        eta_init=0.5,
        alpha_init=0.5,
        gate_granularity="chunk_step",
        grad_point=grad_point,
        read_point="token",
        conv_width=0,
        qkv_silu=False,
        qk_l2norm=False,
        num_persistent=0,
        pre_norm=True,
        pre_norm_eps=float(jnp.finfo(overrides.get("dtype", "float32")).eps),
        output_norm=False,
        output_gate="head" if num_heads > 1 else False,
    )
    fields.update(overrides)
    return TitansLMM(**fields)


_UNSUPPORTED = (
    (r"to_(queries|keys|values)\.\d+\.", "activation (an activation after the q/k/v projections)"),
    (r"[qk]_norm\.", "qk_rmsnorm"),
    (r"multihead_rmsnorm\.", "post_rmsnorm"),
    (r"to_layer_modulation\.", "per_parameter_lr_modulation"),
    (r"to_learned_momentum_combine\.", "learned_momentum_combine"),
    (r"to_learned_weight_residual_mix\.", "accept_weight_residual"),
    (r"transition_gate$", "gated_transition"),
    (r"reduce_to_chunk_rep\.", "attn_pool_chunks"),
)
_FIXED = {
    "store_norm.weight",
    "retrieve_norm.weight",
    "to_queries.weight",
    "to_keys.weight",
    "to_values.weight",
    "to_adaptive_step.0.weight",
    "to_adaptive_step.0.bias",
    "to_momentum.0.weight",
    "to_momentum.0.bias",
    "to_decay_factor.0.weight",
    "to_decay_factor.0.bias",
    "retrieve_gate.0.weight",
    "combine_heads.weight",
}


def _check_keys(state_dict: Mapping) -> None:
    unknown = []
    for key in state_dict:
        if key in _FIXED or key.startswith("memory_model."):
            continue
        if re.fullmatch(r"memory_model_parameters\.\d+", key):
            continue
        hint = next((opt for pat, opt in _UNSUPPORTED if re.match(pat, key)), None)
        unknown.append(f"{key!r} ({'titans-pytorch option ' + hint if hint else 'unknown'})")
    if unknown:
        raise ValueError(
            "state_dict: unsupported titans-pytorch NeuralMemory keys: "
            + ", ".join(unknown)
            + " (memjax.compat.titans_pytorch converts the default NeuralMemory with MemoryMLP)"
        )
    missing = sorted(
        k
        for k in _FIXED
        - {
            "retrieve_gate.0.weight",
            "combine_heads.weight",
            "store_norm.weight",
            "retrieve_norm.weight",
        }
        if k not in state_dict
    )
    if "to_momentum.0.weight" in missing:
        raise ValueError(
            "state_dict: no 'to_momentum.0.weight': titans-pytorch momentum=False is not supported"
        )
    if missing:
        raise ValueError(f"state_dict: missing keys {missing}")


def _memory_entries(state_dict: Mapping) -> tuple[bool, list[np.ndarray]]:
    """``(residual_norm, [gamma?, w_1, ..., w_L])`` in the port's parameter order."""
    residual = "memory_model.norm.gamma" in state_dict
    template = [k for k in state_dict if k.startswith("memory_model.")]
    prefix = "memory_model.model.weights." if residual else "memory_model.weights."
    bad = [k for k in template if k != "memory_model.norm.gamma" and not k.startswith(prefix)]
    if bad or not template:
        raise ValueError(
            f"state_dict: the memory model must be titans-pytorch's MemoryMLP (optionally in "
            f"ResidualNorm); got template keys {template}"
        )
    count = sum(1 for k in state_dict if k.startswith("memory_model_parameters."))
    entries = []
    for i in range(count):
        key = f"memory_model_parameters.{i}"
        if key not in state_dict:
            raise ValueError(f"state_dict: missing {key!r}")
        entries.append(np.asarray(state_dict[key]))
    if count != len(template):
        raise ValueError(
            f"state_dict: {count} memory_model_parameters for a memory model with "
            f"{len(template)} parameters"
        )
    return residual, entries


def infer_config(state_dict: Mapping) -> dict:
    """``d_model``, ``num_heads``, ``d_head``, ``depth``, ``expansion``, ``residual_norm`` of the
    port's module, read from the shapes of its ``state_dict``."""
    residual, entries = _memory_entries(state_dict)
    weights = entries[1:] if residual else entries
    d_model = int(np.shape(state_dict["to_keys.weight"])[1])
    heads = int(np.shape(state_dict["to_adaptive_step.0.weight"])[0])
    d_head = int(weights[0].shape[-2])
    hidden = int(weights[0].shape[-1])
    if hidden % d_head:
        raise ValueError(f"state_dict: memory hidden width {hidden} is not a multiple of {d_head}")
    return dict(
        d_model=d_model,
        num_heads=heads,
        d_head=d_head,
        depth=len(weights),
        expansion=hidden // d_head if len(weights) > 1 else 4,
        residual_norm=residual,
    )


def _per_head(a: np.ndarray, heads: int, ndim: int, key: str) -> np.ndarray:
    if a.ndim == ndim - 1:  # per_head_learned_parameters=False
        return np.broadcast_to(a, (heads, *a.shape))
    if a.ndim != ndim or a.shape[0] != heads:
        raise ValueError(f"state_dict: {key!r} has shape {a.shape}, expected {heads} heads")
    return a


def convert_state_dict(state_dict: Mapping, layer: TitansLMM) -> dict:
    """memjax params for ``layer`` from a titans-pytorch ``NeuralMemory`` ``state_dict`` (module
    doc: mapping and unsupported options). Shapes are checked against ``layer.init_params``; the
    arrays are cast to ``layer.dtype``."""
    _check_keys(state_dict)
    residual, entries = _memory_entries(state_dict)
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    h, d = layer.num_heads, layer.head_size
    gate_rows = sd["to_momentum.0.weight"].shape[0]
    if gate_rows != h:
        raise ValueError(
            f"state_dict: 'to_momentum.0.weight' has {gate_rows} rows for {h} heads: "
            "titans-pytorch momentum_order > 1 is not supported"
        )
    kv_rows = sd["to_keys.weight"].shape[0]
    if kv_rows != h * d:
        raise ValueError(
            f"state_dict: 'to_keys.weight' has {kv_rows} rows for {h} heads of {d}: titans-pytorch "
            "num_kv_per_token > 1 is not supported (or the layer's heads differ)"
        )
    has_norm = "store_norm.weight" in sd, "retrieve_norm.weight" in sd
    if has_norm != (layer.pre_norm, layer.pre_norm):
        raise ValueError(
            f"state_dict: pre-norm keys {has_norm} (store, retrieve) do not match the layer's "
            f"pre_norm={layer.pre_norm} (titans-pytorch pre_rmsnorm)"
        )
    if residual != layer.residual_norm:
        raise ValueError(
            f"state_dict: the memory model {'has' if residual else 'has no'} the ResidualNorm "
            f"wrapper, the layer has residual_norm={layer.residual_norm}"
        )
    gate_key = "retrieve_gate.0.weight"
    if (gate_key in sd) != (layer.output_gate_kind == "head"):
        raise ValueError(
            f"state_dict: {'has' if gate_key in sd else 'has no'} {gate_key!r}, the layer has "
            f"output_gate={layer.output_gate!r} (expected 'head' for heads > 1, else False)"
        )
    params: dict = {
        "qkv": {
            "w": np.concatenate(
                [sd[f"to_{n}.weight"].T for n in ("keys", "values", "queries")], axis=1
            )
        },
        "gates": {
            name: {"w": sd[f"{src}.0.weight"].T, "b": sd[f"{src}.0.bias"]}
            for name, src in (
                ("theta", "to_adaptive_step"),
                ("eta", "to_momentum"),
                ("alpha", "to_decay_factor"),
            )
        },
    }
    weights = entries[1:] if residual else entries
    memory: dict = {
        "layers": tuple(
            {"w": _per_head(w, h, 3, f"memory_model_parameters.{i + residual}")}
            for i, w in enumerate(weights)
        )
    }
    if residual:
        memory["gamma"] = _per_head(entries[0], h, 2, "memory_model_parameters.0")
    params["memory"] = memory
    if layer.pre_norm:
        params["pre_norm"] = {
            "store": sd["store_norm.weight"],
            "retrieve": sd["retrieve_norm.weight"],
        }
    if gate_key in sd:
        params["out_gate"] = {"w": sd[gate_key].T}
    if "combine_heads.weight" in sd:
        params["out"] = {"w": sd["combine_heads.weight"].T}
    elif h * d == layer.d_model:
        params["out"] = {"w": np.eye(layer.d_model)}
    else:
        raise ValueError("state_dict: no 'combine_heads.weight' but heads * d_head != d_model")
    expected = jax.eval_shape(layer.init_params, jax.random.key(0))
    got = jax.tree_util.tree_map(np.shape, params)
    want = jax.tree_util.tree_map(lambda s: tuple(s.shape), expected)
    if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(want) or got != want:
        raise ValueError(
            f"state_dict: converted shapes {got} do not match the layer's params {want} (use "
            "titans_pytorch_lmm with the port's dim, heads and dim_head, or from_state_dict)"
        )
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, layer.dtype), params)


def from_state_dict(
    state_dict: Mapping,
    *,
    chunk_size: int,
    batch_size: int | None = None,
    max_lr: float = 1.0,
    **overrides,
) -> tuple[TitansLMM, dict]:
    """``(layer, params)``: :func:`titans_pytorch_lmm` with the sizes read from the
    ``state_dict`` (:func:`infer_config`) and the port's ``chunk_size``, ``batch_size`` and
    ``default_step_transform_max_lr`` (not in the state dict), and the converted params."""
    _check_keys(state_dict)
    config = infer_config(state_dict)
    residual = config.pop("residual_norm")
    d_model, heads, d_head = config.pop("d_model"), config.pop("num_heads"), config.pop("d_head")
    fields = dict(config, residual_norm=residual, max_lr=max_lr)
    fields["pre_norm"] = "store_norm.weight" in state_dict
    fields.update(overrides)
    layer = titans_pytorch_lmm(d_model, heads, d_head, chunk_size, batch_size, **fields)
    return layer, convert_state_dict(state_dict, layer)
