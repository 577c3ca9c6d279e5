"""Plots of results and metrics: one style per series, the legend outside the axes.

Every figure memjax writes goes through :func:`draw_lines` (or :func:`plot_lines`, which saves
it as a PNG), so all of them share two rules:

* **every series has its own style**: :func:`series_styles` gives series ``i`` the colour
  ``i mod 10`` of matplotlib's ``tab10`` cycle, the line style ``⌊i/10⌋ mod 4`` of
  (solid, dashed, dash-dot, dotted) and the marker ``(i + ⌊i/10⌋) mod 10``; so series ``i`` and
  ``i + 10`` share a colour but differ in line style and marker, and no two of the first 200
  series share all three (the (colour, line, marker) triple fixes ``⌊i/10⌋`` modulo
  lcm(4, 10) = 20);
* **the legend sits outside the axes** (:func:`legend_outside`: to the right, in as many
  columns as it needs; the saved PNG is cropped to include it), so it never covers the data.

Plots are written with matplotlib's Agg backend (no display needed).

Example:
    >>> import tempfile
    >>> from memjax.train import plot_lines, series_styles
    >>> [(s["color"], s["linestyle"], s["marker"]) for s in series_styles(12)[::10]]
    [('#1f77b4', '-', 'o'), ('#1f77b4', '--', 's')]
    >>> series = {f"variant {i}": ([1, 2, 4], [0.1 * i, 0.2 * i, 0.3 * i]) for i in range(12)}
    >>> p = plot_lines(tempfile.mkdtemp() + "/acc.png", series, xlabel="pairs", ylabel="accuracy")
    >>> p.suffix, p.stat().st_size > 0
    ('.png', True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["draw_lines", "legend_outside", "plot_lines", "plot_metric", "series_styles"]

COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""matplotlib's ``tab10`` colours, in order."""
LINESTYLES = ("-", "--", "-.", ":")
"""Solid, dashed, dash-dot, dotted."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
"""Ten filled markers that stay apart at small sizes."""
MAX_SERIES = 200
"""The number of series :func:`series_styles` styles without a repeat (see the module doc)."""


def series_styles(n: int, *, markers: bool = True) -> list[dict[str, Any]]:
    """``n`` matplotlib line styles, no two alike: ``ax.plot(x, y, **series_styles(n)[i])``.

    Series ``i`` gets colour ``COLORS[i % 10]``, line style ``LINESTYLES[(i // 10) % 4]`` and
    marker ``MARKERS[(i + i // 10) % 10]`` (module doc). With ``markers=False`` the markers are
    left out while colour and line style alone keep the series apart (up to 40 series); beyond
    that the markers stay.

    Args:
        n: the number of series, ``0 <= n <= 200``.
        markers: draw markers.

    Raises:
        ValueError: ``n`` is negative or above 200.

    Example:
        >>> styles = series_styles(3, markers=False)
        >>> [s["color"] for s in styles], styles[0]["marker"]
        (['#1f77b4', '#ff7f0e', '#2ca02c'], None)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"series_styles: n must be an int, got {n!r}")
    if not 0 <= n <= MAX_SERIES:
        raise ValueError(f"series_styles: n must be in [0, {MAX_SERIES}], got {n}")
    keep_markers = markers or n > len(COLORS) * len(LINESTYLES)
    styles = []
    for i in range(n):
        q = i // len(COLORS)
        styles.append(
            {
                "color": COLORS[i % len(COLORS)],
                "linestyle": LINESTYLES[q % len(LINESTYLES)],
                "marker": MARKERS[(i + q) % len(MARKERS)] if keep_markers else None,
            }
        )
    return styles


def legend_outside(ax, *, fontsize: str | float = "small"):
    """Puts ``ax``'s legend to the right of the axes (never on the data), in one column per 20
    entries; returns the legend, or ``None`` when ``ax`` has fewer than two labelled lines.

    Save the figure with ``bbox_inches="tight"`` so the PNG includes it (:func:`plot_lines` does).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = [ax.plot([0, 1], [0, i], label=str(i)) for i in range(3)]
        >>> bool(legend_outside(ax).get_bbox_to_anchor().x0 > ax.get_window_extent().x1)
        True
        >>> plt.close(fig)
    """
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) < 2:
        return None
    return ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        frameon=False,
        fontsize=fontsize,
        ncol=math.ceil(len(handles) / 20),
    )


def draw_lines(
    ax,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    markers: bool = True,
    legend: bool = True,
) -> list:
    """Draws each ``name: (xs, ys)`` of ``series`` on ``ax`` in its own style
    (:func:`series_styles`), with markers on at most ~12 points of a long line, and the legend
    outside (:func:`legend_outside`); returns the matplotlib lines.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> lines = draw_lines(ax, {"a": ([0, 1], [0, 1]), "b": ([0, 1], [1, 0])})
        >>> [line.get_color() for line in lines]
        ['#1f77b4', '#ff7f0e']
        >>> plt.close(fig)
    """
    styles = series_styles(len(series), markers=markers)
    lines = []
    for (name, (xs, ys)), style in zip(series.items(), styles, strict=True):
        xs = np.asarray(xs, dtype=float)
        ys = np.asarray(ys, dtype=float)
        if xs.shape != ys.shape or xs.ndim != 1:
            raise ValueError(
                f"series {name!r}: xs and ys must be 1-D of one length, got shapes "
                f"{xs.shape} and {ys.shape}"
            )
        (line,) = ax.plot(
            xs,
            ys,
            label=str(name),
            markersize=4,
            linewidth=1.4,
            markevery=max(1, len(xs) // 12),
            **style,
        )
        lines.append(line)
    if legend:
        legend_outside(ax)
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_lines(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    markers: bool = True,
    dpi: int = 120,
) -> Path:
    """An x-y line plot of several named series (:func:`draw_lines`: a style each, the legend
    outside), saved as a PNG at ``path``; returns the path.

    Example:
        >>> import tempfile
        >>> p = plot_lines(tempfile.mkdtemp() + "/acc.png",
        ...                {"memjax": ([1, 2, 4], [0.5, 0.7, 0.9]),
        ...                 "paper": ([1, 2, 4], [0.5, 0.6, 0.8])},
        ...                xlabel="shots", ylabel="accuracy")
        >>> p.stat().st_size > 0
        True
    """
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        draw_lines(ax, series, markers=markers)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=0.3)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_metric(
    path: str | Path,
    records: Iterable[Mapping[str, Any]],
    metric: str = "loss",
    *,
    splits: Sequence[str] | None = None,
    title: str | None = None,
    logy: bool = False,
) -> Path:
    """Plots ``metric`` over steps, one curve per split, from metric records (or
    ``read_jsonl(path)``); saves a PNG at ``path`` and returns it.

    Raises:
        ValueError: no record holds ``metric``.

    Example:
        >>> import tempfile
        >>> records = [{"step": s, "split": "train", "loss": 1 / s} for s in (1, 2, 3)]
        >>> plot_metric(tempfile.mkdtemp() + "/loss.png", records).name
        'loss.png'
    """
    series: dict[str, tuple[list[float], list[float]]] = {}
    for rec in records:
        if metric in rec and (splits is None or rec.get("split") in splits):
            xs, ys = series.setdefault(str(rec.get("split", "")), ([], []))
            xs.append(rec["step"])
            ys.append(rec[metric])
    if not series:
        raise ValueError(f"plot_metric: no record has the metric {metric!r}")
    return plot_lines(
        path,
        series,
        xlabel="step",
        ylabel=metric,
        title=title or metric,
        logy=logy,
        markers=any(len(xs) < 3 for xs, _ in series.values()),
    )
