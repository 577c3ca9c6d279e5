"""Presets, --set overrides typed by the dataclass fields, and errors naming the bad key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from memjax.train import (
    ConfigError,
    TrainConfig,
    build_config,
    load_config,
    parse_args,
    parse_value,
)


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    hidden: int = 32
    lr: float = 1e-3
    use_bias: bool = True
    widths: tuple[int, ...] = (8, 8)
    name: str = "mlp"
    decay: float | None = None


PRESETS = {
    "cpu": {"steps": 50, "hidden": 16},
    "gpu": {"steps": 5000, "hidden": 256},
    "tpu": {"steps": 5000, "hidden": 512, "lr": 3e-4},
}


def test_default_preset_and_out_dir():
    run = parse_args(Config, PRESETS, [], experiment="demo")
    assert run.preset == "cpu"
    assert run.config == Config(steps=50, hidden=16)
    assert run.out_dir == Path("runs/demo/cpu")
    assert not run.resume and run.progress and not run.data_parallel and not run.distributed


def test_preset_and_overrides_are_typed():
    argv = [
        "--preset",
        "tpu",
        "--seed",
        "3",
        "--steps",
        "7",
        "--set",
        "lr=1e-2",
        "--set",
        "use_bias=false",
        "--set",
        "widths=4,5,6",
        "--set",
        "name=wide",
        "--set",
        "decay=0.5",
        "--resume",
        "--out",
        "/tmp/x",
        "--data-parallel",
        "--no-progress",
    ]
    run = parse_args(Config, PRESETS, argv, experiment="demo")
    c = run.config
    assert (c.seed, c.steps, c.hidden, c.lr) == (3, 7, 512, 1e-2)
    assert c.use_bias is False and c.widths == (4, 5, 6) and c.name == "wide" and c.decay == 0.5
    assert run.resume and run.out_dir == Path("/tmp/x") and run.data_parallel
    assert not run.progress
    kw = run.train_kwargs()
    assert kw["out_dir"] == Path("/tmp/x") and kw["run_info"]["preset"] == "tpu"
    assert parse_args(Config, PRESETS, ["--set", "decay=none"]).config.decay is None


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--set", "hiddn=3"], "'hiddn'"),
        (["--set", "hidden=three"], "'hidden'"),
        (["--set", "use_bias=maybe"], "'use_bias'"),
        (["--set", "widths=1,x"], "'widths'"),
        (["--set", "novalue"], "KEY=VALUE"),
        (["--preset", "tpuu"], "tpuu"),
    ],
)
def test_cli_errors_name_the_key(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(Config, PRESETS, argv, experiment="demo")
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_unknown_key_suggests_and_preset_errors():
    with pytest.raises(ConfigError, match=r"'hiddn'.*did you mean 'hidden'"):
        build_config(Config, PRESETS, "cpu", {"hiddn": "3"})
    with pytest.raises(ConfigError, match=r"'layers' in preset 'gpu'"):
        build_config(Config, {"gpu": {"layers": 2}}, "gpu")
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config(Config, PRESETS, "mps")


def test_parse_value_types():
    assert parse_value("1_000", int) == 1000
    assert parse_value("yes", bool) is True
    assert parse_value("[1, 2]", list[int]) == [1, 2]
    assert parse_value("none", int | None) is None
    with pytest.raises(ConfigError, match="'k'"):
        parse_value("1.5", int, key="k")


def test_load_config_round_trip(tmp_path):
    import json

    cfg = Config(widths=(1, 2, 3), decay=0.1)
    (tmp_path / "config.json").write_text(
        json.dumps({"config": dataclasses.asdict(cfg), "run": {}})
    )
    assert load_config(tmp_path / "config.json", Config) == cfg
