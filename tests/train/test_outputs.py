"""Metrics JSON lines, the markdown results table, PNG plots and the progress display."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from memjax.train import (
    MetricsLogger,
    Progress,
    describe_machine,
    plot_lines,
    plot_metric,
    read_jsonl,
    truncate_jsonl,
    write_results_table,
)


def test_metrics_jsonl_and_truncate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsLogger(path, mode="w") as log:
        for step in (1, 2, 3):
            log.log(step, "train", {"loss": np.float32(1.0 / step), "acc": np.array([0.5])})
        log.log(3, "eval", {"acc": 0.75})
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 1, "split": "train", "loss": 1.0, "acc": 0.5}
    assert all(
        type(v) is float for v in json.loads(lines[1]).values() if not isinstance(v, (int, str))
    )
    with path.open("a") as f:
        f.write('{"step": 4, "spl')  # a torn last line of an interrupted run
    assert len(read_jsonl(path)) == 4
    kept = truncate_jsonl(path, 2)
    assert [r["step"] for r in kept] == [1, 2] and read_jsonl(path) == kept
    with pytest.raises(ValueError, match=r"'v'.*scalar"):
        MetricsLogger(path).log(5, "train", {"v": np.zeros(3)})


def test_results_table(tmp_path):
    rows = [
        {"model": "mlp", "accuracy": 0.91234, "params": 1200},
        {"model": "memory", "accuracy": 0.95, "note": "a|b"},
    ]
    text = write_results_table(
        tmp_path / "results.md",
        rows,
        title="Demo results",
        notes={"preset": "cpu", "machine": describe_machine()},
    )
    assert (tmp_path / "results.md").read_text() == text
    assert text.startswith("# Demo results\n")
    assert "| model | accuracy | params | note |" in text
    assert "| mlp | 0.9123 | 1200 |  |" in text
    assert "| memory | 0.95 |  | a\\|b |" in text
    assert "- **preset**: cpu" in text and "device(s)" in text


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100


def test_plots(tmp_path):
    records = [{"step": s, "split": "train", "loss": 1.0 / s} for s in range(1, 11)]
    records += [{"step": 10, "split": "eval", "loss": 0.2}]
    _assert_png(plot_metric(tmp_path / "loss.png", records, "loss", logy=True))
    series = {"memjax": ([1, 2, 4, 8], [0.2, 0.4, 0.6, 0.7]), "paper": ([1, 2, 4, 8], [0.3] * 4)}
    _assert_png(
        plot_lines(
            tmp_path / "sub" / "acc.png",
            series,
            xlabel="shots",
            ylabel="accuracy",
            logx=True,
            title="accuracy",
        )
    )
    with pytest.raises(ValueError, match="'acc'"):
        plot_metric(tmp_path / "x.png", records, "acc")


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines_when_not_a_tty(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()
    with Progress(20, initial=4, every=5, desc="demo", stream=stream) as bar:
        assert not bar.uses_bar
        for step in range(5, 21):
            bar.update(step, {"loss": 0.5} if step % 5 == 0 else None)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("[demo] step 5/20  loss 0.5  ") and lines[-1].endswith("it/s")


def test_progress_bar_on_tty_unless_ci_or_disabled(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    stream = _Tty()
    with Progress(10, stream=stream, desc="demo") as bar:
        assert bar.uses_bar
        bar.update(10, {"loss": 0.25})
    assert "loss=0.25" in stream.getvalue()
    assert not Progress(10, stream=_Tty(), enabled=False).uses_bar
    monkeypatch.setenv("CI", "true")
    assert not Progress(10, stream=_Tty()).uses_bar
