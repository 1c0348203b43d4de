"""Learning curves in the terminal with plotext: one chart per quantity, each run a coloured line."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Container
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot

if TYPE_CHECKING:
    from metabench.leaderboard.figures import CurvePanel

RGB = tuple[int, int, int]

# Tableau's ten colours, then five darker ones: apart from each other, and readable on the dark and
# the light theme's plot background alike (plotext's own sequence has pale yellows that vanish on white).
PALETTE: tuple[RGB, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 63, 120),
    (166, 77, 0),
    (20, 90, 20),
    (120, 20, 60),
    (80, 50, 130),
)

STEP_AXIS = "meta-training step"
LINE = "━━"  # a series' swatch in a legend


def nice_ticks(low: float, high: float, most: int) -> list[float]:
    """At most `most` round values (1, 2, 2.5 or 5 times a power of ten apart) covering low..high.

    The first and last ticks enclose the range, so they also make the axis limits.
    """
    if high <= low:
        low, high = low - 1.0, high + 1.0
    most = max(2, most)
    raw = (high - low) / (most - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0):
        step = factor * magnitude
        first, last = math.floor(low / step), math.ceil(high / step)
        if last - first + 1 <= most:
            return [round(index * step, 10) for index in range(first, last + 1)]
    return [low, high]


def tick_label(value: float, step: float) -> str:
    """A tick's text, as short as the spacing allows: 1500 -> 1.5k, 0.25 -> 0.25, 90 -> 90."""
    if abs(value) >= 1000 and step >= 100:
        return f"{value / 1000:g}k"
    decimals = 0  # as many as the step between ticks needs, so that neighbours never print alike
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    return f"{value:.{decimals}f}"


def set_ticks(plt: Any, axis: str, ticks: Sequence[float]) -> None:
    """Make `ticks` the axis limits and labelled ticks of `axis` ("x" or "y") of a plotext figure."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    labels = [tick_label(value, step) for value in ticks]
    if axis == "x":
        plt.xlim(ticks[0], ticks[-1])
        plt.xticks(list(ticks), labels)
    else:
        plt.ylim(ticks[0], ticks[-1])
        plt.yticks(list(ticks), labels)


def fit_title(title: str, width: int) -> str:
    """The title, without its parenthesis when the chart is too narrow for all of it (plotext would
    drop a title that does not fit, and the title is what names the y axis)."""
    if len(title) + 2 <= width or " (" not in title:
        return title
    return title.split(" (")[0]


def swatch(color: RGB, label: str, marker: str = LINE) -> Text:
    """A legend entry: the marker in the series' colour, then its label."""
    return Text.assemble((marker, f"rgb({color[0]},{color[1]},{color[2]})"), " ", label)


def shared_part(labels: Sequence[str]) -> tuple[str, list[str]]:
    """What every label says after its first word (a board's protocol and episodes), and the labels
    without it: a legend says the shared part once. Words are compared by position."""
    split = [label.split() for label in labels]
    if len(split) < 2:
        return "", list(labels)
    shortest = min(len(words) for words in split)
    end = 1
    while end < shortest and len({words[end] for words in split}) == 1:
        end += 1
    shared = " ".join(split[0][1:end])
    return shared, [" ".join(words[:1] + words[end:]) for words in split]


class CurvePlot(PlotextPlot):
    """One CurvePanel: every series a line in its colour against the meta-training step.

    show() draws a panel; a panel equal to the one drawn is not drawn again, so calling it on every
    live update costs a comparison unless the data changed. The plot follows the app's theme.
    """

    DEFAULT_CSS = """
    CurvePlot {
        height: 12;
        width: 1fr;
    }
    """

    def __init__(self, panel: CurvePanel | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.panel: CurvePanel | None = None
        self.series_colors: dict[str, RGB] = {}
        if panel is not None:
            self.show(panel)

    def show(self, panel: CurvePanel, colors: Mapping[str, RGB] | None = None) -> None:
        """Draw `panel`; `colors` maps series labels to colours (default: the palette in order)."""
        colors = dict(colors) if colors is not None else {}
        for index, series in enumerate(panel.series):
            colors.setdefault(series.label, PALETTE[index % len(PALETTE)])
        if panel == self.panel and colors == self.series_colors:
            return
        self.panel, self.series_colors = panel, colors
        plt = self.plt
        plt.clear_data()
        for series in panel.series:
            steps, values = list(series.steps), list(series.values)
            if len(steps) == 1:  # a line needs two points: one point is a dot
                plt.scatter(steps, values, marker="●", color=colors[series.label])
            else:
                plt.plot(steps, values, marker="braille", color=colors[series.label])
        plt.xlabel(STEP_AXIS)
        self.refresh()

    def render(self) -> RenderResult:
        """Ticks and title fitted to the current size, then plotext's drawing."""
        panel = self.panel
        if panel is not None and panel.series:
            width, height = self.size
            steps = [step for series in panel.series for step in series.steps]
            values = [value for series in panel.series for value in series.values]
            if panel.quantity.unit == "%":  # accuracies: never an axis past 100%
                values = [min(value, 100.0) for value in values]
            set_ticks(self.plt, "x", nice_ticks(min(steps), max(steps), max(2, width // 10)))
            set_ticks(self.plt, "y", nice_ticks(min(values), max(values), max(2, (height - 5) // 3 + 1)))
            self.plt.title(fit_title(panel.quantity.title, width))
        return super().render()


class CurvePlots(Widget):
    """Every panel of a learning_curves() result under one legend, side by side where they fit.

    The API for live runs: keep one CurvePlots and call show(panels) on every update. Panels equal to
    the ones drawn cost a comparison; changed ones are redrawn in place (a plot is only added when
    its quantity first appears, e.g. the first validation), and each run keeps its colour from one
    call to the next, so nothing flickers. Each plot is `plot_height` rows high; with fill=True the
    plots instead share the height of the container around this widget (each at least `plot_height`).
    """

    DEFAULT_CSS = """
    CurvePlots {
        height: auto;
        layout: vertical;
    }
    CurvePlots > .curve-legend {
        height: auto;
        margin: 0 0 1 0;
    }
    CurvePlots > .curve-grid {
        layout: grid;
        grid-size: 1;
        grid-gutter: 1 2;
        height: auto;
    }
    """

    def __init__(
        self,
        panels: Sequence[CurvePanel] = (),
        *,
        min_plot_width: int = 46,
        empty: str = "No learning curve recorded.",
        plot_height: int = 12,
        fill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.panels: tuple[CurvePanel, ...] = ()
        self.series_colors: dict[str, RGB] = {}
        self.min_plot_width = min_plot_width
        self.empty = empty
        self.plot_height = plot_height
        self.fill = fill
        self._plots: list[CurvePlot] = []
        self._pending = tuple(panels)  # what show() was given before the widget was mounted

    def compose(self) -> ComposeResult:
        yield Static("", classes="curve-legend")
        yield Container(classes="curve-grid")

    def on_mount(self) -> None:
        self._show_legend()
        self.show(self._pending)

    @property
    def plots(self) -> list[CurvePlot]:
        """The plot widgets, one per panel, in panel order."""
        return list(self._plots)

    def show(self, panels: Sequence[CurvePanel]) -> None:
        """Draw `panels` (from figures.learning_curves, or built the same way from live events)."""
        panels = tuple(panels)
        if not self.is_mounted:
            self._pending = panels
            return
        if panels == self.panels:
            return
        self.panels = panels
        self.series_colors = self._assign_colors(panels)
        self._show_legend()
        # Keep the plot of every quantity still shown; add plots for new ones in their place.
        grid = self.query_one(".curve-grid", Container)
        kept = {plot.panel.quantity: plot for plot in self._plots if plot.panel is not None}
        plots = [kept.pop(panel.quantity, None) or CurvePlot() for panel in panels]
        for plot in kept.values():
            plot.remove()
        for index, plot in enumerate(plots):
            if plot.parent is None:
                grid.mount(plot, after=plots[index - 1] if index else None, before=None if index else 0)
        self._plots = plots
        for plot, panel in zip(self._plots, panels, strict=True):
            plot.show(panel, self.series_colors)
        self.call_after_refresh(self.relayout)  # once the legend has its new height

    def _assign_colors(self, panels: Sequence[CurvePanel]) -> dict[str, RGB]:
        """A colour per label: a run keeps the one it had, a new run takes the first one unused."""
        labels = list(dict.fromkeys(series.label for panel in panels for series in panel.series))
        colors = {label: self.series_colors[label] for label in labels if label in self.series_colors}
        free = [color for color in PALETTE if color not in colors.values()]
        for label in labels:
            if label not in colors:
                colors[label] = free.pop(0) if free else PALETTE[len(colors) % len(PALETTE)]
        return colors

    def _show_legend(self) -> None:
        legend = self.query_one(".curve-legend", Static)
        labels = list(self.series_colors)
        if not self.panels:
            legend.update(Text(self.empty, style="dim"))
            legend.display = bool(self.empty)
            return
        legend.display = len(labels) > 1  # one run: the host already says which
        if len(labels) > 1:
            shared, short = shared_part(labels)
            entries = [
                swatch(self.series_colors[label], name) for label, name in zip(labels, short, strict=True)
            ]
            text = Text("   ").join(entries)
            legend.update(Text.assemble((f"{shared}: ", "dim"), text) if shared else text)

    def on_resize(self, event: Resize) -> None:
        self.relayout()

    def relayout(self) -> None:
        """As many plots side by side as are at least min_plot_width wide; with fill, their height.

        Runs by itself when this widget's width changes; with fill, the host calls it when the
        height of the container around it changes.
        """
        width = self.size.width
        if not self._plots or not width:
            return
        columns = max(1, min(len(self._plots), width // self.min_plot_width))
        rows = math.ceil(len(self._plots) / columns)
        height = self.plot_height
        if self.fill and isinstance(self.parent, Widget):
            legend = self.query_one(".curve-legend", Static)
            used = legend.outer_size.height + legend.styles.margin.height if legend.display else 0
            gutters = rows - 1
            height = max(height, (self.parent.content_region.height - used - gutters) // rows)
        grid = self.query_one(".curve-grid", Container)
        grid.styles.grid_size_columns = columns
        grid.styles.grid_rows = str(height)
        for plot in self._plots:
            plot.styles.height = height
