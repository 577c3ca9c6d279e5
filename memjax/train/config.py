"""Experiment configuration: frozen dataclass configs, presets and the command line.

An experiment declares its configuration as a frozen dataclass (subclass :class:`TrainConfig` to
get the fields the training loop reads) and a dict of presets, one per machine class::

    PRESETS = {
        "cpu": {"steps": 200, "batch_size": 32},     # minutes on 2 CPU cores (the default)
        "gpu": {"steps": 20_000, "batch_size": 256},
        "tpu": {"steps": 20_000, "batch_size": 1024},
    }

:func:`parse_args` turns a command line into a :class:`RunArgs`: the preset's values applied to the
dataclass defaults, then ``--seed``/``--steps``, then every ``--set key=value`` (typed by the
dataclass field's annotation), plus the run options (``--resume``, ``--out``, ``--data-parallel``,
``--fsdp N``, ``--distributed``, ``--no-progress``, ``--overwrite``, ``--cache-dir DIR``,
``--no-cache``, ``--no-export-cache``). It turns on the persistent compilation cache
(:func:`memjax.train.enable_compilation_cache`), so a second run does not compile again, and the
export cache of the training step in its ``memjax-export/`` subfolder
(:mod:`memjax.train.export_cache`), so a second run does not trace the step again either. Unknown
keys and values that do not parse raise :class:`ConfigError` naming the key (on the command line:
a usage error, exit status 2).

Example:
    >>> import dataclasses
    >>> from memjax.train import TrainConfig, parse_args
    >>> @dataclasses.dataclass(frozen=True)
    ... class Config(TrainConfig):
    ...     hidden: int = 32
    ...     lr: float = 1e-3
    >>> presets = {"cpu": {"steps": 100}, "gpu": {"steps": 10_000, "hidden": 512}, "tpu": {}}
    >>> run = parse_args(Config, presets, ["--preset", "gpu", "--set", "lr=3e-4"],
    ...                  experiment="demo")
    >>> run.config.steps, run.config.hidden, run.config.lr, str(run.out_dir)
    (10000, 512, 0.0003, 'runs/demo/gpu')
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memjax.train.cache import CACHE_ENV, default_cache_dir, enable_compilation_cache
from memjax.train.export_cache import EXPORT_ENV, export_cache_dir

__all__ = [
    "ConfigError",
    "RunArgs",
    "TrainConfig",
    "apply_overrides",
    "build_config",
    "config_to_dict",
    "load_config",
    "parse_args",
    "parse_value",
]

PRESET_NAMES = ("cpu", "gpu", "tpu")


class ConfigError(ValueError):
    """A configuration key is unknown or its value does not fit the field's type."""

    user_error = True  # an experiment's command line prints it without a traceback


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The fields :func:`memjax.train.train` reads. Subclass it to add an experiment's own fields.

    Attributes:
        seed: seed of the root PRNG key (parameter init and the per-step keys).
        steps: number of optimizer updates in the whole run.
        log_every: write a ``train`` metrics line every this many steps (and at the last step).
        eval_every: run ``eval_fn`` every this many steps (0: only at the last step).
        checkpoint_every: save a checkpoint every this many steps (and at the last step).
        max_to_keep: number of most recent checkpoints kept on disk.
    """

    seed: int = 0
    steps: int = 100
    log_every: int = 10
    eval_every: int = 0
    checkpoint_every: int = 50
    max_to_keep: int = 3


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """What :func:`parse_args` returns: the built config plus the run options.

    ``cache_dir`` is the persistent compilation cache folder (``None``: off), ``export_cache``
    the folder of the training step's export cache (``None``: off); ``prior_seconds``
    the wall time that earlier sessions of a resumed (``--resume``) run already spent (the
    training runs under ``out_dir``, up to their latest checkpoints), so that a summary can time
    the whole run.
    """

    config: Any
    preset: str
    experiment: str
    out_dir: Path
    resume: bool = False
    overwrite: bool = False
    data_parallel: bool = False
    distributed: bool = False
    progress: bool = True
    fsdp: int = 0
    cache_dir: Path | None = None
    prior_seconds: float = 0.0
    export_cache: Path | None = None

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`memjax.train.train` (``out_dir``, ``resume``, ...)."""
        return {
            "out_dir": self.out_dir,
            "resume": self.resume,
            "overwrite": self.overwrite,
            "data_parallel": self.data_parallel,
            "fsdp": self.fsdp,
            "progress": self.progress,
            "run_info": {"experiment": self.experiment, "preset": self.preset},
            "export_cache": self.export_cache,
        }


# ----------------------------------------------------------------------------- value parsing

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def _split_items(text: str) -> list[str]:
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_value(text: str, annotation: Any, *, key: str = "value") -> Any:
    """Parses the string ``text`` as a value of type ``annotation``.

    Supports ``int``, ``float``, ``bool`` (true/false/1/0/yes/no), ``str``, ``X | None``
    (``none``), ``Literal[...]``, ``tuple[X, ...]``/``tuple[X, Y]``/``list[X]`` (comma-separated,
    brackets optional) and, for any other annotation, a JSON or Python literal.

    Example:
        >>> parse_value("3", int), parse_value("1e-3", float), parse_value("no", bool)
        (3, 0.001, False)
        >>> parse_value("2,4,8", tuple[int, ...])
        (2, 4, 8)
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    try:
        if annotation is Any:
            return _literal(text)
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if type(None) in args and text.strip().lower() in ("none", "null"):
                return None
            errors = []
            for a in non_none:
                try:
                    return parse_value(text, a, key=key)
                except ConfigError as e:
                    errors.append(str(e))
            raise ValueError("; ".join(errors))
        if origin is typing.Literal:
            for a in args:
                if str(a) == text.strip():
                    return a
            raise ValueError(f"expected one of {list(args)}")
        if annotation is bool:
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected true/false")
        if annotation is int:
            return int(text.strip().replace("_", ""))
        if annotation is float:
            return float(text.strip())
        if annotation is str:
            return text
        if origin in (tuple, list):
            items = _split_items(text)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and args:
                if len(items) != len(args):
                    raise ValueError(f"expected {len(args)} comma-separated items")
                vals = [parse_value(t, a, key=key) for t, a in zip(items, args, strict=True)]
            else:
                elem = args[0] if args else Any
                vals = [parse_value(t, elem, key=key) for t in items]
            return tuple(vals) if origin is tuple else vals
        return _literal(text)
    except (ValueError, TypeError, SyntaxError) as e:
        name = getattr(annotation, "__name__", None) or str(annotation)
        raise ConfigError(f"bad value for {key!r}: cannot parse {text!r} as {name} ({e})") from e


def _literal(text: str) -> Any:
    import ast

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


# ----------------------------------------------------------------------------- config building


def _field_types(config_cls: type) -> dict[str, Any]:
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise TypeError(f"config_cls must be a dataclass type, got {config_cls!r}")
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_cls) if f.init}


def _unknown(key: str, fields: Mapping[str, Any], where: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"unknown config key {key!r} in {where}{hint} (known keys: {sorted(fields)})"
    )


def apply_overrides(config: Any, overrides: Mapping[str, Any], *, where: str = "overrides") -> Any:
    """Returns ``config`` with fields replaced; string values are parsed by the field's type.

    Example:
        >>> apply_overrides(TrainConfig(), {"steps": "20", "seed": 3}).steps
        20
    """
    fields = _field_types(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise _unknown(key, fields, where)
        ann = fields[key]
        if isinstance(value, str) and ann is not str:
            value = parse_value(value, ann, key=key)
        changes[key] = value
    return dataclasses.replace(config, **changes)


def build_config(
    config_cls: type,
    presets: Mapping[str, Mapping[str, Any]],
    preset: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Builds ``config_cls()`` with the preset's values, then ``overrides``, applied.

    Raises:
        ConfigError: the preset does not exist, or a key (in the preset or the overrides) is not
            a field of ``config_cls``, or a string value does not parse as the field's type.

    Example:
        >>> build_config(TrainConfig, {"cpu": {"steps": 7}}, "cpu", {"seed": "1"})
        TrainConfig(seed=1, steps=7, log_every=10, eval_every=0, checkpoint_every=50, max_to_keep=3)
    """
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; available presets: {sorted(presets)}")
    config = config_cls()
    config = apply_overrides(config, presets[preset], where=f"preset {preset!r}")
    return apply_overrides(config, dict(overrides or {}), where="overrides")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def load_config(path: str | Path, config_cls: type) -> Any:
    """Reads a ``config.json`` written by :func:`memjax.train.train` back into ``config_cls``."""
    data = json.loads(Path(path).read_text())
    data = data.get("config", data)
    fields = _field_types(config_cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown(key, fields, str(path))
        origin = typing.get_origin(fields[key])
        kwargs[key] = tuple(value) if origin is tuple and isinstance(value, list) else value
    return config_cls(**kwargs)


# ----------------------------------------------------------------------------- command line


def _default_experiment() -> str:
    script = Path(sys.argv[0] or "experiment")
    if script.stem in ("run", "main", "__main__", "train", "-c", ""):
        return script.resolve().parent.name or "experiment"
    return script.stem


def parse_args(
    config_cls: type,
    presets: Mapping[str, Mapping[str, Any]],
    argv: Sequence[str] | None = None,
    *,
    experiment: str | None = None,
    default_preset: str = "cpu",
    description: str | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> RunArgs:
    """Parses an experiment's command line into a :class:`RunArgs`.

    Flags: ``--preset {cpu,gpu,tpu}`` (default ``cpu``), ``--resume``, ``--out DIR`` (default
    ``runs/<experiment>/<preset>``), ``--seed N``, ``--steps N``, ``--set key=value`` (repeatable),
    ``--data-parallel`` (shard the batch over all local devices), ``--fsdp N`` (also shard
    parameters and optimizer state over N devices: the gpu/tpu presets), ``--distributed`` (calls
    ``jax.distributed.initialize()`` here, before anything touches a device: for multi-host TPU
    slices), ``--no-progress``, ``--overwrite`` (start over in a run folder that has
    checkpoints), ``--cache-dir DIR`` (the persistent compilation cache folder, default
    ``$MEMJAX_CACHE_DIR`` or ``~/.cache/memjax/jax``), ``--no-cache`` and ``--no-export-cache``
    (trace the training step even when its ``jax.export`` serialization is cached; also
    ``MEMJAX_EXPORT_CACHE=off``).

    Args:
        config_cls: the experiment's frozen dataclass config type.
        presets: ``{"cpu": {...}, "gpu": {...}, "tpu": {...}}`` field values per preset.
        argv: the arguments (default ``sys.argv[1:]``).
        experiment: the experiment's name, used in the default run folder (default: the script's
            folder name when the script is ``run.py``/``main.py``, else the script's name).
        description: the first line of ``--help``: its first paragraph is shown whole (pass the
            module's ``__doc__``; a first line cut mid-sentence is completed from the calling
            module's docstring).
        choices: ``{field: allowed values}``; a value outside them (or, for a tuple field, an
            item outside them) is a usage error naming the field, e.g.
            ``choices={"variants": VARIANTS}``.

    A bad key or value exits with status 2 and a message naming the key, and so does a run
    folder that already holds checkpoints when neither ``--resume`` nor ``--overwrite`` is
    given. Parsing the real command line (``argv=None``) also installs
    :func:`memjax.train.session.install_cli_handler`: Ctrl-C prints where the run stopped
    (``interrupted at step N ...; rerun with --resume``) and user errors print their message,
    without a traceback.
    """
    experiment = experiment or _default_experiment()
    fields = _field_types(config_cls)
    description = _description(description, sys._getframe(1).f_globals.get("__doc__"))
    names = list(presets)
    parser = argparse.ArgumentParser(
        prog=experiment,
        description=description,
        epilog="config keys: "
        + ", ".join(f"{k} ({getattr(t, '__name__', t)})" for k, t in fields.items()),
    )
    parser.add_argument(
        "--preset",
        default=default_preset,
        choices=names,
        help=f"machine preset (default {default_preset})",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint in the run folder",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run folder's checkpoints and metrics and start over",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<experiment>/<preset>)"
    )
    parser.add_argument("--seed", type=int, default=None, help="override config.seed")
    parser.add_argument("--steps", type=int, default=None, help="override config.steps")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable)",
    )
    parser.add_argument(
        "--data-parallel", action="store_true", help="shard each batch over all local devices"
    )
    parser.add_argument(
        "--fsdp",
        type=int,
        default=0,
        metavar="N",
        help="shard parameters and optimizer state over N devices (FSDP 'model' "
        "axis; the batch goes over the remaining 'data' axis)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (multi-host TPU slices)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: print a short line at each log step",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"persistent compilation cache folder (default ${CACHE_ENV} or "
        f"{default_cache_dir()}; 'off': none)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="do not use the persistent compilation cache"
    )
    parser.add_argument(
        "--no-export-cache",
        action="store_true",
        help="trace the training step in every run instead of reading its jax.export "
        f"serialization from <cache folder>/memjax-export (also {EXPORT_ENV}=off)",
    )
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    overrides: dict[str, Any] = {}
    for flag in ("seed", "steps"):
        value = getattr(ns, flag)
        if value is not None:
            if flag not in fields:
                parser.error(f"--{flag}: config {config_cls.__name__} has no field {flag!r}")
            overrides[flag] = value
    for item in ns.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value
    try:
        config = build_config(config_cls, presets, ns.preset, overrides)
        _check_choices(config, choices or {})
    except ConfigError as e:
        parser.error(str(e))

    if ns.distributed:
        from memjax.train.mesh import initialize_distributed

        initialize_distributed()
    if ns.fsdp < 0:
        parser.error(f"--fsdp must be >= 0, got {ns.fsdp}")
    try:
        cache_dir = enable_compilation_cache("off" if ns.no_cache else ns.cache_dir)
    except (OSError, ValueError) as e:
        parser.error(f"--cache-dir: {e}")
    out_dir = ns.out if ns.out is not None else Path("runs") / experiment / ns.preset
    if ns.resume and ns.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if not (ns.resume or ns.overwrite):
        found = _saved_checkpoints(out_dir)
        if found:
            parser.error(
                f"the run folder {out_dir} already has checkpoints ({found}); pass --resume to "
                "continue it, --overwrite to start over, or --out DIR for a new folder"
            )
    if argv is None:
        from memjax.train.session import install_cli_handler

        install_cli_handler(experiment)
    return RunArgs(
        config=config,
        preset=ns.preset,
        experiment=experiment,
        out_dir=out_dir,
        resume=ns.resume,
        overwrite=ns.overwrite,
        data_parallel=ns.data_parallel,
        distributed=ns.distributed,
        progress=not ns.no_progress,
        fsdp=ns.fsdp,
        cache_dir=cache_dir,
        prior_seconds=_prior_seconds(out_dir) if ns.resume else 0.0,
        export_cache=None if ns.no_export_cache else export_cache_dir(cache_dir),
    )


def _description(text: str | None, caller_doc: str | None) -> str | None:
    """The first paragraph of ``text`` on one line; a cut first line of the caller's docstring
    is completed to its paragraph."""

    def first_paragraph(doc: str) -> str:
        lines = []
        for line in doc.strip().splitlines():
            if not line.strip():
                break
            lines.append(line.strip())
        return " ".join(lines)

    if not text:
        return text
    para = first_paragraph(text)
    if caller_doc:
        full = first_paragraph(caller_doc)
        if full.startswith(para):
            para = full
    return para


def _check_choices(config: Any, choices: Mapping[str, Sequence[Any]]) -> None:
    fields = _field_types(type(config))
    for name, allowed in choices.items():
        if name not in fields:
            raise _unknown(name, fields, "choices")
        value = getattr(config, name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        bad = [v for v in items if v not in tuple(allowed)]
        if bad:
            raise ConfigError(
                f"{name}: unknown {'value' if len(bad) == 1 else 'values'} "
                f"{', '.join(map(repr, bad))}; expected names from {list(allowed)}"
            )


def _saved_checkpoints(out_dir: Path) -> str:
    """The checkpoint folders with steps under ``out_dir`` (its own and its variants')."""
    if not out_dir.is_dir():
        return ""
    found = []
    for ckpt in sorted(out_dir.glob("**/checkpoints")):
        steps = [int(p.name) for p in ckpt.rglob("*") if p.is_dir() and p.name.isdigit()]
        if steps:
            where = "" if ckpt.parent == out_dir else f"{ckpt.parent.relative_to(out_dir)}: "
            found.append(f"{where}step {max(steps)}")
    return "; ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")


def _prior_seconds(out_dir: Path) -> float:
    """The seconds earlier sessions spent on the runs under ``out_dir`` (memjax.train.session)."""
    from memjax.train.session import RUN_TIME_FILE, read_run_seconds

    if not out_dir.is_dir():
        return 0.0
    return sum(read_run_seconds(p.parent) for p in out_dir.glob(f"**/{RUN_TIME_FILE}"))
