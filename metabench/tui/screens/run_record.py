"""A modal with one stored run's record and learning curve (enter on a run in any table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer

from metabench.tui import store
from metabench.tui.widgets.run_detail import RunDetail

if TYPE_CHECKING:
    from metabench.leaderboard.records import RunRecord


class RunRecordScreen(ModalScreen[None]):
    """The record of `run_id`, read in a thread worker."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, run_id: str) -> None:
        super().__init__(classes="dialog-screen")
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(id="record-dialog", classes="dialog"):
            yield RunDetail(id="record-detail")
        yield Footer()

    def on_mount(self) -> None:
        dialog = self.query_one("#record-dialog")
        dialog.border_title = f"run {self.run_id}"
        dialog.loading = True
        self.load()

    @work(thread=True, exit_on_error=False)
    def load(self) -> None:
        record = store.run_record(self.app.db_path, self.run_id)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show, record)

    def _show(self, record: RunRecord | None) -> None:
        self.query_one("#record-dialog").loading = False
        self.query_one(RunDetail).show(record)
