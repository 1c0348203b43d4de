"""A modal with the learning curves of several stored runs overlaid, one chart per quantity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from metabench.tui import store
from metabench.tui.widgets.curve_plot import CurvePlots

if TYPE_CHECKING:
    from metabench.leaderboard.figures import CurvePanel
    from metabench.leaderboard.records import RunRecord


class CompareScreen(ModalScreen[None]):
    """The curves of `run_ids` (read in a thread worker); runs without a curve are named, not drawn."""

    DEFAULT_CSS = """
    #compare-dialog {
        width: 100%;
        height: 100%;
        padding: 0 1;
        border: thick $primary;
        background: $surface;
    }
    #compare-note {
        height: auto;
        color: $text-muted;
    }
    #compare-scroll {
        height: 1fr;
    }
    """
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, run_ids: Sequence[str], title: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.run_ids = list(run_ids)
        self.title_text = title or f"Learning curves of {len(self.run_ids)} runs"
        self.records: list[RunRecord] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-dialog"):
            yield Static("", id="compare-note")
            with VerticalScroll(id="compare-scroll"):
                yield CurvePlots(
                    id="compare-plots", fill=True, empty="None of these runs recorded a learning curve."
                )
        yield Footer()

    def on_mount(self) -> None:
        dialog = self.query_one("#compare-dialog")
        dialog.border_title = self.title_text
        dialog.loading = True
        self.load()

    @work(thread=True, exit_on_error=False)
    def load(self) -> None:
        """Read the records and build their panels away from the event loop."""
        from metabench.leaderboard.figures import learning_curves

        try:
            records = store.run_records(self.app.db_path, self.run_ids)  # type: ignore[attr-defined]
            panels = learning_curves(records)
        except Exception as exc:  # noqa: BLE001 - a broken database: say so in the dialog
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._show, records, panels)

    def _failed(self, message: str) -> None:
        self.query_one("#compare-dialog").loading = False
        self.query_one("#compare-note", Static).update(f"[b red]cannot read the runs:[/] {escape(message)}")

    def _show(self, records: list[RunRecord], panels: tuple[CurvePanel, ...]) -> None:
        self.query_one("#compare-dialog").loading = False
        self.records = records
        found = {record.run_id for record in records}
        notes = []
        flat = [record.method for record in records if not record.curve]
        if flat:
            notes.append(f"no learning curve recorded: {', '.join(flat)}")
        gone = [run_id for run_id in self.run_ids if run_id not in found]
        if gone:
            notes.append(f"no longer in the database: {', '.join(gone)}")
        note = self.query_one("#compare-note", Static)
        note.update(escape("; ".join(notes)))
        note.display = bool(notes)
        self.query_one(CurvePlots).show(panels)

    def on_resize(self) -> None:
        # With fill, the plots share the height of the scroll area: it changes with the terminal's.
        self.query_one(CurvePlots).relayout()
