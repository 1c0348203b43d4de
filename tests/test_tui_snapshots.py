"""SVG snapshots of every screen at 80x24 (the smallest terminal it must be usable in) and at 200x50.

What they show is fixed: the catalog from its source files, and the run records committed under
results/runs (real runs, whose ids, times and devices are part of the record). Live runs are not
snapshotted (their speed differs on every machine); test_tui_runs.py tests those on their state.
Update after a deliberate change with `pytest tests/test_tui_snapshots.py --snapshot-update` and
review the SVG diff.
"""

from __future__ import annotations

import time

import pytest
from test_tui_support import ingest_committed_runs, private_copy, settle, wait_until
from textual.widgets import Input

from metabench.catalog import ensure_catalog
from metabench.db import open_database
from metabench.tui.app import create_app
from metabench.tui.screens.paper import PaperScreen
from metabench.tui.screens.run_record import RunRecordScreen

SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
PROTONET_RUN = "protonet-vinyals-5w1s-20261126T095555-e961"


@pytest.fixture(scope="module")
def committed_runs(tmp_path_factory):
    path = ingest_committed_runs(tmp_path_factory.mktemp("snapshots") / "source.db")
    db = open_database(path)
    ensure_catalog(db)  # once here, rather than by every app's first screen
    db.close()
    return path


@pytest.fixture
def app(committed_runs, tmp_path, monkeypatch):
    # Start times are shown in local time: one zone for every machine.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield create_app(private_copy(committed_runs, tmp_path / "snapshots.db"))
    monkeypatch.undo()
    time.tzset()


async def _steady(pilot) -> None:
    await settle(pilot)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


async def _catalog(pilot):
    await _steady(pilot)


async def _paper_search(pilot):
    await settle(pilot)
    await pilot.press("slash", *"speech recognition")


async def _paper(pilot):
    await settle(pilot)
    pilot.app.push_screen(PaperScreen("nichol2018first"))


async def _run_form(pilot):
    await settle(pilot)
    pilot.app.action_new_run("protonet")
    await wait_until(pilot, lambda: getattr(pilot.app.screen, "cards", None), 120, "the method list")
    pilot.app.screen.query_one("#shots", Input).value = "6"  # a problem shown beside its field


async def _help(pilot):
    await settle(pilot)
    await pilot.press("f1")


async def _runs(pilot):
    await settle(pilot)
    await pilot.press("2")


async def _run_record(pilot):
    await settle(pilot)
    pilot.app.push_screen(RunRecordScreen(PROTONET_RUN))


async def _leaderboard(pilot):
    await settle(pilot)
    await pilot.press("3")


async def _board_chart(pilot):
    await _leaderboard(pilot)
    await settle(pilot)
    await pilot.press("g")


async def _compare(pilot):
    await _leaderboard(pilot)
    await settle(pilot)
    await pilot.press("c")


async def _export(pilot):
    await _leaderboard(pilot)
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    pilot.app.screen.query_one(Input).value = "/no-such-folder/LEADERBOARD.md"


SCREENS = {
    "catalog": _catalog,
    "paper_search": _paper_search,
    "paper": _paper,
    "run_form": _run_form,
    "help": _help,
    "runs": _runs,
    "run_record": _run_record,
    "leaderboard": _leaderboard,
    "board_chart": _board_chart,
    "compare": _compare,
    "export": _export,
}


@pytest.mark.parametrize("size", SIZES, ids=SIZES)
@pytest.mark.parametrize("screen", SCREENS, ids=SCREENS)
def test_every_screen(snap_compare, app, screen, size):
    async def run_before(pilot):
        await SCREENS[screen](pilot)
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
