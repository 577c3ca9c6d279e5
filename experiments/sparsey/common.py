"""Shared plumbing of the Sparsey experiments: presets, run folders and result files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memjax.train import describe_machine, plot_lines, write_results_table


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=["cpu", "gpu", "tpu"],
                   help="cpu: minutes on 2 cores (default); gpu/tpu: more seeds and sizes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=f"runs/sparsey/{name}")
    return p


def write(out: str | Path, rows, *, title: str, notes: dict, series: dict | None = None,
          xlabel: str = "", ylabel: str = "", logx: bool = False, png: str = "plot.png") -> str:
    """``results.md`` (table + notes + machine), ``metrics.jsonl`` and one PNG in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=float) + "\n")
    notes = {**notes, "machine": describe_machine()}
    text = write_results_table(out / "results.md", rows, title=title, notes=notes)
    if series:
        plot_lines(out / png, series, xlabel=xlabel, ylabel=ylabel, title=title, logx=logx)
    print(text)
    return text
