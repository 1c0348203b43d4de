"""Draw the charts of metabench.leaderboard.figures with matplotlib (Agg, no pyplot), as SVG or PNG files."""

from __future__ import annotations

import contextlib
import io
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metabench import atomic
from metabench.config import TRANSDUCTIVE_MARK
from metabench.errors import MetabenchError
from metabench.leaderboard.figures import BoardChart, CurvePanel

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = {".svg": "svg", ".png": "png"}
MISSING_MATPLOTLIB = "matplotlib is not installed; install the plot extra: pip install 'metabench[plot]'"
STEP_AXIS = "meta-training step"
# Legend labels, also the labels of the error-bar containers, by which tests find what was drawn.
RUN_LEGEND = "run (95% CI)"
PUBLISHED_LEGEND = "published (95% CI)"
REFERENCE_LEGEND = "published reference (no run)"
TRANSDUCTIVE_LEGEND = f"{TRANSDUCTIVE_MARK} transductive evaluation"
_BOARD_LEGEND = (RUN_LEGEND, PUBLISHED_LEGEND, REFERENCE_LEGEND, TRANSDUCTIVE_LEGEND)
PNG_DPI = 144  # sharp in a paper's column at about 100 kB a chart
# A fixed salt makes the SVG's clip-path and glyph ids, random by default, the same on every render;
# with the date left out, a committed figure re-derives byte for byte. Text as glyph paths: the file
# looks the same whatever fonts the reader's machine has.
_RC = {"svg.hashsalt": "metabench", "svg.fonttype": "path"}
_PUBLISHED_OFFSET = 0.28  # the paper's number sits just below its run, on the same row
_MARKED_POINTS = 20  # a series with at most this many points shows a marker on each
_TITLE_WIDTH = 72  # characters per title line: a setting's title is too long for one


def _matplotlib() -> Any:
    """matplotlib, imported on first use: it is an optional extra, and only these commands need it."""
    try:
        import matplotlib
    except ImportError:
        raise MetabenchError(MISSING_MATPLOTLIB) from None
    return matplotlib


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """matplotlib's own defaults, whatever the user's matplotlibrc says, so the files are the same
    everywhere; building and saving a figure both happen inside."""
    mpl = _matplotlib()
    import matplotlib.style

    with matplotlib.style.context("default"), mpl.rc_context(_RC):
        yield


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # Agg only: no pyplot state, no window, works without a display
    return figure


def curves_figure(panels: Sequence[CurvePanel]) -> Figure:
    """One subplot per quantity, stacked on a shared meta-training-step axis, each run one line in the
    same colour in every panel, with one legend below them; ValueError when there is no panel."""
    if not panels:
        raise ValueError("no learning curve to draw: none of the runs recorded one")
    with _style():
        figure = _new_figure(7.0, 0.6 + 2.4 * len(panels))
        axes: list[Axes] = list(figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
        # Colours by run, not by panel: a run missing from one panel must not shift the others' colours.
        labels = list(dict.fromkeys(series.label for panel in panels for series in panel.series))
        colours = {label: f"C{index % 10}" for index, label in enumerate(labels)}
        handles = {}
        for ax, panel in zip(axes, panels, strict=True):
            for series in panel.series:
                # Sparse series (validation every few hundred steps, a single point) show each measured
                # point; dense training curves would drown in markers.
                marker = "o" if len(series.steps) <= _MARKED_POINTS else None
                (line,) = ax.plot(
                    series.steps,
                    series.values,
                    color=colours[series.label],
                    marker=marker,
                    markersize=3,
                    label=series.label,
                )
                handles.setdefault(series.label, line)
            ax.set_title(panel.quantity.title, loc="left", fontsize="medium")
            ax.set_ylabel(panel.quantity.unit)
            ax.grid(True, alpha=0.3)
        axes[-1].set_xlabel(STEP_AXIS)
        figure.legend(
            [handles[label] for label in labels],
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 2),
            frameon=False,
        )
    return figure


def board_figure(chart: BoardChart) -> Figure:
    """One row per entry, best at the top: a run's accuracy with its 95% CI, the paper's number as an
    open marker with its CI just below it, and references (people, BPL) as stars without interval."""
    bars = chart.bars
    with _style():
        figure = _new_figure(7.5, 1.5 + 0.34 * len(bars))
        ax = figure.subplots()
        runs = [(row, bar) for row, bar in enumerate(bars) if not bar.reference]
        published = [(row, bar) for row, bar in runs if bar.published is not None]
        references = [(row, bar) for row, bar in enumerate(bars) if bar.reference]
        if runs:
            ax.errorbar(
                [bar.accuracy for _, bar in runs],
                [row for row, _ in runs],
                xerr=[bar.ci95 or 0.0 for _, bar in runs],
                fmt="o",
                color="C0",
                capsize=3,
                label=RUN_LEGEND,
            )
        if published:
            ax.errorbar(
                [bar.published for _, bar in published],
                [row + _PUBLISHED_OFFSET for row, _ in published],
                xerr=[bar.published_ci or 0.0 for _, bar in published],
                fmt="D",
                markersize=5,
                markerfacecolor="white",
                color="C1",
                capsize=2,
                label=PUBLISHED_LEGEND,
            )
        if references:
            ax.plot(
                [bar.accuracy for _, bar in references],
                [row for row, _ in references],
                linestyle="none",
                marker="*",
                markersize=10,
                color="0.25",
                label=REFERENCE_LEGEND,
            )
        if any(bar.transductive for bar in bars):
            # An entry without a marker: the legend is where the reader looks up what a sign means.
            ax.plot([], [], linestyle="none", label=TRANSDUCTIVE_LEGEND)
        ax.set_yticks(range(len(bars)), [bar.label for bar in bars])
        for tick, bar in zip(ax.get_yticklabels(), bars, strict=True):
            if bar.reference:
                tick.set_fontstyle("italic")
        ax.set_ylim(len(bars) - 0.5, -0.7)  # best at the top, room for the last row's published mark
        ax.set_xlabel(chart.axis)
        ax.set_title(textwrap.fill(chart.title, _TITLE_WIDTH), loc="left", fontsize="medium")
        ax.grid(True, axis="x", alpha=0.3)
        # Below the axes, not inside: no corner is free of points on every board.
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda index: _BOARD_LEGEND.index(labels[index]))
        figure.legend(
            [handles[index] for index in order],
            [labels[index] for index in order],
            loc="outside lower center",
            ncols=2,
            fontsize="small",
            frameon=False,
        )
    return figure


def output_format(path: Path) -> str:
    """The file format `path`'s suffix asks for; ValueError naming the suffixes there are."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        named = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(f"{path} has {named}; a chart is written as {' or '.join(FORMATS)}")
    return FORMATS[suffix]


def figure_bytes(figure: Figure, fmt: str, dpi: int = PNG_DPI) -> bytes:
    """The figure as an SVG or PNG file's bytes; the same figure gives the same bytes every time."""
    buffer = io.BytesIO()
    with _style():
        # Date: None leaves the creation time out of the SVG metadata (PNG has none by default).
        metadata = {"Date": None} if fmt == "svg" else None
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def save_figure(figure: Figure, path: Path, dpi: int = PNG_DPI) -> None:
    """Write the figure in the format of `path`'s suffix (.svg or .png), atomically, into an existing
    folder; ValueError for another suffix, OSError when the file cannot be written."""
    data = figure_bytes(figure, output_format(path), dpi)
    atomic.write_bytes(Path(path), data, make_parents=False)
