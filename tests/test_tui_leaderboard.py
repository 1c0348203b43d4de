"""The leaderboard screen on REAL finished runs: sort by header click and by key, run records, the side
panel, charts, export."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_tui_support import column_text, ingest_committed_runs, private_copy, row_keys, settle, wait_until
from textual.color import Color
from textual.widgets import Input, Label, Static

from metabench.db import open_database
from metabench.leaderboard import build_leaderboards, render_markdown
from metabench.tui.app import DARK_THEME, LIGHT_THEME, create_app
from metabench.tui.screens.compare import CompareScreen
from metabench.tui.screens.dialogs import ConfirmScreen, PathScreen
from metabench.tui.screens.leaderboard import BoardRowRecordScreen, LeaderboardScreen
from metabench.tui.screens.run_record import RunRecordScreen
from metabench.tui.widgets.board_chart import BoardChartPlot
from metabench.tui.widgets.leaderboard_table import LeaderboardTable

pytestmark = pytest.mark.slow  # the fixture trains and tests three real runs (about half a minute)

EVAL_EPISODES = "16"  # both runs on the same 16 test episodes, so they share one board


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A database with real finished runs of one setting: protonet (1 meta-step, seed 0) and pixels-nn
    (seeds 0 and 1, which score alike: it trains nothing)."""
    path = tmp_path_factory.mktemp("leaderboard") / "source.db"
    results = path.parent / "results"
    common = ["--preset", "smoke", "--eval-episodes", EVAL_EPISODES, "--device", "cpu", "--events", "none"]
    commands = [
        ["protonet", "--meta-steps", "1", *common],
        ["pixels-nn", *common],
        ["pixels-nn", "--seed", "1", *common],
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "metabench", "run", *args, "--db", str(path), "--results", str(results)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    return path


@pytest.fixture
def db_path(finished_runs, tmp_path):
    """A private copy of the finished runs."""
    return private_copy(finished_runs, tmp_path / "board.db")


def header_offset(table: LeaderboardTable, key: str) -> tuple[int, int]:
    """Where to click on the header of column `key`."""
    x = 0
    for column_key, column in table.columns.items():
        if column_key == key:
            return (x + 1, 0)
        x += column.get_render_width(table)
    raise KeyError(key)


async def open_board(pilot) -> LeaderboardTable:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    assert isinstance(pilot.app.screen, LeaderboardScreen)
    tables = list(pilot.app.screen.query(LeaderboardTable).results(LeaderboardTable))
    assert len(tables) == 1
    return tables[0]


async def test_the_board_ranks_real_runs_and_sorts_by_header_click_and_keys(db_path):
    boards = build_leaderboards(open_database(db_path))
    ranked = [row.method for row in boards[0].rows]
    assert sorted(ranked) == ["pixels-nn", "protonet"]
    app = create_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_board(pilot)
        assert column_text(table, "method") == ranked
        assert column_text(table, "rank") == ["1", "2"]
        protonet = next(row for row in boards[0].rows if row.method == "protonet")
        assert protonet.published == 98.8  # Snell et al., 5-way 1-shot
        assert column_text(table, "published")[ranked.index("protonet")] == "98.80"
        assert column_text(table, "difference")[ranked.index("protonet")] == f"{protonet.difference:+.2f}"

        # Click the "Method" header: ascending by name, then again: descending.
        await pilot.click(table, offset=header_offset(table, "method"))
        assert column_text(table, "method") == ["pixels-nn", "protonet"]
        assert str(table.columns["method"].label).endswith("▲")
        await pilot.click(table, offset=header_offset(table, "method"))
        assert column_text(table, "method") == ["protonet", "pixels-nn"]
        assert str(table.columns["method"].label).endswith("▼")

        # Keys: s sorts by the next column (family), r reverses it.
        table.focus()
        await pilot.press("s")
        assert table.sort_column == "family"
        families = table.column_values("family")
        assert families == sorted(families)
        await pilot.press("r")
        assert table.column_values("family") == sorted(families, reverse=True)

        # Accuracy sorts best first on the first click: the ranking again.
        await pilot.click(table, offset=header_offset(table, "accuracy"))
        assert column_text(table, "method") == ranked
        accuracies = table.column_values("accuracy")
        assert accuracies == sorted(accuracies, reverse=True)


async def test_the_highlighted_run_shows_its_record_and_enter_opens_it(db_path):
    app = create_app(db_path)
    async with app.run_test(size=(200, 50)) as pilot:
        table = await open_board(pilot)
        table.focus()
        run_id = row_keys(table)[0]
        await settle(pilot)
        detail = str(app.screen.query_one("#board-detail .record", Static).render())
        assert run_id in detail and "accuracy" in detail and "16 test episodes" in detail
        assert app.screen.query_one("#board-detail").display  # the side panel fits at 200 columns
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunRecordScreen) and app.screen.run_id == run_id
        await pilot.press("escape")
        assert isinstance(app.screen, LeaderboardScreen)
        # A record shows the method's own step metrics beside the loss and accuracy (ProtoNet: its rate).
        [protonet] = [key for key in row_keys(table) if key.startswith("protonet-")]
        await app.push_screen(RunRecordScreen(protonet))
        await settle(pilot)
        rows = app.screen.query(".metric-curve")
        assert [str(row.query_one(Label).render()) for row in rows] == ["lr"]
        assert "0.001" in str(rows.first().query_one(".curve-value", Label).render())


async def test_a_row_of_several_seeds_shows_them_and_opens_its_first_seeds_record(db_path):
    """pixels-nn's two seeds share a row: "2 (sd 0.00)" beside protonet's "1 seed"; the side panel and
    the record it opens list both seeds' runs; the compare screen overlays every run of the board."""
    [board] = build_leaderboards(open_database(db_path))
    pixels = next(row for row in board.rows if row.method == "pixels-nn")
    assert pixels.seeds == (0, 1) and len(board.rows) == 2
    app = create_app(db_path)
    async with app.run_test(size=(200, 50)) as pilot:
        table = await open_board(pilot)
        methods = column_text(table, "method")
        assert column_text(table, "seeds")[methods.index("pixels-nn")] == "2 (sd 0.00)"
        assert column_text(table, "seeds")[methods.index("protonet")] == "1 seed"
        assert row_keys(table)[methods.index("pixels-nn")] == pixels.run_id  # the first seed's run
        # The rows share seed 0 alone, and the lower one says so in the side panel.
        lower = board.rows[1]
        assert lower.versus_note == "matched on seed 0"
        table.focus()
        table.move_cursor(row=methods.index("pixels-nn"))
        await settle(pilot)
        detail = side_panel(app)
        assert "2 seeds" in detail and "sd 0.00 over the seeds" in detail and pixels.run_ids[1] in detail
        assert ("matched on seed 0" in detail) == (lower is pixels)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, BoardRowRecordScreen) and app.screen.run_id == pixels.run_id
        record = str(app.screen.query_one("#record-detail .record", Static).render())
        assert pixels.run_ids[1] in record and "seed 0's record below" in record
        await pilot.press("escape")
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert sorted(app.screen.run_ids) == sorted(run for row in board.rows for run in row.run_ids)


async def test_lake_runs_board_shows_people_and_error_rates_beside_a_real_run(tmp_path):
    """Lake's 20 runs: the published references sit between the runs by accuracy, marked 'ref',
    with an error column; highlighting one shows its source, and enter opens no record."""
    path = tmp_path / "lake.db"
    args = ["pixels-nn", "--protocol", "lake-runs", "--ways", "20", "--queries", "1", "--preset", "smoke"]
    process = subprocess.run(
        [sys.executable, "-m", "metabench", "run", *args, "--events", "none", "--db", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    [board] = build_leaderboards(open_database(path))
    [run] = board.rows
    app = create_app(path)
    async with app.run_test(size=(160, 40)) as pilot:
        table = await open_board(pilot)
        methods = column_text(table, "method")
        assert methods == [entry.method if entry is run else entry.name for entry in board.entries()]
        assert column_text(table, "rank").count("ref") == 5 and "1" in column_text(table, "rank")
        people = methods.index("people")
        accuracy, error = column_text(table, "accuracy")[people], column_text(table, "error")[people]
        assert (accuracy, error) == ("95.5", "4.5")
        assert column_text(table, "error")[methods.index(run.method)] == f"{100 - run.accuracy:.2f}"
        # Sorted by rank, the references stay where their accuracy puts them.
        await pilot.press("r", "r")
        assert column_text(table, "method") == methods
        table.focus()
        table.move_cursor(row=people)
        await settle(pilot)
        detail = str(app.screen.query_one("#board-detail .record", Static).render())
        assert "people" in detail and "published reference, not a run" in detail and "Science 2015" in detail
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, LeaderboardScreen)


# --- the committed run records (results/runs): four boards, references included -------------------


@pytest.fixture(scope="module")
def committed_runs(tmp_path_factory):
    return ingest_committed_runs(tmp_path_factory.mktemp("committed") / "source.db")


@pytest.fixture
def runs_db(committed_runs, tmp_path):
    """A private copy of the committed runs' database."""
    return private_copy(committed_runs, tmp_path / "runs.db")


async def open_boards(pilot) -> list[LeaderboardTable]:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    assert isinstance(pilot.app.screen, LeaderboardScreen)
    return pilot.app.screen.tables()


def side_panel(app) -> str:
    return str(app.screen.query_one("#board-detail .record", Static).render())


async def test_the_side_panel_shows_the_focused_boards_row_and_follows_tab(runs_db):
    """Defect 5: the panel opened on a run of another board and did not follow Tab."""
    app = create_app(runs_db)
    async with app.run_test(size=(200, 50)) as pilot:
        tables = await open_boards(pilot)
        assert len(tables) == 4 and app.screen.query_one("#board-detail").display
        first, second = tables[0], tables[1]
        assert app.screen.focused is first
        # Lake's runs: the cursor starts on a published reference, and the panel says so.
        reference = first.selected_reference()
        assert reference is not None and reference.name in side_panel(app)
        assert "published reference, not a run" in side_panel(app)
        await pilot.press("tab")
        await settle(pilot)
        assert app.screen.focused is second
        assert second.selected_run_id() in side_panel(app)
        await pilot.press("j", "j")  # j moves down like the arrow
        await settle(pilot)
        assert second.cursor_row == 2 and second.selected_run_id() in side_panel(app)
        await pilot.press("k")
        await settle(pilot)
        assert second.cursor_row == 1 and second.selected_run_id() in side_panel(app)
        await pilot.press("shift+tab")
        await settle(pilot)
        assert app.screen.focused is first and "published reference, not a run" in side_panel(app)
        # A reload keeps the focused board's row in the panel.
        await pilot.press("tab", "f5")
        await settle(pilot)
        focused = app.screen.focused
        assert isinstance(focused, LeaderboardTable) and focused.board.setting == second.board.setting
        assert focused.selected_run_id() in side_panel(app)


def visible_columns(table: LeaderboardTable) -> list[str]:
    """The columns whose whole width is inside the table's viewport."""
    left, right = table.scroll_x, table.scroll_x + table.scrollable_content_region.width
    keys, x = [], 0
    for key, column in table.columns.items():
        width = column.get_render_width(table)
        if left <= x and x + width <= right:
            keys.append(key.value)
        x += width
    return keys


async def test_at_80_columns_s_sorts_only_by_columns_on_screen(runs_db):
    """Defect 6: at 80 columns half the sort steps sorted by columns one could not see."""
    app = create_app(runs_db)
    async with app.run_test(size=(80, 24)) as pilot:
        [table, *_] = await open_boards(pilot)
        on_screen = visible_columns(table)
        assert 3 <= len(on_screen) < len(table.columns)  # most columns are scrolled out of view
        seen = []
        for _ in range(len(table.columns)):
            await pilot.press("s")
            assert table.sort_column in visible_columns(table), (table.sort_column, on_screen)
            seen.append(table.sort_column)
        assert set(seen) == set(on_screen)  # every column on screen, in turn
        # Scrolled right, the columns that came into view join the cycle.
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        await pilot.press("s")
        assert table.sort_column in visible_columns(table)


def contrast(one: Color, other: Color) -> float:
    """The WCAG contrast ratio of two colours (4.5 is the minimum for body text)."""

    def luminance(color: Color) -> float:
        channels = [c / 255 for c in color.rgb]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


async def test_board_titles_read_in_the_light_and_the_dark_theme(runs_db):
    """Defect 10: the orange board titles were hard to read on the light theme."""
    app = create_app(runs_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_boards(pilot)
        for theme in (LIGHT_THEME, DARK_THEME):
            app.theme = theme
            await pilot.pause()
            titles = list(app.screen.query("#boards Label.board"))
            assert len(titles) == 4
            for title in titles:
                _, _, background, color = title.colors
                assert contrast(background, color) >= 4.5, (theme, color.hex, background.hex)


async def test_g_shows_and_hides_the_focused_boards_chart_under_its_table(runs_db):
    app = create_app(runs_db)
    async with app.run_test(size=(120, 40)) as pilot:
        tables = await open_boards(pilot)
        await pilot.press("tab")
        await settle(pilot)
        table = tables[1]
        await pilot.press("g")
        await settle(pilot)
        [plot] = app.screen.query(BoardChartPlot)
        assert len(plot.chart.bars) == len(table.board.rows) + len(table.board.references)
        assert [bar.label.split()[0] for bar in plot.chart.bars] == [row.method for row in table.board.rows]
        boards = list(app.screen.query_one("#boards").children)
        assert boards.index(plot.parent) == boards.index(table) + 1  # right under its table
        assert app.screen.focused is table
        await pilot.press("f5")  # a reload keeps it
        await settle(pilot)
        [plot] = app.screen.query(BoardChartPlot)
        await pilot.press("g")
        await settle(pilot)
        assert not app.screen.query(BoardChartPlot)


async def test_export_shows_where_it_writes_asks_before_replacing_and_refuses_a_missing_folder(
    runs_db, tmp_path, monkeypatch
):
    """Defect 9: export overwrote without asking, wrote relative names to an unshown folder, created
    missing folders silently and showed a raw temporary path on failure."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    expected = render_markdown(build_leaderboards(open_database(runs_db)))
    app = create_app(runs_db)
    notes: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await open_boards(pilot)
        real_notify = app.notify
        app.notify = lambda message, **kw: (notes.append(str(message)), real_notify(message, **kw))[1]

        def dialog_text() -> str:
            return " ".join(str(label.render()) for label in app.screen.query(Label))

        # The default, LEADERBOARD.md, shown with its absolute folder, accepted with enter.
        target = work / "LEADERBOARD.md"
        await pilot.press("e")
        assert isinstance(app.screen, PathScreen)
        assert app.screen.query_one("#path", Input).value == "LEADERBOARD.md"
        assert str(target) in dialog_text()
        await pilot.press("enter")
        await wait_until(pilot, target.exists, 30, "the default export")
        await settle(pilot)
        assert target.read_text() == expected and any(str(target) in note for note in notes)

        # Again: the file exists now, so the dialog says so and asks; "Cancel" keeps the file.
        target.write_text("kept\n")
        await pilot.press("e")
        assert "replaces" in dialog_text()
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen) and str(target) in app.screen.question
        await pilot.press("enter")  # the focused button is Cancel
        await settle(pilot)
        assert isinstance(app.screen, PathScreen) and target.read_text() == "kept\n"
        await pilot.press("enter")
        await pilot.click("#confirm")
        await wait_until(pilot, lambda: target.read_text() == expected, 30, "the confirmed export")

        # A folder that does not exist is named and refused, not created; escape leaves the dialog.
        await settle(pilot)
        await pilot.press("e")
        await pilot.press("home", "ctrl+k", *"boards/omniglot.md")
        assert f"no such folder: {work / 'boards'}" in dialog_text()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PathScreen) and not (work / "boards").exists()
        await pilot.press("escape")
        assert isinstance(app.screen, LeaderboardScreen)

        # A write that fails after the dialog (the folder went away) says so in one line that names
        # the chosen file, not the temporary file beside it.
        gone = work / "gone" / "board.md"
        notes.clear()
        app.screen.export(gone)
        await wait_until(pilot, lambda: notes, 30, "the failure")
        assert notes == [f"cannot write {gone}: no such file or directory"]
        assert not gone.parent.exists() and not any(".tmp" in name for name in os.listdir(work))
