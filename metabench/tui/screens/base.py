"""The frame every main screen shares: navigation bar on top, key bindings in the footer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from metabench.tui.widgets.nav import NavBar

FOCUS_CHECK_S = 0.5


class MainScreen(Screen[None]):
    """A main screen (one per app mode): subclasses set MODE and write compose_body.

    It always has a focused widget: a widget hidden or removed while focused hands the focus to the
    screen's AUTO_FOCUS, so Enter and the keys never go nowhere.
    """

    MODE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""  # one paragraph for the help screen
    BINDINGS = [Binding("escape", "leave_input", "Back", show=False)]

    def on_mount(self) -> None:
        self.set_interval(FOCUS_CHECK_S, self.keep_focus)

    def keep_focus(self) -> None:
        """Focus the screen's default widget when the focus is nowhere, hidden or on a removed widget."""
        if not self.is_current:
            return
        focused = self.focused
        if focused is None or not focused.is_attached or not focused.is_on_screen or not focused.display:
            self.set_focus(None)
            self.focus_default()

    def focus_default(self) -> None:
        """Focus the first focusable widget matching AUTO_FOCUS (any widget when the screen sets none)."""
        selector = self.AUTO_FOCUS or "*"
        for widget in self.query(selector):
            if widget.focusable:
                widget.focus()
                return

    def action_leave_input(self) -> None:
        """Escape backs out of a text field to the screen's main list, as in the apps people know."""
        if isinstance(self.focused, Input):
            self.focus_default()

    def compose(self) -> ComposeResult:
        yield NavBar(active=self.MODE)
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def screen_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette (subclasses add theirs)."""
        return ()
