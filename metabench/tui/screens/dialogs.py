"""Small modal dialogs: a yes/no confirmation and a path prompt (used by the leaderboard export)."""

from __future__ import annotations

import os
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
    """Ask for a file path (prefilled); dismisses with its absolute form, or None when cancelled.

    As the user types, it shows the absolute file it will write; it refuses a folder that does not
    exist (rather than creating one from a typo) and asks before replacing an existing file.
    """

    DEFAULT_CSS = """
    PathScreen #path-target {
        width: 1fr;
        height: auto;
    }
    """
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
            yield Label("", id="path-target", classes="dialog-hint")
            yield Label("", id="path-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._check(self.default)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._check(event.value)

    def _check(self, value: str) -> None:
        """Show where `value` writes, or why it cannot be written; the button follows."""
        target, problem = check_target(value)
        if target is None or problem:  # the problem names the path itself
            where = ""
        elif target.exists():
            where = f"replaces {target} (asks first)"
        else:
            where = f"writes {target}"
        self.query_one("#path-target", Label).update(where)
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
        target, problem = check_target(self.query_one("#path", Input).value)
        if problem or target is None:
            self._check(self.query_one("#path", Input).value)  # the disk may have changed meanwhile
            return
        if not target.exists():
            self.dismiss(target)
            return

        def decided(replace: bool | None) -> None:
            if replace:
                self.dismiss(target)
            else:
                self.query_one("#path", Input).focus()

        self.app.push_screen(ConfirmScreen(f"{target} exists. Replace it?", confirm="Replace"), decided)


def check_target(value: str) -> tuple[Path | None, str]:
    """The absolute file a typed path names (relative to the working folder), and what stops writing
    it there ("" when nothing does)."""
    text = value.strip()
    if not text:
        return None, "type a file name"
    target = Path(os.path.abspath(Path(text).expanduser()))
    folder = target.parent
    if target.is_dir():
        return target, f"{target} is a folder; add a file name"
    if not folder.exists():
        return target, f"no such folder: {folder}"
    if not folder.is_dir():
        return target, f"{folder} is not a folder"
    if target.exists() and not target.is_file():
        return target, f"{target} is not a regular file"
    if not os.access(folder, os.W_OK):
        return target, f"cannot write in {folder}: permission denied"
    return target, ""


def write_error(path: Path, error: OSError) -> str:
    """A failed write in one line that names the file the user chose (never a temporary file beside
    it, which is what an atomic write's error carries): 'cannot write /x/y.md: permission denied'."""
    reason = error.strerror or str(error) or type(error).__name__
    return f"cannot write {path}: {reason[:1].lower()}{reason[1:]}"
