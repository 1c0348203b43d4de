"""The metabench Textual app: three modes (catalog, runs, leaderboard), global keys, commands and themes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from metabench import paths
from metabench.tui.screens.catalog import CatalogScreen

if TYPE_CHECKING:
    from metabench.methods.card import MethodCard
    from metabench.tui.run_process import RunRequest
    from metabench.tui.screens.leaderboard import LeaderboardScreen
    from metabench.tui.screens.runs import RunsScreen

# Only the first screen is imported with the app; the others (and their widgets) load when first
# shown, so that the first frame waits for as little Python as possible.


def _runs_screen() -> RunsScreen:
    from metabench.tui.screens.runs import RunsScreen

    return RunsScreen()


def _leaderboard_screen() -> LeaderboardScreen:
    from metabench.tui.screens.leaderboard import LeaderboardScreen

    return LeaderboardScreen()


DARK_THEME = "textual-dark"
LIGHT_THEME = "textual-light"


class MetabenchApp(App[None]):
    """metabench's terminal interface: survey catalog, runs and leaderboards over one SQLite database."""

    TITLE = "metabench"
    CSS_PATH = "metabench.tcss"
    SCREENS = {"catalog": CatalogScreen, "runs": _runs_screen, "leaderboard": _leaderboard_screen}
    MODES = {"catalog": "catalog", "runs": "runs", "leaderboard": "leaderboard"}
    DEFAULT_MODE = "catalog"
    # -narrow below 120 columns; -wide up to 169; -xwide from 170, where side panels fit.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (170, "-xwide")]
    BINDINGS = [
        # 1/2/3 are written on the navigation tabs, so the footer keeps its room for the rest.
        Binding("1", "show('catalog')", "Catalog", show=False),
        Binding("2", "show('runs')", "Runs", show=False),
        Binding("3", "show('leaderboard')", "Leaderboard", show=False),
        Binding("n", "new_run", "New run", tooltip="Open the form to train and test a method"),
        Binding("f1,question_mark", "help", "Help", key_display="F1"),
        # In help and the command palette: at 80 columns the footer keeps its room for the screen's keys.
        Binding("ctrl+t", "toggle_theme", "Theme", show=False, tooltip="Switch the light and dark theme"),
        Binding("q", "quit", "Quit"),
        # Vim's keys move in every list and table, as in lazygit and k9s (typing in a field is unaffected).
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
    ]

    def __init__(self, db_path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.db_path: Path = paths.database_path(db_path)
        self.theme = DARK_THEME
        self.methods: list[MethodCard] | None = None
        self.methods_error: str | None = None
        self._methods_lock = threading.Lock()

    # --- the method list (blocking: call from a thread worker) --------------------------------

    def fetch_methods(self) -> list[MethodCard] | None:
        """The methods' cards, loaded once per app; None (and methods_error set) when unavailable.

        Cards need no torch, but installed plugins' cards are found through their packages' entry
        points, which the first paint need not wait for: fetched on first need, in a thread.
        """
        from metabench.methods.registry import all_cards

        with self._methods_lock:
            if self.methods is None and self.methods_error is None:
                try:
                    self.methods = all_cards()
                except Exception as exc:  # noqa: BLE001 - any failure becomes a message in the form
                    self.methods_error = str(exc)
            return self.methods

    # --- actions ---------------------------------------------------------------------------------

    async def action_show(self, mode: str) -> None:
        """Switch to one of the three main screens."""
        await self.switch_mode(mode)

    def action_new_run(self, method: str | None = None) -> None:
        """Open the run form (prefilled with `method`); a submitted form launches the run."""
        from metabench.tui.screens.run_form import RunFormScreen

        self.push_screen(RunFormScreen(method=method), self._launch_from_form)

    async def _launch_from_form(self, request: RunRequest | None) -> None:
        if request is not None:
            await self.launch_run(request)

    async def launch_run(self, request: RunRequest) -> None:
        """Start `request` as a subprocess and show it live on the runs screen."""
        await self.switch_mode("runs")
        self.runs_screen.launch(request)

    async def resume_run(self, run_id: str, title: str) -> None:
        """Resume an interrupted run from its last checkpoint, shown live on the runs screen."""
        await self.switch_mode("runs")
        self.runs_screen.resume(run_id, title)

    @property
    def runs_screen(self) -> RunsScreen:
        from metabench.tui.screens.runs import RunsScreen

        screen = self.get_screen("runs")
        assert isinstance(screen, RunsScreen)
        return screen

    def action_cursor(self, direction: str) -> None:
        """Move the cursor of the focused list or table (j and k)."""
        action = getattr(self.focused, f"action_cursor_{direction}", None)
        if action is not None:
            action()

    def action_help(self) -> None:
        """Show the keys of every screen and what each screen does."""
        from metabench.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        """Switch between the light and the dark theme."""
        self.theme = LIGHT_THEME if self.current_theme.dark else DARK_THEME

    def on_mount(self) -> None:
        # A closed terminal (SIGHUP) or a `kill` (SIGTERM) must interrupt the runs as quitting does;
        # the runs live in their own sessions, so nothing else would stop them.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for hangup in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(hangup, self._signalled)

    def on_unmount(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for hangup in (signal.SIGHUP, signal.SIGTERM):
                loop.remove_signal_handler(hangup)

    def _signalled(self) -> None:
        self.run_worker(self.interrupt_runs_and_exit(), name="hang up", group="hang-up", exclusive=True)

    async def interrupt_runs_and_exit(self) -> None:
        """Interrupt every training run (each saves its checkpoint and stays resumable), then exit."""
        if "runs" in self._screen_stacks:
            await self.runs_screen.cancel_all()
        self.exit()

    async def action_quit(self) -> None:
        """Quit; when runs are training, ask first, then interrupt them (they stay resumable)."""
        active = self.runs_screen.active_count() if "runs" in self._screen_stacks else 0
        if not active:
            self.exit()
            return
        from metabench.tui.screens.dialogs import ConfirmScreen

        noun, pronoun = ("run is", "it") if active == 1 else ("runs are", "them")

        async def decided(confirmed: bool | None) -> None:
            if confirmed:
                await self.interrupt_runs_and_exit()

        self.push_screen(
            ConfirmScreen(
                f"{active} {noun} training. Quit and interrupt {pronoun}? An interrupted run is saved "
                "with its last checkpoint and can be resumed later.",
                confirm="Interrupt and quit",
            ),
            decided,
        )

    # --- command palette -------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action of the app, and of the current screen, in the command palette."""
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Catalog", "Show the survey table and the papers", partial(self.action_show, "catalog")
        )
        yield SystemCommand("Runs", "Show the run history and live runs", partial(self.action_show, "runs"))
        yield SystemCommand(
            "Leaderboard",
            "Show the ranked results per setting",
            partial(self.action_show, "leaderboard"),
        )
        yield SystemCommand("New run", "Train and test a method on Omniglot", self.action_new_run)
        yield SystemCommand("Help", "Keys and what each screen does", self.action_help)
        yield SystemCommand("Toggle light/dark theme", "Switch the colour theme", self.action_toggle_theme)
        commands = getattr(screen, "screen_commands", None)
        if commands is not None:
            yield from commands()


def create_app(db_path: str | os.PathLike[str] | None = None) -> MetabenchApp:
    """The app over the database at `db_path` (default: METABENCH_DB or the user data dir)."""
    return MetabenchApp(db_path=db_path)


def run(db_path: str | os.PathLike[str] | None = None) -> None:
    """Run the TUI in this terminal until the user quits."""
    create_app(db_path).run()
