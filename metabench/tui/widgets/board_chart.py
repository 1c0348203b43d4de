"""A board's chart in the terminal: each run's accuracy with its 95% interval beside the published number."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from metabench.tui.widgets.curve_plot import RGB, nice_ticks, set_ticks, swatch

if TYPE_CHECKING:
    from metabench.leaderboard.figures import Bar, BoardChart

RUN_COLOR: RGB = (31, 119, 180)
PUBLISHED_COLOR: RGB = (214, 39, 40)
REFERENCE_COLOR: RGB = (44, 160, 44)
RUN_MARK, PUBLISHED_MARK, REFERENCE_MARK = "●", "◆", "▲"

# Rows of the plot that are not bars: the frame's two lines, the tick labels and the axis label.
CHROME_ROWS = 4


class BoardChartPlot(PlotextPlot):
    """One BoardChart as a dot plot: a row per entry, best at the top, its label on the y axis.

    A run is a dot with its 95% interval as whiskers, its paper's number a diamond on the same row; a
    published reference (people, BPL on Lake's runs) is a triangle of its own colour. The height
    follows the number of entries, one row each.
    """

    DEFAULT_CSS = """
    BoardChartPlot {
        width: 1fr;
        height: 8;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart: BoardChart | None = None

    def show(self, chart: BoardChart) -> None:
        """Draw `chart` (nothing to do when it is the one drawn)."""
        if chart == self.chart:
            return
        self.chart = chart
        plt = self.plt
        plt.clear_data()
        rows = self.rows()
        runs = [(row, bar) for row, bar in zip(rows, chart.bars, strict=True) if not bar.reference]
        references = [(row, bar) for row, bar in zip(rows, chart.bars, strict=True) if bar.reference]
        published = [(row, bar) for row, bar in runs if bar.published is not None]
        # The paper's number first, so that a run on the same spot stays visible over it.
        _marks(plt, published, lambda bar: bar.published or 0.0, PUBLISHED_MARK, PUBLISHED_COLOR)
        if runs:
            # plotext draws an error bar of total width xerr centred on the point: twice the half-width.
            plt.error(
                [bar.accuracy for _, bar in runs],
                [row for row, _ in runs],
                xerr=[2 * (bar.ci95 or 0.0) for _, bar in runs],
                color=RUN_COLOR,
            )
        _marks(plt, runs, lambda bar: bar.accuracy, RUN_MARK, RUN_COLOR)
        _marks(plt, references, lambda bar: bar.accuracy, REFERENCE_MARK, REFERENCE_COLOR)
        plt.yticks(rows, [bar.label for bar in chart.bars])
        # Half a row of margin above the first entry and below the last: one terminal row per entry.
        plt.ylim(0.5, len(chart.bars) + 0.5)
        plt.xlabel(chart.axis)
        self.styles.height = len(chart.bars) + CHROME_ROWS
        self.refresh()

    def rows(self) -> list[int]:
        """The y coordinate of each bar, in the chart's order: the first (best) at the top."""
        count = len(self.chart.bars) if self.chart else 0
        return list(range(count, 0, -1))

    def render(self) -> RenderResult:
        """Round x ticks fitted to the width (never past 100%), then plotext's drawing."""
        if self.chart is not None and self.chart.bars:
            values = [value for bar in self.chart.bars for value in _extent(bar)]
            ticks = nice_ticks(min(values), min(100.0, max(values)), max(2, self.size.width // 12))
            set_ticks(self.plt, "x", ticks)
        return super().render()


def _marks(
    plt: Any, entries: list[tuple[int, Bar]], value: Callable[[Bar], float], marker: str, color: RGB
) -> None:
    """One mark per (row, bar) entry at value(bar) on the accuracy axis."""
    if entries:
        xs, ys = [value(bar) for _, bar in entries], [row for row, _ in entries]
        plt.scatter(xs, ys, marker=marker, color=color)


def _extent(bar: Bar) -> tuple[float, ...]:
    """Where a bar's marks reach on the accuracy axis: its interval and its paper's number."""
    return (bar.low, bar.high) + ((bar.published,) if bar.published is not None else ())


class BoardChartView(Vertical):
    """A board's chart under a one-line legend that says what each mark is."""

    DEFAULT_CSS = """
    BoardChartView {
        height: auto;
        margin: 0 0 1 0;
    }
    BoardChartView > .chart-legend {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, chart: BoardChart, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart = chart

    def compose(self) -> ComposeResult:
        yield Static(legend(self.chart), classes="chart-legend")
        plot = BoardChartPlot()
        plot.show(self.chart)
        yield plot

    def show(self, chart: BoardChart) -> None:
        """Draw another chart (a reloaded board) in place."""
        self.chart = chart
        self.query_one(".chart-legend", Static).update(legend(chart))
        self.query_one(BoardChartPlot).show(chart)


def legend(chart: BoardChart) -> Text:
    """The marks the chart uses, each in its colour."""
    entries = [swatch(RUN_COLOR, "run, whiskers: 95% interval", RUN_MARK)]
    if any(bar.published is not None for bar in chart.bars):
        entries.append(swatch(PUBLISHED_COLOR, "published", PUBLISHED_MARK))
    if any(bar.reference for bar in chart.bars):
        entries.append(swatch(REFERENCE_COLOR, "published reference", REFERENCE_MARK))
    return Text("   ").join(entries)
