"""App-wide behaviour: navigation, help, command palette, themes, quitting, small and large terminals."""

from __future__ import annotations

import pytest
from test_tui_support import settle, wait_until
from textual.widgets import DataTable, Static

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
        for expected in ("Everywhere", "Catalog", "Runs", "Leaderboard", "New run", "Cancel run", "Export"):
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
        detail = app.screen.query_one("#board-detail")
        assert detail.display is (size[0] >= 170)  # the record panel only where the boards keep room
