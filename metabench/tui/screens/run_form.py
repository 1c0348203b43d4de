"""The "new run" form: method, protocol, episode shape, preset, device, seed; validated as you type."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select

from metabench.config import DEVICES, PRESETS, PROTOCOLS
from metabench.methods.card import MethodCard
from metabench.tui.run_process import NUMBER_FIELDS, RunRequest, request_from_form, validate_form

FAMILY_TAGS = {"A": "A init", "B": "B compare", "C": "C other", "baseline": "baseline"}
SELECT_FIELDS = ("method", "protocol", "preset", "device")
FIELDS = ("method", "protocol", "ways", "shots", "queries", "preset", "options", "device", "seed")


class RunFormScreen(ModalScreen[RunRequest | None]):
    """A modal form that returns the RunRequest to launch, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "launch", "Launch"),
    ]

    def __init__(self, method: str | None = None, initial: RunRequest | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.initial = initial or RunRequest(method=method or "")
        self.cards: dict[str, MethodCard] | None = None  # None while the method list loads

    def compose(self) -> ComposeResult:
        initial = self.initial
        with Vertical(id="run-form", classes="dialog"):
            yield Label("New run: train and test a method on Omniglot", classes="dialog-title")
            with Grid(id="form-grid"):
                yield from self._row("method", self._method_select())
                yield from self._row("protocol", _select("protocol", PROTOCOLS, initial.protocol))
                yield from self._row("ways", _number("ways", initial.ways))
                yield from self._row("shots", _number("shots", initial.shots))
                yield from self._row("queries", _number("queries", initial.queries))
                yield from self._row("preset", _select("preset", PRESETS, initial.preset))
                yield from self._row("options", _options(initial.options))
                yield from self._row("device", _select("device", DEVICES, initial.device))
                yield from self._row("seed", _number("seed", initial.seed))
            yield Label("", id="method-info", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch", variant="primary", id="launch")
                yield Button("Cancel", id="cancel")
        yield Footer()

    @staticmethod
    def _row(name: str, widget: Input | Select[str]) -> ComposeResult:
        yield Label(name, classes="form-label")
        yield widget
        yield Label("", id=f"{name}-error", classes="field-error")

    def _method_select(self) -> Select[str]:
        method = self.initial.method
        options = [(method, method)] if method else []
        return Select(
            options,
            value=method if method else Select.NULL,
            prompt="loading methods…",
            id="method",
            compact=True,
        )

    def on_mount(self) -> None:
        self.query_one("#method", Select).focus()
        self.validate()
        self.load_methods()

    @work(thread=True, exclusive=True, group="form-methods")
    def load_methods(self) -> None:
        methods = self.app.fetch_methods()  # type: ignore[attr-defined]
        error = getattr(self.app, "methods_error", None)
        self.app.call_from_thread(self._show_methods, methods, error)

    def _show_methods(self, methods: list[MethodCard] | None, error: str | None) -> None:
        select = self.query_one("#method", Select)
        if methods is None:
            select.prompt = "methods unavailable"
            self.query_one("#method-info", Label).update(f"[b]cannot list methods:[/b] {error}")
            return
        self.cards = {m.name: m for m in methods}
        current = select.value if select.value is not Select.NULL else self.initial.method
        select.set_options((f"{m.name}  ({FAMILY_TAGS.get(m.family, m.family)})", m.name) for m in methods)
        select.prompt = "choose a method"
        if current in self.cards:
            select.value = current
        self.validate()

    # --- validation as you type ----------------------------------------------------------------

    def values(self) -> dict[str, str]:
        values = {}
        for name in SELECT_FIELDS:
            value = self.query_one(f"#{name}", Select).value
            values[name] = "" if value is Select.NULL else str(value)
        for name in (*NUMBER_FIELDS, "options"):
            values[name] = self.query_one(f"#{name}", Input).value
        return values

    def validate(self) -> dict[str, str]:
        """Show each field's problem beside it; enable Launch only when there is none."""
        values = self.values()
        errors = validate_form(values, self.cards)
        for name in FIELDS:
            problem = errors.get(name, "")
            self.query_one(f"#{name}-error", Label).update(problem)
            self.query_one(f"#{name}").set_class(bool(problem), "-invalid")
        self.query_one("#launch", Button).disabled = bool(errors) or self.cards is None
        self._describe_method(values["method"])
        return errors

    def _describe_method(self, name: str) -> None:
        info = (self.cards or {}).get(name)
        if info is not None:
            family = FAMILY_TAGS.get(info.family, info.family)
            transductive = "; evaluation is transductive" if info.transductive else ""
            self.query_one("#method-info", Label).update(f"{info.name}: {family}, {info.paper}{transductive}")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.validate()

    # --- submit ---------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_launch()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        else:
            self.action_cancel()

    def action_launch(self) -> None:
        """Launch the run when the form is valid; otherwise point at the first problem."""
        errors = self.validate()
        if self.cards is None:
            self.notify("The method list is still loading", severity="warning")
            return
        if errors:
            first = next(iter(errors))
            self.query_one(f"#{first}").focus()
            self.notify(errors[first], severity="error")
            return
        self.dismiss(request_from_form(self.values()))

    def action_cancel(self) -> None:
        self.dismiss(None)


def _select(name: str, choices: tuple[str, ...], value: str) -> Select[str]:
    return Select(((c, c) for c in choices), value=value, allow_blank=False, id=name, compact=True)


def _options(options: tuple[tuple[str, str], ...]) -> Input:
    # The method's own config keys, as `metabench run --set` takes them; checked against its card.
    text = " ".join(f"{key}={value}" for key, value in options)
    return Input(text, placeholder="key=value … (optional)", id="options", compact=True)


def _number(name: str, value: int) -> Input:
    # type="integer" keeps letters out as you type; the range rules are checked by validate_form.
    return Input(str(value), id=name, type="integer", compact=True)
