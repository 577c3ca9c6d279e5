"""Run outputs: metrics as JSON lines, a markdown results table and PNG plots.

* ``metrics.jsonl``: one JSON object per logged step and split,
  ``{"step": 10, "split": "train", "loss": 0.25, ...}``, metric values as Python floats (a run
  with phases adds the phase's name: ``{"step", "split", "phase", ...}``).
  :func:`truncate_jsonl` drops the lines a resumed run will write again, so the file of a resumed
  run is byte-identical to an uninterrupted one.
* ``results.md``: :func:`write_results_table` renders a list of dict rows as a markdown table with
  a title and notes (preset, machine: see :func:`describe_machine`).
* PNG plots: :func:`plot_metric` (a metric over steps, one curve per split) and
  :func:`plot_lines` (a generic x-y plot with several series, for result figures) live in
  :mod:`memjax.train.plots` (a style per series, the legend outside the axes) and are
  re-exported here.

Example:
    >>> import tempfile, pathlib
    >>> from memjax.train import MetricsLogger, read_jsonl, write_results_table
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with MetricsLogger(d / "metrics.jsonl") as log:
    ...     _ = log.log(10, "train", {"loss": 0.5})
    ...     _ = log.log(10, "eval", {"accuracy": 0.75})
    >>> [r["split"] for r in read_jsonl(d / "metrics.jsonl")]
    ['train', 'eval']
    >>> text = write_results_table(d / "results.md", [{"model": "mlp", "acc": 0.75}], title="Demo")
    >>> "| mlp | 0.75 |" in text
    True
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memjax.train.plots import plot_lines as plot_lines, plot_metric as plot_metric

__all__ = [
    "MetricsLogger",
    "describe_machine",
    "plot_lines",
    "plot_metric",
    "read_jsonl",
    "to_float",
    "truncate_jsonl",
    "write_results_table",
]


def to_float(value: Any, *, name: str = "metric") -> float:
    """A scalar (Python, NumPy or jax, any shape with one element) as a Python float."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"metric {name!r} must be a scalar, got shape {arr.shape}")
    return float(arr.reshape(()))


def _record(
    step: int, split: str, metrics: Mapping[str, Any], phase: str | None = None
) -> dict[str, Any]:
    rec: dict[str, Any] = {"step": int(step), "split": str(split)}
    if phase is not None:
        rec["phase"] = str(phase)
    for name, value in metrics.items():
        if name in ("step", "split", "phase"):
            raise ValueError(f"metric name {name!r} is reserved")
        rec[str(name)] = to_float(value, name=name)
    return rec


class MetricsLogger:
    """Appends metric records to a JSON-lines file, one flushed line per ``log`` call.

    Args:
        path: the ``.jsonl`` file (parent folders are created).
        mode: ``"a"`` to append (resume), ``"w"`` to start a new file.
        enabled: when False nothing is written (non-zero processes of a multi-host run); records
            are still returned and kept in ``history``.
    """

    def __init__(self, path: str | Path, *, mode: str = "a", enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self.history: list[dict[str, Any]] = []
        self._file = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, mode, encoding="utf-8")

    def log(
        self, step: int, split: str, metrics: Mapping[str, Any], *, phase: str | None = None
    ) -> dict[str, Any]:
        """Writes ``{"step", "split", ["phase",] **metrics}`` (values as floats) and returns the
        record."""
        rec = _record(step, split, metrics, phase)
        self.history.append(rec)
        if self._file is not None:
            self._file.write(json.dumps(rec) + "\n")
            self._file.flush()
        return rec

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Reads a JSON-lines file; a missing file is empty, a torn last line is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn write of an interrupted run
                break
            raise
    return records


def truncate_jsonl(
    path: str | Path,
    step: int,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Rewrites ``path`` keeping the records with ``record["step"] <= step`` (and, when given,
    ``keep(record)``); returns the kept records. Used on resume from checkpoint ``step``."""
    kept = [r for r in read_jsonl(path) if r["step"] <= step and (keep is None or keep(r))]
    path = Path(path)
    if path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)
    return kept


# ----------------------------------------------------------------------------- results table


def _cell(value: Any, float_format: str) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value) or math.isinf(value):
            return str(float(value))
        return format(float(value), float_format)
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_results_table(
    path: str | Path | None,
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    notes: Mapping[str, Any] | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    float_format: str = ".4g",
) -> str:
    """Renders ``rows`` (dicts) as a markdown table, writes it to ``path`` (if given), returns it.

    Args:
        rows: one dict per table row; columns are the union of keys in first-seen order unless
            ``columns`` is given. Missing cells are blank; floats use ``float_format``.
        title: a ``#`` heading above the table.
        notes: lines under the table, e.g. ``{"preset": "cpu", "machine": describe_machine()}``
            (rendered as ``- **preset**: cpu``) or a list of strings.
    """
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    lines: list[str] = []
    if title:
        lines += [f"# {title}", ""]
    if columns:
        lines.append("| " + " | ".join(map(str, columns)) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        for row in rows:
            lines.append("| " + " | ".join(_cell(row.get(c), float_format) for c in columns) + " |")
    if notes:
        lines.append("")
        items = notes.items() if isinstance(notes, Mapping) else [(None, n) for n in notes]
        for key, value in items:
            lines.append(f"- **{key}**: {value}" if key is not None else f"- {value}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return text


def describe_machine() -> str:
    """A one-line description of the machine, for results notes: backend, devices, CPU, jax."""
    import jax

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    hosts = jax.process_count()
    return (
        f"{jax.default_backend()}: {len(devices)} device(s) ({', '.join(kinds)})"
        + (f" on {hosts} hosts" if hosts > 1 else "")
        + f"; host {platform.machine()} with {os.cpu_count()} CPU cores; jax {jax.__version__}"
    )
