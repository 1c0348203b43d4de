"""The help screen (F1 or ?): what each screen is for and its keys, built from the bindings themselves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

INTRO = (
    "[b]metabench[/b]: a workbench for meta-learning research. The survey of meta-learning in speech "
    "and NLP, Omniglot few-shot benchmarks of the three method families, and leaderboards beside the "
    "published numbers.\n\n"
    "Every action is also in the command palette ([b]ctrl+p[/b]). The mouse works everywhere: click "
    "tabs, rows, column headers and buttons. Training runs in a separate [i]metabench run[/i] process, "
    "so the interface stays responsive; quitting while a run trains interrupts it, and it can be resumed.\n"
)

KEY_NAMES = {"question_mark": "?", "slash": "/", "escape": "esc"}


def key_lines(bindings: list[BindingType]) -> list[str]:
    """One line per binding that has a description: its keys, then what it does."""
    lines = []
    for item in bindings:
        binding = item if isinstance(item, Binding) else Binding(*item)
        if not binding.description:
            continue
        keys = ", ".join(KEY_NAMES.get(key.strip(), key.strip()) for key in binding.key.split(","))
        lines.append(f"  [b $accent]{escape(keys):>10}[/]  {escape(binding.description)}")
    return lines


class HelpScreen(ModalScreen[None]):
    """Keys and purpose of every screen; escape, q or F1 closes it."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            with VerticalScroll(id="help-scroll"):
                yield Static(self.help_markup(), id="help-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-dialog").border_title = "Help"
        self.query_one("#help-scroll").focus()

    def help_markup(self) -> str:
        lines = [INTRO, "[b u]Everywhere[/]", *key_lines(list(self.app.BINDINGS))]
        from metabench.tui.screens import main_screen_classes

        for name, screen_class in main_screen_classes().items():
            title = getattr(screen_class, "TITLE", None) or name.title()
            lines += ["", f"[b u]{escape(title)}[/]"]
            help_text = getattr(screen_class, "HELP", "")
            if help_text:
                lines.append(escape(help_text.strip()))
            lines += key_lines(list(getattr(screen_class, "BINDINGS", [])))
        return "\n".join(lines)
