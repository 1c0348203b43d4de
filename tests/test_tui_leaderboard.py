"""The leaderboard screen on REAL finished runs: sort by header click and by key, run records, export."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from test_tui_support import column_text, row_keys, settle, wait_until
from textual.widgets import Input, Label, Static

from metabench.db import open_database
from metabench.leaderboard import build_leaderboards, render_markdown
from metabench.tui.app import create_app
from metabench.tui.screens.dialogs import PathScreen
from metabench.tui.screens.leaderboard import LeaderboardScreen
from metabench.tui.screens.run_record import RunRecordScreen
from metabench.tui.widgets.leaderboard_table import LeaderboardTable

pytestmark = pytest.mark.slow  # the fixture trains and tests two real runs (about half a minute)

EVAL_EPISODES = "16"  # both runs on the same 16 test episodes, so they share one board


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A database with two real finished runs of one setting: protonet (1 meta-step) and pixels-nn."""
    path = tmp_path_factory.mktemp("leaderboard") / "source.db"
    results = path.parent / "results"
    common = ["--preset", "smoke", "--eval-episodes", EVAL_EPISODES, "--device", "cpu", "--events", "none"]
    commands = [
        ["protonet", "--meta-steps", "1", *common],
        ["pixels-nn", *common],
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
    """A private copy of the finished runs (SQLite's backup API copies a WAL database consistently)."""
    copy = tmp_path / "board.db"
    with sqlite3.connect(finished_runs) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


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


async def test_export_writes_the_markdown_leaderboard_where_the_user_says(db_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = render_markdown(build_leaderboards(open_database(db_path)))
    app = create_app(db_path)
    notes: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await open_board(pilot)
        real_notify = app.notify
        app.notify = lambda message, **kw: (notes.append(str(message)), real_notify(message, **kw))[1]

        # The default: ./LEADERBOARD.md, accepted with enter.
        await pilot.press("e")
        assert isinstance(app.screen, PathScreen)
        assert app.screen.query_one("#path", Input).value == "LEADERBOARD.md"
        await pilot.press("enter")
        await wait_until(pilot, lambda: (tmp_path / "LEADERBOARD.md").exists(), 30, "the default export")
        assert (tmp_path / "LEADERBOARD.md").read_text() == expected

        # A path typed in the dialog, in a folder that does not exist yet.
        await pilot.press("e")
        await pilot.press("home", "ctrl+k", *"boards/omniglot.md", "enter")
        target = tmp_path / "boards" / "omniglot.md"
        await wait_until(pilot, lambda: target.exists(), 30, "the typed export")
        await settle(pilot)
        assert target.read_text() == expected
        assert "## Omniglot vinyals, 5-way 1-shot" in expected and "protonet" in expected
        assert any(str(target) in note for note in notes), notes


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
