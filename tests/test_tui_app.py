"""App-wide behaviour: navigation, help, command palette, themes, quitting, small and large terminals."""

from __future__ import annotations

import pytest
from test_tui_support import settle, wait_until
from textual.widgets import DataTable, Footer, Static
from textual.widgets._footer import FooterKey

from metabench.tui.app import DARK_THEME, LIGHT_THEME, create_app
from metabench.tui.screens.catalog import CatalogScreen
from metabench.tui.screens.help import HelpScreen
from metabench.tui.screens.leaderboard import LeaderboardScreen
from metabench.tui.screens.run_form import RunFormScreen
from metabench.tui.screens.runs import RunsScreen
from metabench.tui.widgets.survey_table import SurveyTableView


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "app.db"


async def test_number_keys_and_tab_clicks_switch_screens(db_path):
    app = create_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        assert isinstance(app.screen, RunsScreen) and app.current_mode == "runs"
        await pilot.press("3")
        assert isinstance(app.screen, LeaderboardScreen)
        await pilot.click("#navbar Tab#catalog")  # the mouse works too
        await settle(pilot)
        assert isinstance(app.screen, CatalogScreen)
        await pilot.click("#navbar Tab#runs")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)


async def test_help_lists_every_screen_and_its_keys(db_path):
    app = create_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text", Static).render())
        for expected in (
            "Everywhere",
            "Catalog",
            "Runs",
            "Leaderboard",
            "New run",
            "Cancel",
            "Compare",
            "Export",
        ):
            assert expected in text, expected
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, CatalogScreen)


async def test_the_command_palette_runs_our_actions(db_path):
    app = create_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"leaderboard")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, LeaderboardScreen)
        # A screen's own commands are offered only where they apply.
        commands = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Export leaderboard", "Sort leaderboard", "New run", "Help"} <= set(commands)
        assert "Search papers" not in commands
        await pilot.press("ctrl+p")
        await pilot.press(*"new run")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunFormScreen)


async def test_the_theme_toggles_between_light_and_dark(db_path):
    app = create_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == DARK_THEME and app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.theme == LIGHT_THEME and not app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.theme == DARK_THEME


async def test_quit_without_runs_exits_at_once(db_path):
    app = create_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None, 10, "the exit")
    assert app.return_code == 0


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_every_screen_fits_small_and_large_terminals(db_path, size):
    app = create_app(db_path)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        survey = app.screen.query_one("#survey", SurveyTableView)
        # The survey table fits the width: no column runs off the right edge.
        assert sum(column.get_render_width(survey) for column in survey.columns.values()) <= size[0]
        await pilot.press("p")
        await settle(pilot)
        papers = app.screen.query_one("#papers", DataTable)
        assert sum(column.get_render_width(papers) for column in papers.columns.values()) <= size[0]
        assert papers.region.height >= 8  # room for rows at 80x24 too
        for key, screen_type in (("2", RunsScreen), ("3", LeaderboardScreen)):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, screen_type)
            # Defect 6: at 80 columns the command palette's label covered the footer's last keys.
            keys = app.screen.query(FooterKey)
            footer_keys = {item.key: item for item in keys if not item.has_class("-command-palette")}
            assert {"x", "c", "q"} <= set(footer_keys) if key == "2" else {"g", "e", "q"} <= set(footer_keys)
            palette = app.screen.query_one(Footer).query(FooterKey).filter(".-command-palette")
            left_of = palette.first().region.x if palette else size[0]
            assert all(item.region.right <= left_of for item in footer_keys.values())
        detail = app.screen.query_one("#board-detail")
        assert detail.display is (size[0] >= 170)  # the record panel only where the boards keep room


HANG_UP_DRIVER = """
import sys
from pathlib import Path

import metabench.tui.app
from metabench.tui.app import MetabenchApp
from metabench.tui.run_process import RunRequest

class LaunchingApp(MetabenchApp):
    # The app's own stylesheet: a relative CSS_PATH would be looked for beside this script.
    CSS_PATH = str(Path(metabench.tui.app.__file__).with_name(MetabenchApp.CSS_PATH))

    async def on_ready(self):
        await self.launch_run(RunRequest("protonet", preset="quick", device="cpu"))

LaunchingApp(sys.argv[1]).run(headless=True)
"""


@pytest.mark.slow
def test_defect_4_a_closed_terminal_interrupts_the_run_and_leaves_no_process(db_path):
    # SIGHUP (the terminal closed) killed the TUI at once; its run, in a session of its own, trained on
    # and recorded "finished" although help says that quitting interrupts it.
    import os
    import signal
    import subprocess
    import sys
    import time

    from metabench.db import open_database
    from metabench.leaderboard import list_runs

    def runs():
        return list_runs(open_database(db_path)) if db_path.exists() else []

    def wait_for(condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)

    driver = db_path.with_name("hang_up_driver.py")
    driver.write_text(HANG_UP_DRIVER)
    tui = subprocess.Popen([sys.executable, str(driver), str(db_path)])
    owner = None
    try:
        wait_for(lambda: any(run.status == "running" for run in runs()), 120, "the run to start")
        row = open_database(db_path).execute("SELECT owner_pid FROM runs").fetchone()
        owner = row[0]
        time.sleep(2.0)  # a few training steps
        tui.send_signal(signal.SIGHUP)
        assert tui.wait(timeout=60) == 0  # it interrupted the run and exited on its own
        [run] = runs()
        assert (run.status, run.resumable) == ("interrupted", True)
        assert 0 < run.steps_done < run.meta_steps
        with pytest.raises(ProcessLookupError):
            os.kill(owner, 0)  # the run's process is gone
    finally:
        if tui.poll() is None:
            tui.kill()
        if owner is not None:
            try:
                os.kill(owner, signal.SIGKILL)
            except ProcessLookupError:
                pass
