"""The frame every main screen shares: navigation bar on top, key bindings in the footer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Footer

from metabench.tui.widgets.nav import NavBar


class MainScreen(Screen[None]):
    """A main screen (one per app mode): subclasses set MODE and write compose_body."""

    MODE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""  # one paragraph for the help screen

    def compose(self) -> ComposeResult:
        yield NavBar(active=self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def screen_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette (subclasses add theirs)."""
        return ()
