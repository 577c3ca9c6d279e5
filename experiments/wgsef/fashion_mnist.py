"""Filter sparsity at exactly k filters per layer on Fashion-MNIST (LeNet-5), shrunk and timed.

    python -m experiments.wgsef.fashion_mnist                     # cpu preset (minutes)
    python -m experiments.wgsef.fashion_mnist --preset gpu        # the paper's networks
    python -m experiments.wgsef.fashion_mnist --resume            # continue an interrupted run
    python -m experiments.wgsef.fashion_mnist --preset tiny       # smoke run (seconds)

**The gpu preset** trains the paper's networks (arXiv 2212.12921: VGG-16, ResNet-18,
MobileNetV1, which it trains on CIFAR-10) on the full Fashion-MNIST training set, zero-padded
to 32×32 (CIFAR-10 is not available offline here; Fashion-MNIST is one of the paper's
datasets): ``vgg16`` — :data:`memjax.models.cnn.VGG16` with BatchNorm, its 13 convs' filters;
``resnet18`` — :class:`memjax.models.cnn.ResNet18`, ResNet-18 with projection shortcuts
(four stages × two basic blocks, widths 64-128-256-512, 1×1 conv + BatchNorm shortcuts where
stride or width changes) and the CIFAR stem (3×3 stride 1, no max-pool), the filters of each
block's first conv (each stage's residual stream is one coupled group, so its channels are not
selected); ``mobilenet_v1`` —
:class:`memjax.models.cnn.MobileNetV1` (stride-1 stem), the filters of the stem and of the
13 pointwise convs, each depthwise conv and BatchNorm coupled to the filters it follows.
``k`` for these is a fraction of each layer's filters (``ks=("0.5", "0.25")``).
``width_multiplier`` scales every network's widths (the tests run all three at 16×16 with a
small multiplier: one WGSEF step, exactly k, removal, masked == shrunk logits).

Data: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (``memjax.data.fashion_mnist_split``,
``n_train_per_class`` images per class from the official training set, ``n_test_per_class`` from
the official test set), scaled to [0, 1] and standardised. Model: LeNet-5 (``memjax.models.cnn``,
28×28 input, conv widths 6 and 16). Groups: the filters of ``conv1`` and ``conv2`` with their
biases (``filter`` grouping); ``k = {"conv1": a, "conv2": b}`` per layer.

Each method (``experiments.wgsef.common``) runs through ``memjax.train.train`` with phases —
sparse training (``sparse_steps``; HSPG: half Prox-SG, half half-space), a transition to exactly
k filters per layer, and fine-tuning (``finetune_steps``) with the pruned filters frozen, by
the method's own optimizer with the penalty off (ProxSGD with λ = 0 after WGSEF, momentum SGD
otherwise: SGD at lr 0.05 after ProxSGD training was measured to collapse to chance) — and
logs the non-zero filters of each layer (``metrics_fn``). ``wgsef`` (ProxSGD with λ·WGSEF) lands
on exactly k by the top-k projection by ``z_j``, ``wgsef_prox`` by one prox step at
:func:`memjax.sparsity.lam_for_k`'s λ (the same survivors, but shrunk by ``1/(1 + λ)``: measured
below, LeNet-5 does not recover from that shrinkage). Magnitude pruning fine-tunes the dense
run. Every final network is then **physically shrunk** (``memjax.pruning.trace_groups`` +
``materialize``): the table gives its test accuracy, parameters, FLOPs per image, measured CPU
latency (one table per architecture: jitted forward, batch ``latency_batch``, the fastest of
``latency_repeats`` calls, the calls of all networks interleaved) and the largest logit difference
between the masked and the shrunk network. Writes ``results.md``, ``accuracy_vs_filters.png``
and ``summary.json`` into ``runs/wgsef/fashion_mnist/<preset>/<model>``. ``--set
model=vgg_small`` runs a small VGG-style CNN with BatchNorm (coupled to its conv's filters).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common.outputs import report, run_notes, write_outputs
from experiments.wgsef.common import (
    finetune_optimizer,
    latency_ms,
    sparse_optimizer,
)
from memjax import pruning
from memjax.data import fashion_mnist_split
from memjax.models.cnn import VGG, VGG16, LeNet5, MobileNetV1, ResNet18
from memjax.sparsity import (
    keep_zero_groups,
    layer_masks,
    nonzero_groups_per_layer,
    prox_sgd,
    top_k_masks,
    top_k_transition,
    tree_groups,
)
from memjax.train import Phase, TrainConfig, parse_args, train, write_results_table


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """The experiment's fields beyond :class:`memjax.train.TrainConfig`."""

    n_train_per_class: int = 500
    n_test_per_class: int = 200
    batch_size: int = 64
    sparse_steps: int = 400
    finetune_steps: int = 150
    lr: float = 0.05
    ks: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("wgsef", "wgsef_prox", "group_lasso", "hspg", "magnitude")
    lam_wgsef: float = 0.1
    lam_group_lasso: float = 0.05
    lam_hspg: float = 0.05
    latency_batch: int = 1024
    latency_repeats: int = 100
    model: str = "lenet5"
    models: tuple[str, ...] = ()
    image_size: int = 0
    width_multiplier: float = 1.0
    log_every: int = 25
    checkpoint_every: int = 200


PRESETS = {
    "cpu": {},
    "gpu": {
        "n_train_per_class": 5999,
        "n_test_per_class": 999,
        "batch_size": 128,
        "sparse_steps": 6000,
        "finetune_steps": 2000,
        "checkpoint_every": 1000,
        "log_every": 100,
        "models": ("vgg16", "resnet18", "mobilenet_v1"),
        "ks": ("0.5", "0.25", "0.125"),
        "latency_batch": 256,
    },
    "tiny": {  # a smoke run: seconds, not a result
        "n_train_per_class": 6,
        "n_test_per_class": 3,
        "batch_size": 8,
        "sparse_steps": 2,
        "finetune_steps": 2,
        "methods": ("wgsef",),
        "ks": ("2:3",),
        "latency_batch": 4,
        "latency_repeats": 1,
        "log_every": 2,
        "checkpoint_every": 1000,
    },
}
PRESETS["tpu"] = dict(PRESETS["gpu"])
MODELS = ("lenet5", "vgg_small", "vgg16", "resnet18", "mobilenet_v1")
PAPER_MODELS = ("vgg16", "resnet18", "mobilenet_v1")

DEFAULT_KS = {
    "lenet5": ("4:8", "3:5", "2:3"),
    "vgg_small": ("8:16:32", "4:8:16", "2:4:8"),
    **dict.fromkeys(PAPER_MODELS, ("0.5", "0.25", "0.125")),
}


def _scaled(c: int, alpha: float) -> int:
    return max(1, round(alpha * c))


def build(model: str, width_multiplier: float = 1.0):
    """``(net, filter layer names, couplings, description, image size)`` of ``model``: the
    layers whose filters are grouped and the ``couple`` of :func:`memjax.sparsity.tree_groups`
    (BatchNorm, and for MobileNetV1 the depthwise convs, joined to the filters they follow).
    ``width_multiplier`` scales the widths of ``vgg16``, ``resnet18`` and ``mobilenet_v1``."""
    a = width_multiplier
    if model == "lenet5":
        return LeNet5(image_size=28), ("conv1", "conv2"), {}, "LeNet-5 (28×28, conv 6:16)", 28
    if model == "vgg_small":
        net = VGG(cfg=(16, "M", 32, "M", 64), hidden=64, num_classes=10, in_channels=1)
        convs = tuple(f"conv{i}" for i in range(3))
        return (
            net,
            convs,
            {f"bn{i}": f"conv{i}" for i in range(3)},
            ("VGG-style BN CNN (28×28, conv 16-M-32-M-64, global pool, dense 64)"),
            28,
        )
    if model == "vgg16":
        cfg = tuple(c if c == "M" else _scaled(c, a) for c in VGG16)
        net = VGG(cfg=cfg, hidden=_scaled(512, a), num_classes=10, in_channels=1)
        convs = tuple(f"conv{i}" for i in range(len(net.widths)))
        text = f"VGG-16-BN (32×32, width × {a:g}; its 13 convs' filters)"
        return net, convs, {f"bn{i}": c for i, c in enumerate(convs)}, text, 32
    if model == "resnet18":
        net = ResNet18(width_multiplier=a, num_classes=10, in_channels=1)
        convs = tuple(f"blocks/{b}/conv1" for b in range(net.num_blocks))
        couple = {f"blocks/{b}/bn1": c for b, c in enumerate(convs)}
        text = (
            f"ResNet-18 with projection shortcuts, CIFAR stem, widths "
            f"{'-'.join(map(str, net.widths))} (32×32; the blocks' first convs' filters)"
        )
        return net, convs, couple, text, 32
    if model == "mobilenet_v1":
        net = MobileNetV1(width_multiplier=a, num_classes=10, in_channels=1)
        convs = ("stem", *(f"blocks/{b}/pw" for b in range(net.num_blocks)))
        couple = {"stem_bn": "stem"}
        layers = {n: spec for n, _, spec in net.conv_layers()}
        for b in range(net.num_blocks):
            before = convs[b]  # the filters this block's depthwise conv reads
            couple[f"blocks/{b}/dw"] = (before, layers[f"blocks/{b}/dw"])
            couple[f"blocks/{b}/dw_bn"] = before
            couple[f"blocks/{b}/pw_bn"] = convs[b + 1]
        text = f"MobileNetV1 (32×32, stride-1 stem, α = {a:g}; stem + 13 pointwise convs)"
        return net, convs, couple, text, 32
    raise ValueError(f"model: expected one of {MODELS}, got {model!r}")


def parse_k(text: str, convs, widths=None) -> dict[str, int]:
    """``"a:b:…"`` (one count per filter layer) or a fraction ``"0.25"`` of each layer's
    ``widths`` (at least 1 filter) as ``{layer: k}``."""
    if ":" not in text and "." in text:
        frac = float(text)
        if not 0 < frac <= 1 or widths is None:
            raise ValueError(f"ks: a fraction {text!r} must be in (0, 1] (with layer widths)")
        return {c: max(1, round(frac * w)) for c, w in zip(convs, widths)}
    values = [int(v) for v in text.split(":")]
    if len(values) != len(convs):
        raise ValueError(f"ks: {text!r} needs one count per conv layer {convs}")
    return dict(zip(convs, values))


def pad_images(x, size: int):
    """Zero-pad ``(N, H, W)`` images symmetrically to ``size`` × ``size``."""
    lo_h, lo_w = (size - x.shape[1]) // 2, (size - x.shape[2]) // 2
    if lo_h < 0 or lo_w < 0:
        raise ValueError(f"image_size: {size} is smaller than the images {x.shape[1:]}")
    pad = ((0, 0), (lo_h, size - x.shape[1] - lo_h), (lo_w, size - x.shape[2] - lo_w))
    return np.pad(x, pad)


def flops_per_image(net, params, state, image_size: int = 28) -> float:
    """FLOPs of one image's forward pass by XLA's cost analysis of the compiled function."""
    x = jnp.zeros((1, image_size, image_size, 1), jnp.float32)
    f = jax.jit(lambda p, s, x: net.apply(p, s, x, train=False)[0])
    cost = f.lower(params, state, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


def main(argv=None) -> str:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="wgsef/fashion_mnist",
        description=__doc__,
        choices={"model": MODELS, "models": MODELS},
    )
    return "\n".join(run_model(run, model) for model in (run.config.models or (run.config.model,)))


def run_model(run, model: str) -> str:
    """Every method at every k on ``model``; returns the results text."""
    cfg = run.config
    net, convs, couple, model_text, native = build(model, cfg.width_multiplier)
    size = cfg.image_size or native
    ks = cfg.ks or DEFAULT_KS[model]
    out_dir = run.out_dir / model
    t0 = time.perf_counter()
    data = fashion_mnist_split(
        cfg.n_train_per_class,
        n_test_per_class=cfg.n_test_per_class,
        seed=cfg.seed,
        dtype=np.float32,
    )
    x_train, x_test = pad_images(data.x_train, size), pad_images(data.x_test, size)
    mean, std = float(x_train.mean()), float(x_train.std())
    x_train = ((x_train - mean) / std)[..., None]
    x_test = jnp.asarray(((x_test - mean) / std)[..., None])
    y_train, y_test = data.y_train, np.asarray(data.y_test)
    groups = tree_groups(
        jax.eval_shape(net.init_params, jax.random.key(0)),
        {n: spec for n, _, spec in net.conv_layers() if n in convs},
        "filter",
        couple=couple,
    )

    def get_batch(step):
        idx = np.random.default_rng([cfg.seed, step]).integers(0, len(y_train), cfg.batch_size)
        return {"x": x_train[idx], "y": y_train[idx]}

    def loss_fn(params, model_state, batch, key):
        logits, new_state = net.apply(params, model_state, batch["x"], train=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, ({"acc": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}, new_state)

    @functools.cache
    def predictor(spec):
        return jax.jit(lambda p, s, x: jnp.argmax(spec.apply(p, s, x, train=False)[0], -1))

    def accuracy(spec, params, state):
        return float(jnp.mean(predictor(spec)(params, state, x_test) == y_test))

    def eval_fn(params, model_state):
        return {"test_acc": accuracy(net, params, model_state)}

    def metrics_fn(state):
        counts = nonzero_groups_per_layer(state.params, groups)
        return {f"nonzero_{n}": c for n, c in counts.items()}

    def fit(name, phases, init=net.init_params, init_state=lambda key: net.init_state()):
        return train(
            cfg,
            init_params=init,
            init_model_state=init_state,
            get_batch=get_batch,
            loss_fn=loss_fn,
            eval_fn=eval_fn,
            metrics_fn=metrics_fn,
            phases=phases,
            **{
                **run.train_kwargs(),
                "out_dir": out_dir / name,
                "run_info": {"experiment": run.experiment, "preset": run.preset, "method": name},
            },
        )

    lr = cfg.lr
    dense = fit("dense", [Phase("dense", cfg.sparse_steps, optimizer=optax.sgd(lr, momentum=0.9))])
    lams = {"wgsef": cfg.lam_wgsef, "group_lasso": cfg.lam_group_lasso, "hspg": cfg.lam_hspg}
    x_lat = x_test[: cfg.latency_batch]
    forward = lambda spec: lambda p, s, x: spec.apply(p, s, x, train=False)[0]
    dense_fn = (forward(net), (dense.params, dense.model_state, x_lat))
    layer_widths = [hi - lo for lo, hi in groups.slices]
    widths = ":".join(map(str, layer_widths))
    shrunk = {}
    rows = [
        {
            "method": "dense",
            "filters": widths,
            "test acc %": 100 * accuracy(net, dense.params, dense.model_state),
            "non-zero before exact-k": widths,
            "params": pruning.count_params(dense.params),
            "MFLOPs": flops_per_image(net, dense.params, dense.model_state, size) / 1e6,
            "max |masked - shrunk|": 0.0,
        }
    ]
    series = {}
    for method in cfg.methods:
        for ktext in ks:
            k = parse_k(ktext, convs, layer_widths)
            name = f"{method}_k{ktext.replace(':', '-')}"
            finetune = Phase(
                "finetune",
                cfg.finetune_steps,
                transition=top_k_transition(
                    groups, k, mode="prox" if method == "wgsef_prox" else "top_k"
                ),
                optimizer=(
                    optax.chain(prox_sgd(groups, k, 0.0), keep_zero_groups(groups))
                    if method.startswith("wgsef")
                    else finetune_optimizer(groups, lr)
                ),
            )
            if method == "magnitude":
                result = fit(
                    name,
                    [finetune],
                    init=lambda key: dense.params,
                    init_state=lambda key: dense.model_state,
                )
                before = widths
            else:
                base = "wgsef" if method == "wgsef_prox" else method
                lam = lams[base]
                if method == "hspg":
                    half = cfg.sparse_steps // 2
                    sparse = [
                        Phase(
                            "proxsg", half, optimizer=sparse_optimizer("hspg", groups, k, lam, lr)
                        ),
                        Phase(
                            "halfspace",
                            cfg.sparse_steps - half,
                            optimizer=sparse_optimizer("hspg", groups, k, lam, lr, half=True),
                        ),
                    ]
                else:
                    sparse = [
                        Phase(
                            "sparse",
                            cfg.sparse_steps,
                            optimizer=sparse_optimizer(base, groups, k, lam, lr),
                        )
                    ]
                result = fit(name, [*sparse, finetune])
                last = [
                    r
                    for r in result.history
                    if r.get("phase") != "finetune" and f"nonzero_{convs[0]}" in r
                ][-1]
                before = ":".join(str(int(last[f"nonzero_{c}"])) for c in convs)
            params, state = result.params, result.model_state
            counts = {n: int(c) for n, c in nonzero_groups_per_layer(params, groups).items()}
            mask = top_k_masks(params, groups, k)  # the non-zero filters (exactly k per layer)
            fn = forward(net)
            traced = pruning.trace_groups(fn, params, x_lat[:2], model_state=state)
            per_layer = layer_masks(groups, mask)
            masks = [
                per_layer.get(g.name[len("params/") : -len("/kernel")], np.ones(g.size, bool))
                for g in traced
            ]
            small, small_params, small_state = pruning.materialize(
                net, params, traced, masks, model_state=state
            )
            small_state = {} if small_state is None else small_state
            diff = float(
                jnp.max(
                    jnp.abs(
                        forward(small)(small_params, small_state, x_lat) - fn(params, state, x_lat)
                    )
                )
            )
            acc = 100 * accuracy(small, small_params, small_state)
            kept = ":".join(str(counts[c]) for c in convs)  # exactly k: one key per k
            shrunk.setdefault(kept, (forward(small), (small_params, small_state, x_lat)))
            rows.append(
                {
                    "method": method,
                    "filters": ":".join(str(counts[c]) for c in convs),
                    "test acc %": acc,
                    "non-zero before exact-k": before,
                    "params": pruning.count_params(small_params),
                    "MFLOPs": flops_per_image(small, small_params, small_state, size) / 1e6,
                    "max |masked - shrunk|": diff,
                }
            )
            series.setdefault(method, ([], []))
            series[method][0].append(sum(counts.values()))
            series[method][1].append(acc)
            print(f"{name}: {rows[-1]}", flush=True)
    # latency depends on the architecture only (all methods at one k share it): one interleaved
    # loop over the dense and every shrunk network, the fastest call of each
    times = latency_ms({"dense": dense_fn, **shrunk}, repeats=cfg.latency_repeats)
    lat_rows = [
        {
            "filters": name if name != "dense" else widths,
            "params": pruning.count_params(args[0]),
            "MFLOPs / image": next(
                r["MFLOPs"] for r in rows if r["filters"] == (widths if name == "dense" else name)
            ),
            f"latency ms (batch {cfg.latency_batch})": times[name],
            "speed-up": times["dense"] / times[name],
        }
        for name, (_, args) in {"dense": dense_fn, **shrunk}.items()
    ]
    seconds = time.perf_counter() - t0
    notes = run_notes(
        run,
        seconds,
        {
            "data": f"Fashion-MNIST, {cfg.n_train_per_class}/class train, "
            f"{cfg.n_test_per_class}/class test (official test set)",
            "model": model_text,
            "FLOPs": "XLA cost analysis of the compiled forward pass, per image",
            "steps": f"{cfg.sparse_steps} sparse + {cfg.finetune_steps} fine-tune, batch "
            f"{cfg.batch_size}, lr {lr}",
            "lambda": f"WGSEF {cfg.lam_wgsef}, group lasso {cfg.lam_group_lasso}, "
            f"HSPG {cfg.lam_hspg}",
            "latency": f"jitted forward (eval mode), batch {cfg.latency_batch}, the fastest of "
            f"{cfg.latency_repeats} calls, the networks' calls interleaved, CPU",
        },
    )
    acc_table = write_results_table(
        out_dir / "accuracy.md",
        rows,
        title=f"Fashion-MNIST {model}: exactly k filters per conv layer, physically removed",
    )
    lat_table = write_results_table(
        out_dir / "latency.md", lat_rows, title="Shrunk networks: size and measured CPU latency"
    )
    notes_md = "\n".join(f"- **{k}**: {v}" for k, v in notes.items())
    text = write_outputs(
        out_dir,
        rows,
        text=f"{acc_table}\n{lat_table}\n{notes_md}\n",
        plot_name="accuracy_vs_filters.png",
        series={m: (np.array(v[0]), np.array(v[1])) for m, v in series.items()},
        xlabel=f"surviving filters ({' + '.join(convs)})",
        ylabel="test accuracy %",
        plot_title=f"Fashion-MNIST {model}: accuracy at exactly k filters",
    )
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=1))
    report(out_dir, text, seconds)
    return text


if __name__ == "__main__":
    main()
