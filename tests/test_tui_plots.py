"""The TUI's plots on the REAL run records in results/runs: stored and live learning curves, a board's
chart, a run's record and the comparison of a board's runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_tui_support import ingest_committed_runs, settle
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from metabench.db import open_database
from metabench.leaderboard import RunRecord, build_leaderboards, get_run
from metabench.leaderboard.figures import BoardChart, board_chart, learning_curves
from metabench.tui.app import LIGHT_THEME, create_app
from metabench.tui.screens.compare import CompareScreen
from metabench.tui.screens.leaderboard import LeaderboardScreen
from metabench.tui.widgets.board_chart import BoardChartPlot, BoardChartView
from metabench.tui.widgets.curve_plot import CurvePlot, CurvePlots, nice_ticks, shared_part, tick_label
from metabench.tui.widgets.run_detail import RunDetail

VINYALS_5W1S = "Omniglot vinyals, 5-way 1-shot"


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory) -> Path:
    return ingest_committed_runs(tmp_path_factory.mktemp("plots") / "runs.db")


@pytest.fixture(scope="module")
def boards(runs_db):
    return build_leaderboards(open_database(runs_db))


@pytest.fixture(scope="module")
def five_way(boards):
    [board] = [board for board in boards if board.setting.title.startswith(VINYALS_5W1S)]
    return board


def records_of(runs_db: Path, run_ids) -> list[RunRecord]:
    db = open_database(runs_db)
    return [get_run(db, run_id) for run_id in run_ids]


def drawn(plot) -> list[tuple[str, list[float], list[float]]]:
    """What plotext was asked to draw: (marker, xs, ys) per signal, in drawing order."""
    monitor = plot.plt.monitor
    return [
        (markers[0], list(xs), list(ys))
        for markers, xs, ys in zip(monitor.marker, monitor.x, monitor.y, strict=True)
    ]


def stored(record: RunRecord, field: str, scale: float) -> tuple[list[int], list[float]]:
    """A quantity straight from the record's curve points (not through figures.py)."""
    points = [point for point in record.curve if getattr(point, field) is not None]
    return [point.step for point in points], [getattr(point, field) * scale for point in points]


def test_axes_get_round_ticks_that_enclose_the_data_and_legends_say_the_shared_setting_once():
    def labels(low, high, most):
        ticks = nice_ticks(low, high, most)
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= most
        return [tick_label(tick, ticks[1] - ticks[0]) for tick in ticks]

    assert labels(260, 1500, 6) == ["250", "500", "750", "1k", "1.25k", "1.5k"]
    assert labels(0.0, 1.0, 5) == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert labels(62.1, 99.4, 6) == ["60", "70", "80", "90", "100"]
    assert labels(96.7, 96.7, 4) == ["95", "96", "97", "98"]  # a flat line still gets an axis
    assert shared_part(["maml vinyals 5w1s seed 0", "maml vinyals 5w1s seed 1", "protonet vinyals 5w1s"]) == (
        "vinyals 5w1s",
        ["maml seed 0", "maml seed 1", "protonet"],
    )
    different = ["maml vinyals 5w1s", "maml lake 5w1s"]
    assert shared_part(different) == ("", different)


class Host(App[None]):
    """A bare app around the widgets under test."""

    def __init__(self, *widgets) -> None:
        super().__init__()
        self.widgets = widgets

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield from self.widgets


async def test_curve_plots_draw_every_runs_stored_curve_with_one_colour_per_run(runs_db, five_way):
    records = records_of(runs_db, [row.run_id for row in five_way.rows])
    trained = [record for record in records if record.curve]
    assert len(trained) == len(records) - 1  # pixels-nn does not train
    plots = CurvePlots()
    app = Host(plots)
    async with app.run_test(size=(150, 60)) as pilot:
        plots.show(learning_curves(records))
        await pilot.pause()
        widgets = plots.plots
        assert [plot.panel.quantity.field for plot in widgets] == ["loss", "train_accuracy", "val_accuracy"]
        for plot, (field, scale) in zip(
            widgets, (("loss", 1.0), ("train_accuracy", 100.0), ("val_accuracy", 100.0)), strict=True
        ):
            lines = drawn(plot)
            assert len(lines) == len(trained)
            for record, (marker, steps, values) in zip(trained, lines, strict=True):
                assert (steps, values) == stored(record, field, scale)
                assert (marker == "●") == (len(steps) == 1)  # a one-point series is a dot
            # One colour per run, the same in every panel.
            colours = [[plots.series_colors[line.label]] * len(line.steps) for line in plot.panel.series]
            assert plot.plt.monitor.color == colours
        assert len(set(plots.series_colors.values())) == len(trained)
        # The legend names each run once and says the shared setting once.
        legend = str(plots.query_one(".curve-legend", Static).render())
        assert legend.startswith("vinyals 5w1s:")
        assert all(f" {record.method}" in legend for record in trained) and "pixels-nn" not in legend
        # Side by side where three fit, stacked where one does.
        assert plots.query_one(".curve-grid").styles.grid_size_columns == 3
        await pilot.resize_terminal(60, 60)
        await pilot.pause()
        assert plots.query_one(".curve-grid").styles.grid_size_columns == 1


async def test_live_updates_redraw_the_same_plots_in_place(runs_db, five_way):
    """What the live monitor does: show() on every update with the curve so far."""
    [record] = records_of(runs_db, [five_way.rows[0].run_id])
    first_validation = next(i for i, point in enumerate(record.curve) if point.val_accuracy is not None)
    plots = CurvePlots(plot_height=8)
    app = Host(plots)
    async with app.run_test(size=(120, 40)) as pilot:
        loss_plot = None
        for count in (1, 2, first_validation + 1, len(record.curve)):
            panels = learning_curves([dataclasses.replace(record, curve=record.curve[:count])])
            plots.show(panels)
            await pilot.pause()
            loss_plot = loss_plot or plots.plots[0]
            assert plots.plots[0] is loss_plot  # redrawn in place, never mounted again
            assert len(plots.plots) == (3 if count > first_validation else 2)  # validation joins later
            assert [plot.parent for plot in plots.plots] == [plots.query_one(".curve-grid")] * len(panels)
            [(marker, steps, _)] = drawn(loss_plot)
            assert steps == [point.step for point in record.curve[:count]]
            assert marker == ("●" if count == 1 else "braille")  # one point is a dot, more a line
            assert not plots.query_one(".curve-legend").display  # one run: no legend
        colours, widgets = dict(plots.series_colors), plots.plots
        plots.show(panels)  # the same data again: nothing to redraw
        assert plots.plots == widgets and plots.series_colors == colours
        assert [plot.size.height for plot in widgets] == [8, 8, 8]


async def test_plots_follow_the_app_theme(runs_db, five_way):
    [record] = records_of(runs_db, [five_way.rows[0].run_id])
    plot = CurvePlot(learning_curves([record])[0])
    app = Host(plot)
    async with app.run_test(size=(80, 20)) as pilot:
        await pilot.pause()
        backgrounds = set()
        for theme in ("textual-dark", LIGHT_THEME):
            app.theme = theme
            await pilot.pause()
            canvas = plot.render().spans[0].style.bgcolor
            assert canvas.triplet.hex.upper() == app.theme_variables["surface"].upper()
            backgrounds.add(canvas.triplet.hex)
        assert len(backgrounds) == 2


def bars_drawn(plot: BoardChartPlot) -> dict[str, list]:
    """The board chart's marks as plotext holds them, by kind."""
    lines = drawn(plot)
    whiskers = [(xs, ys[0]) for marker, xs, ys in lines if marker == "─"]
    dots = {marker: list(zip(xs, ys, strict=True)) for marker, xs, ys in lines if marker in "●◆▲"}
    return {"whiskers": whiskers, **dots}


@pytest.mark.parametrize("protocol", ["lake-runs", "vinyals, 5-way"])
async def test_the_board_chart_has_one_entry_per_board_row_with_its_interval(boards, protocol):
    [board] = [board for board in boards if f"Omniglot {protocol}" in board.setting.title]
    chart: BoardChart = board_chart(board)
    view = BoardChartView(chart)
    app = Host(view)
    async with app.run_test(size=(80, 40)) as pilot:
        await pilot.pause()
        plot = view.query_one(BoardChartPlot)
        entries = board.entries()
        names = [getattr(entry, "method", None) or entry.name for entry in entries]
        seeds = [len(getattr(entry, "seeds", ())) for entry in entries]  # a mean over seeds says so
        names = [
            name + (f" ({count} seeds)" if count > 1 else "")
            for name, count in zip(names, seeds, strict=True)
        ]
        assert [bar.label.replace(" †", "") for bar in chart.bars] == names
        rows = dict(zip((bar.label for bar in chart.bars), plot.rows(), strict=True))
        monitor = plot.plt.monitor  # the y axis names each entry on its row
        labelled = dict(zip(monitor.yticks[0], monitor.ylabels[0], strict=True))
        assert labelled == {row: label for label, row in rows.items()}
        marks = bars_drawn(plot)
        runs = [bar for bar in chart.bars if not bar.reference]
        # Each run: a dot at its accuracy and whiskers over its 95% interval, on its own row.
        assert marks["●"] == [(bar.accuracy, rows[bar.label]) for bar in runs]
        assert marks["whiskers"] == [([bar.low, bar.high], rows[bar.label]) for bar in runs]
        for bar, row in zip(board.rows, runs, strict=True):
            assert (row.accuracy, row.ci95) == (bar.accuracy, bar.ci95)
        published = [(bar.published, rows[bar.label]) for bar in runs if bar.published is not None]
        references = [(bar.accuracy, rows[bar.label]) for bar in chart.bars if bar.reference]
        assert marks.get("◆", []) == published and marks.get("▲", []) == references
        assert bool(references) == (protocol == "lake-runs")
        # At 80 columns every label is written whole, one row per entry, best at the top.
        text = plot.render().plain.splitlines()
        assert plot.size.height == len(chart.bars) + 4
        for index, bar in enumerate(chart.bars):
            assert text[1 + index].strip().startswith(bar.label)
        legend = str(view.query_one(".chart-legend", Static).render())
        assert "95% interval" in legend and ("published reference" in legend) == bool(references)


async def test_a_run_record_plots_its_curves_and_counts_points_in_words(runs_db, five_way):
    """Defect 10: a one-point curve said "(1 pts)"."""
    [record] = records_of(runs_db, [row.run_id for row in five_way.rows if row.method == "relation"])
    assert record.curve[0].metrics  # relation reports its own metrics: one sparkline row each
    detail = RunDetail()
    app = Host(detail)
    async with app.run_test(size=(100, 60)) as pilot:
        detail.show(dataclasses.replace(record, curve=record.curve[:1]))
        await pilot.pause()
        values = [str(label.render()) for label in detail.query(".metric-curve .curve-value").results(Label)]
        assert values and all(value.endswith("  1 point") for value in values)
        text = str(detail.query_one(".record", Static).render())
        assert "1 point to step" in text and "pts" not in text
        detail.show(record)
        await pilot.pause()
        text = str(detail.query_one(".record", Static).render())
        assert f"{len(record.curve)} points to step {record.curve[-1].step}" in text
        loss, *_ = detail.query_one(CurvePlots).plots
        [(_, steps, values)] = drawn(loss)
        assert (steps, values) == stored(record, "loss", 1.0)


async def test_c_compares_the_curves_of_every_run_on_the_focused_board(runs_db, five_way):
    app = create_app(runs_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, LeaderboardScreen)
        [table] = [t for t in app.screen.tables() if t.board.setting == five_way.setting]
        table.focus()
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        # Every run of the board, each seed of a multi-seed row included.
        run_ids = [run_id for row in five_way.rows for run_id in row.run_ids]
        assert app.screen.run_ids == table.run_ids() == run_ids
        plots = app.screen.query_one(CurvePlots)
        methods = [series.label.split()[0] for series in plots.plots[0].panel.series]
        assert methods == [
            row.method for row in five_way.rows for _ in row.run_ids if row.method != "pixels-nn"
        ]
        note = str(app.screen.query_one("#compare-note", Static).render())
        assert note == "no learning curve recorded: pixels-nn"
        await pilot.press("escape")
        assert isinstance(app.screen, LeaderboardScreen)
