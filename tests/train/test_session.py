"""A run's sessions: where a resumed run resumed, its wall time over all sessions, Ctrl-C as a
message naming the step (also while the step compiles, in a real process), and the
experiment command line's user errors (cut --help line, unknown variant, a used run folder).

This docstring's first paragraph is long on purpose: parse_args must show all of it in --help
when given only its first line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.train import TrainConfig, parse_args, train
from memjax.train.session import RUN_TIME_FILE, RunClock, TrainingInterrupted, read_run_seconds


def _loss(params, batch, key):
    return jnp.mean((batch @ params["w"] - 1.0) ** 2)


def _batch(step):
    return np.random.default_rng(step).normal(size=(4, 3)).astype(np.float32)


def _run(out, steps, *, stop_at=None, **kw):
    def get_batch(step):
        if step == stop_at:
            raise KeyboardInterrupt
        return _batch(step)

    return train(
        TrainConfig(steps=steps, log_every=2, checkpoint_every=2),
        init_params=lambda key: {"w": jnp.zeros(3)},
        loss_fn=_loss,
        get_batch=get_batch,
        optimizer=optax.sgd(0.1),
        eval_fn=lambda params: {"w0": params["w"][0]},
        out_dir=out,
        progress=False,
        async_checkpoints=False,
        run_info={"experiment": "exp", "variant": "var"},
        **kw,
    )


def test_interrupt_resume_and_whole_run_time(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        _run(out, 6, stop_at=4)  # Ctrl-C while step index 4 runs: 4 updates done
    stop = info.value
    assert isinstance(stop, KeyboardInterrupt) and (stop.step, stop.checkpoint) == (4, 4)
    assert str(stop).startswith("[exp/var] interrupted at step 4 (last checkpoint: step 4")
    assert str(stop).endswith("rerun with --resume to continue from step 4")
    recorded = json.loads((out / RUN_TIME_FILE).read_text())["checkpoints"]
    assert sorted(recorded, key=int) == ["2", "4"] and recorded["2"] <= recorded["4"]
    err = capsys.readouterr().err
    assert "[exp/var] compiling the train step ..." in err and "[exp/var] step 4/6" in err

    result = _run(out, 6, resume=True)
    err = capsys.readouterr().err
    assert "[exp/var] resumed from the checkpoint at step 4 of 6 in " in err
    assert "[exp/var] step 6/6" in err and result.step == 6
    assert err.count("[exp/var] evaluating at step 6 ...") == 1 and "evaluated in" in err
    assert result.seconds >= recorded["4"] and read_run_seconds(out) >= recorded["4"]

    again = _run(out, 6, resume=True)
    assert "already complete at step 6 of 6" in capsys.readouterr().err
    assert again.seconds == pytest.approx(read_run_seconds(out), abs=0.01)


def test_run_clock_adds_the_resumed_checkpoints_time(tmp_path, monkeypatch):
    now = {"t": 0.0}
    monkeypatch.setattr(time, "perf_counter", lambda: now["t"])
    first = RunClock(tmp_path, resume_step=None)
    now["t"] = 5.0
    first.checkpoint(2)
    now["t"] = 9.0
    first.checkpoint(4)  # a session that then dies after step 5: steps 4-5 are redone
    assert read_run_seconds(tmp_path) == 9.0
    now["t"] = 100.0
    second = RunClock(tmp_path, resume_step=2)
    assert second.prior == 5.0
    now["t"] = 103.0
    second.checkpoint(4)
    assert read_run_seconds(tmp_path) == 8.0  # 5 s to step 2, then 3 s to step 4
    RunClock(tmp_path, resume_step=None)  # a fresh run drops the old record
    assert read_run_seconds(tmp_path) == 0.0


@dataclasses.dataclass(frozen=True)
class _Config(TrainConfig):
    variants: tuple[str, ...] = ("a", "b")


_PRESETS = {"cpu": {}, "gpu": {}, "tpu": {}}


def test_help_shows_the_whole_first_paragraph(capsys):
    with pytest.raises(SystemExit):
        parse_args(_Config, _PRESETS, ["--help"], description=__doc__.splitlines()[0])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "cut --help line, unknown variant, a used run folder)." in help_text


def test_unknown_variant_and_used_run_folder_are_usage_errors(tmp_path, capsys):
    choices = {"variants": ("a", "b")}
    run = parse_args(
        _Config, _PRESETS, ["--set", "variants=b", "--out", str(tmp_path)], choices=choices
    )
    assert run.config.variants == ("b",)
    with pytest.raises(SystemExit) as exc:
        parse_args(_Config, _PRESETS, ["--set", "variants=(a,c)"], choices=choices)
    assert exc.value.code == 2
    assert "variants: unknown value 'c'; expected names from ['a', 'b']" in capsys.readouterr().err

    (tmp_path / "b" / "checkpoints" / "8").mkdir(parents=True)
    (tmp_path / "b" / RUN_TIME_FILE).write_text('{"checkpoints": {"8": 12.5}}')
    with pytest.raises(SystemExit) as exc:
        parse_args(_Config, _PRESETS, ["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "already has checkpoints (b: step 8); pass --resume" in err
    resumed = parse_args(_Config, _PRESETS, ["--out", str(tmp_path), "--resume"])
    assert resumed.prior_seconds == 12.5


_SLOW_COMPILE = textwrap.dedent("""
    import dataclasses, jax.numpy as jnp, numpy as np, optax
    from memjax.train import TrainConfig, parse_args, train

    def loss_fn(params, batch, key):
        x = batch * params["w"]
        for i in range(1000):  # a thousand ops: a second or more of tracing and compiling
            x = jnp.sin(x) * (1.0 + 1e-4 * i)
        return jnp.mean(x**2)

    run = parse_args(TrainConfig, {"cpu": {"steps": 3}, "gpu": {}, "tpu": {}}, experiment="demo")
    train(run.config, init_params=lambda k: {"w": jnp.ones(4)}, loss_fn=loss_fn,
          get_batch=lambda s: np.ones(4, np.float32), optimizer=optax.sgd(0.1),
          **run.train_kwargs())
""")


def test_ctrl_c_while_compiling_prints_the_step_and_exits(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-c",
        _SLOW_COMPILE,
        "--out",
        str(tmp_path / "run"),
        "--no-cache",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path
    )
    try:
        first = proc.stderr.readline()
        assert "[demo] compiling the train step ..." in first, first
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    assert code == 130, rest
    assert "[demo] interrupted at step 0 (while compiling), before the first checkpoint" in rest
    assert "rerun with --resume" in rest and "Traceback" not in rest
