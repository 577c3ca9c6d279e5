"""The result files every experiment writes into its run folder, written in one place.

:func:`run_notes` gives the notes every table starts and ends with; :func:`write_outputs` writes
``results.md`` (the rows as a markdown table with notes, or a ready-made text), one PNG line plot
and ``summary.json``; :func:`report` prints the table and where it went.

Example:
    >>> import json, tempfile, pathlib
    >>> from experiments.common.outputs import write_outputs
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> text = write_outputs(out, [{"n": 1, "acc": 0.5}], title="t", notes={"seed": 0},
    ...                      plot_name="acc.png", series={"a": ([1], [0.5])})
    >>> "| 1 | 0.5 |" in text, json.loads((out / "summary.json").read_text())
    (True, [{'n': 1, 'acc': 0.5}])
"""

from __future__ import annotations

import json
from pathlib import Path

from memjax.train import describe_machine, plot_lines, write_results_table

__all__ = ["report", "run_notes", "write_outputs"]


def run_notes(run, seconds: float, details: dict) -> dict:
    """The notes of a results table: the preset, the machine and the seed of ``run``, then
    ``details`` (model, task, ...), then the wall time: ``seconds`` of this session plus, for a
    resumed run, what its earlier sessions spent (``run.prior_seconds``,
    :class:`memjax.train.RunArgs`), so the table times the whole run."""
    prior = float(getattr(run, "prior_seconds", 0.0) or 0.0)
    wall = f"{seconds + prior:.0f} s"
    if prior:
        wall += f" ({prior:.0f} s before --resume, {seconds:.0f} s after)"
    return {
        "preset": run.preset,
        "machine": describe_machine(),
        "seed": run.config.seed,
        **details,
        "wall time": wall,
    }


def write_outputs(
    out_dir,
    rows,
    *,
    title=None,
    notes=None,
    plot_name: str,
    series,
    summary=None,
    text: str | None = None,
    float_format: str = ".4g",
    plot_title: str | None = None,
    **plot_options,
) -> str:
    """Write ``results.md``, ``plot_name`` and ``summary.json`` into ``out_dir``; return the text.

    Args:
        rows: the table rows (dicts); ``summary.json`` holds them unless ``summary`` is given.
        title, notes, float_format: of the table (:func:`memjax.train.write_results_table`).
        text: a ready-made ``results.md`` (several tables); then ``rows`` are not rendered.
        plot_name, series, plot_title, plot_options: the plot (:func:`memjax.train.plot_lines`:
            ``xlabel``, ``ylabel``, ``logx``, ``markers``, ...).
    """
    out_dir = Path(out_dir)
    if text is None:
        text = write_results_table(
            out_dir / "results.md", rows, title=title, notes=notes, float_format=float_format
        )
    else:
        (out_dir / "results.md").write_text(text)
    plot_lines(out_dir / plot_name, series, title=plot_title, **plot_options)
    summary = rows if summary is None else summary
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return text


def report(out_dir, text: str, seconds: float) -> None:
    """Print the results ``text`` and the line ``wrote <out_dir>/results.md in <seconds> s``."""
    print(text)
    print(f"wrote {Path(out_dir) / 'results.md'} in {seconds:.0f} s")
