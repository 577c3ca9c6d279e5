r"""Coupled channel groups, found by tracing the model's pure apply function.

Removing output channel :math:`k` of a conv removes more than its filter: its bias, its
BatchNorm scale, shift and running statistics, the matching input slice of every layer that
reads it, and — through a residual add — the channel it is summed with, with everything *that*
channel touches. DepGraph (Fang et al., CVPR 2023, arXiv 2301.12900; Torch-Pruning) finds these
*groups* by tracing a PyTorch model; :func:`trace_groups` does it for any pure JAX function
(memjax models, Equinox or Flax NNX models split into a function and a pytree, plain code).

**How.** ``jax.make_jaxpr`` turns ``fn(params, *inputs)`` into a jaxpr; one forward pass over it
follows, for every array axis, which positions hold which *channels*:

* a contraction (``conv_general_dilated``, ``dot_general``) whose weight is a traced variable
  **produces** one fresh channel per output position (the filters), and its contracted input
  axis makes that weight's input slice a **member** of the channels that flow in;
* a depthwise convolution (``feature_group_count = C_in``) passes channels through (output
  :math:`o` reads input :math:`\lfloor o/m \rfloor`), its filters members of them; other
  grouped convolutions keep their channels unpruned;
* elementwise ops (activations, BatchNorm arithmetic, bias adds) pass channels through; a
  variable meeting a channel elementwise (bias, BN scale/shift, running mean/var) is a member; two
  channels meeting (a **residual add**) are united;
* ``concatenate`` places each operand's channels at its offset; ``pad`` and ``slice`` shift them;
  ``reshape`` follows a channel axis merged with others (flatten ``(H, W, C) -> HWC`` gives
  feature :math:`f` the channel :math:`f \bmod C`; NCHW's ``(C, H, W)`` gives
  :math:`\lfloor f / HW \rfloor`), and the next dense layer's rows become members;
* pooling (``reduce_window`` over spatial axes), reductions, transposes and broadcasts keep them.

A channel meeting data that cannot shrink (input pixels, a constant varying along channels)
or reaching an output of ``fn`` (the logits) is *fixed*: its group is reported unprunable. An
operation the tracer has no rule for raises :class:`UntraceableOpError` naming it, unless
``on_unknown="fix"`` (then the channels through it are kept unpruned).

**Groups.** Channels united into one class form a *unit* (pruned or kept as a whole); units
linked through a shared producer form a :class:`Group`, whose ``size`` is its number of units.
Each :class:`Member` says which positions of which axis of which variable belong to which unit,
so surgery (:mod:`memjax.pruning.surgery`) can slice every array consistently. The unit order is
the channel order of the group's widest producer (its ``name``).

**The result depends on the structure only.** Trace with any input of the right shape; trace
models in evaluation mode (BatchNorm from running statistics) and return only the logits, as
every output's channels are fixed.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.pruning import trace_groups
    >>> def mlp(params, x):
    ...     h = jax.nn.relu(x @ params["w1"] + params["b1"][None])
    ...     return h @ params["w2"]
    >>> params = {"w1": jnp.ones((3, 4)), "b1": jnp.zeros(4), "w2": jnp.ones((4, 2))}
    >>> groups = trace_groups(mlp, params, jnp.ones((5, 3)))
    >>> [(g.name, g.size, g.prunable) for g in groups]
    [('params/w1', 4, True), ('params/w2', 2, False)]
    >>> [(m.name, m.axis, m.role) for m in groups[0].members]
    [('params/b1', 0, 'feature'), ('params/w1', 1, 'out'), ('params/w2', 0, 'in')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from memjax.core.checks import check_choice
from memjax.pruning._flow import Info, Tracer, UntraceableOpError
from memjax.pruning._rules import RULES

__all__ = ["Group", "Member", "UntraceableOpError", "path_name", "trace_groups", "tree_paths"]


def _key(entry):
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return str(entry)


def path_name(path) -> str:
    """``("params", "blocks", 0, "conv1", "kernel") -> "params/blocks/0/conv1/kernel"``."""
    return path if isinstance(path, str) else "/".join(str(p) for p in path)


def tree_paths(tree, prefix: tuple = ()) -> list[tuple]:
    """The key path of every leaf of ``tree`` (flattening order) as plain tuples, after
    ``prefix``: dict keys, sequence indices and attribute names."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [prefix + tuple(_key(e) for e in path) for path, _ in flat]


@dataclasses.dataclass(frozen=True)
class Member:
    """One parameter axis in a group: position ``positions[i]`` of ``axis`` of the variable at
    ``path`` belongs to unit ``units[i]``.

    ``role``: ``"out"`` (a producer's filters), ``"in"`` (a consumer's input slice),
    ``"feature"`` (per-channel vectors: bias, BatchNorm scale/shift/statistics) or
    ``"depthwise"`` (a depthwise convolution's filters).
    """

    path: tuple
    axis: int
    positions: np.ndarray
    units: np.ndarray
    role: str

    @property
    def name(self) -> str:
        """The path as ``"a/b/c"``."""
        return path_name(self.path)


@dataclasses.dataclass(frozen=True)
class Group:
    """Channels that are pruned together (module doc).

    Attributes:
        name: the name of the variable of the widest producer (the unit order).
        size: the number of units.
        members: every (variable, axis, positions → units) the units touch.
        producers: the names of the variables that produce the group's channels.
        prunable: ``False`` when a unit is fixed (``reason`` says why).
        reason: why the group cannot be pruned, or ``None``.
    """

    name: str
    size: int
    members: tuple[Member, ...]
    producers: tuple[str, ...]
    prunable: bool
    reason: str | None = None

    def member(self, name: str, axis: int | None = None) -> Member:
        """The member of variable ``name`` (a path or ``"a/b"``), on ``axis`` if given."""
        name = path_name(name)
        found = [m for m in self.members if m.name == name and axis in (None, m.axis)]
        if len(found) != 1:
            raise KeyError(
                f"name: group {self.name!r} has {len(found)} members {name!r}"
                f"{'' if axis is None else f' on axis {axis}'}"
            )
        return found[0]


def trace_groups(
    fn: Callable,
    params,
    *inputs,
    model_state=None,
    on_unknown: str = "raise",
) -> tuple[Group, ...]:
    """The coupled channel groups of ``fn(params, *inputs)`` (module doc).

    Args:
        fn: a pure function ``fn(params, *inputs)``, or ``fn(params, model_state, *inputs)``
            when ``model_state`` is given; only its structure matters.
        params: a pytree of arrays; member paths start with ``"params"``.
        *inputs: example inputs (any values of the right shapes).
        model_state: an optional second pytree (BatchNorm running statistics); its member
            paths start with ``"model_state"``.
        on_unknown: ``"raise"`` (default): an op with no channel rule that channels reach
            raises :class:`UntraceableOpError`; ``"fix"``: keep those channels unpruned.

    Returns:
        The groups, in the order their first producer is traced.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    check_choice("on_unknown", on_unknown, ("raise", "fix"))
    trees = (params,) if model_state is None else (params, model_state)
    names = ("params",) if model_state is None else ("params", "model_state")
    paths = [p for tree, n in zip(trees, names) for p in tree_paths(tree, (n,))]
    closed = jax.make_jaxpr(fn)(*trees, *inputs)
    jaxpr = closed.jaxpr
    n_leaves = len(paths)
    tracer = Tracer([path_name(p) for p in paths], on_unknown, RULES)
    ins = []
    for k, var in enumerate(jaxpr.invars):
        shape = tuple(var.aval.shape)
        if k < n_leaves:
            prov = {
                a: ((k, a, np.arange(n, dtype=np.int64)),) for a, n in enumerate(shape) if n > 1
            }
            ins.append(Info(shape, True, {}, frozenset(), prov))
        else:
            ins.append(Info(shape, False))
    outs = tracer.run(jaxpr, closed.consts, ins)
    for info in outs:
        tracer.fix(info.channels(), "reaches an output of fn")
    return _assemble(tracer, paths)


def _assemble(tracer: Tracer, paths) -> tuple[Group, ...]:
    n = len(tracer.parent)
    if n == 0:
        return ()
    root = np.array([tracer.find(i) for i in range(n)])
    node_of = np.empty(n, np.int64)
    for k, (_, first, count) in enumerate(tracer.nodes):
        node_of[first : first + count] = k
    # nodes are linked when their channels share a class
    link = list(range(len(tracer.nodes)))

    def find(i):
        while link[i] != i:
            link[i] = link[link[i]]
            i = link[i]
        return i

    first_node: dict[int, int] = {}
    for i in range(n):
        r, k = int(root[i]), int(node_of[i])
        if r in first_node:
            a, b = find(first_node[r]), find(k)
            if a != b:
                link[max(a, b)] = min(a, b)
        else:
            first_node[r] = k
    comps: dict[int, list[int]] = {}
    for k in range(len(tracer.nodes)):
        comps.setdefault(find(k), []).append(k)
    fixed = {}
    for i, reason in tracer.fixed.items():
        fixed.setdefault(int(root[i]), reason)
    unit_of: dict[int, tuple[int, int]] = {}  # class root -> (group index, unit)
    order = sorted(comps)
    infos = []
    for g, comp in enumerate(order):
        nodes = comps[comp]

        def classes(k):
            _, first, count = tracer.nodes[k]
            return list(dict.fromkeys(root[first : first + count].tolist()))

        leader = max(nodes, key=lambda k: (len(classes(k)), -k))
        units = classes(leader)
        seen = set(units)
        rest = sorted({int(r) for k in nodes for r in classes(k)} - seen)
        units += rest
        for u, r in enumerate(units):
            unit_of[r] = (g, u)
        reasons = [fixed[r] for r in units if r in fixed]
        infos.append((tracer.nodes[leader][0], len(units), nodes, reasons))
    members: list[list[Member]] = [[] for _ in order]
    for (leaf, axis), entries in sorted(tracer.members.items()):
        by_group: dict[int, list[tuple[int, int]]] = {}
        for pos, cid in sorted(entries.items()):
            g, u = unit_of[int(root[cid])]
            by_group.setdefault(g, []).append((pos, u))
        for g, pairs in by_group.items():
            pos, units = (np.array(v, np.int64) for v in zip(*pairs))
            members[g].append(Member(paths[leaf], axis, pos, units, tracer.roles[(leaf, axis)]))
    groups = []
    for (name, size, nodes, reasons), mem in zip(infos, members):
        producers = tuple(dict.fromkeys(tracer.nodes[k][0] for k in nodes))
        groups.append(
            Group(name, size, tuple(mem), producers, not reasons, reasons[0] if reasons else None)
        )
    return tuple(groups)
