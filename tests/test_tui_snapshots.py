"""SVG snapshots (120x40) of the screens whose content is fixed by the catalog source and the code.

Screens that show runs are not snapshotted with data: run ids, timestamps, device names and
timings differ on every machine, so those screens are tested on their widget state instead
(test_tui_runs.py, test_tui_leaderboard.py). Update after a deliberate change with
`pytest tests/test_tui_snapshots.py --snapshot-update` and review the SVG diff.
"""

from __future__ import annotations

import pytest
from test_tui_support import settle, wait_until
from textual.widgets import Input

from metabench.tui.app import create_app
from metabench.tui.screens.paper import PaperScreen

SIZE = (120, 40)


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "snapshots.db")


async def _steady(pilot) -> None:
    await settle(pilot)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_catalog_survey_table(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, run_before=_steady)


def test_catalog_paper_search(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("slash", *"speech recognition")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_paper_record(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.push_screen(PaperScreen("snell2017prototypical"))
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_run_form_prefilled(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        pilot.app.action_new_run("protonet")
        await wait_until(pilot, lambda: getattr(pilot.app.screen, "cards", None), 120, "methods")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("f1")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_empty_leaderboard_says_what_to_do(snap_compare, app):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("3")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
