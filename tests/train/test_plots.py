"""The plotting helper: every series its own (colour, line style, marker), the legend off the
axes, for the 12 series of the Titans recall figure and beyond."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from memjax.train import draw_lines, legend_outside, plot_lines, series_styles


def _triple(style):
    return (style["color"], style["linestyle"], style["marker"])


@pytest.mark.parametrize("n", [1, 10, 12, 40, 200])
def test_series_styles_never_repeat(n):
    triples = [_triple(s) for s in series_styles(n)]
    assert len(set(triples)) == n
    # the first ten differ in colour alone; series i and i + 10 also differ in line and marker
    assert len({t[0] for t in triples[:10]}) == min(n, 10)
    for i in range(n - 10):
        a, b = triples[i], triples[i + 10]
        assert a[0] == b[0] and a[1] != b[1] and a[2] != b[2]


def test_series_styles_without_markers_still_distinct():
    triples = [_triple(s) for s in series_styles(40, markers=False)]
    assert len(set(triples)) == 40 and {t[2] for t in triples} == {None}
    assert None not in {s["marker"] for s in series_styles(41, markers=False)}


def test_series_styles_bad_n():
    with pytest.raises(ValueError, match="n must be in"):
        series_styles(201)
    with pytest.raises(ValueError, match="n must be in"):
        series_styles(-1)
    with pytest.raises(TypeError, match="n must be an int"):
        series_styles(2.0)


def _recall_like_series(n=12):
    # the recall figure: 12 variants, accuracy in [0, 1] at 5 pair counts, lines that cross
    xs = [4, 8, 12, 16, 20]
    return {f"variant_{i}": (xs, [((i * 7 + j * 3) % 11) / 10 for j in range(5)]) for i in range(n)}


def test_drawn_lines_are_distinct_and_legend_is_off_the_axes():
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        lines = draw_lines(ax, _recall_like_series())
        drawn = [
            (to_hex(line.get_color()), line.get_linestyle(), line.get_marker()) for line in lines
        ]
        assert len(set(drawn)) == 12
        # the old bug: a 10-colour cycle gave series 0 and 10 (lmm_deep, gated_delta) one style
        assert drawn[0] != drawn[10] and drawn[1] != drawn[11]
        fig.canvas.draw()
        legend = ax.get_legend()
        assert legend is not None and len(legend.get_texts()) == 12
        box, axes_box = legend.get_window_extent(), ax.get_window_extent()
        assert box.x0 >= axes_box.x1  # wholly to the right of the axes
        assert not box.overlaps(axes_box)
    finally:
        plt.close(fig)


def test_legend_outside_needs_two_labelled_lines():
    fig, ax = plt.subplots()
    try:
        ax.plot([0, 1], [0, 1], label="only")
        assert legend_outside(ax) is None
    finally:
        plt.close(fig)


def test_plot_lines_png_includes_the_legend(tmp_path):
    path = plot_lines(
        tmp_path / "recall.png",
        _recall_like_series(),
        xlabel="pairs",
        ylabel="accuracy",
        title="recall",
    )
    with Image.open(path) as img:
        width, height = img.size
    # a 6 x 4 inch figure at 120 dpi is 720 px wide; the legend to its right widens the crop
    assert width > 720 and height > 300
    with pytest.raises(ValueError, match="'bad'"):
        plot_lines(tmp_path / "bad.png", {"bad": ([1, 2], [1, 2, 3])})
