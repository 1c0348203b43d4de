"""Small modal dialogs: a yes/no confirmation and a path prompt (used by the leaderboard export)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True when confirmed."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, question: str, confirm: str = "OK") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm, variant="warning", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class PathScreen(ModalScreen[Path | None]):
    """Ask for a file path (prefilled); dismisses with the path, or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, default: str, action: str = "Write") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.default = default
        self.action = action

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="path-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.default, placeholder="path/to/file.md", id="path")
            yield Label("", id="path-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_input_changed(self, event: Input.Changed) -> None:
        problem = self._problem(event.value)
        self.query_one("#path-error", Label).update(problem)
        self.query_one("#ok", Button).disabled = bool(problem)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._finish()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._finish()
        else:
            self.dismiss(None)

    def _finish(self) -> None:
        value = self.query_one("#path", Input).value
        if not self._problem(value):
            self.dismiss(Path(value.strip()).expanduser())

    @staticmethod
    def _problem(value: str) -> str:
        text = value.strip()
        if not text:
            return "type a file name"
        path = Path(text).expanduser()
        if path.exists() and path.is_dir():
            return f"{text} is a folder; add a file name"
        return ""
