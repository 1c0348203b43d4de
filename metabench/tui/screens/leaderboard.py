"""The leaderboard screen: one sortable table per setting, the highlighted run's record, markdown export."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Label

if TYPE_CHECKING:
    from metabench.leaderboard import Leaderboard
    from metabench.leaderboard.records import RunRecord

from metabench.tui import store
from metabench.tui.screens.base import MainScreen
from metabench.tui.screens.dialogs import PathScreen
from metabench.tui.screens.run_record import RunRecordScreen
from metabench.tui.widgets.leaderboard_table import (
    REFERENCE_KEY,
    TRANSDUCTIVE_MARK,
    LeaderboardTable,
    run_id_of,
)
from metabench.tui.widgets.run_detail import RunDetail

DEFAULT_EXPORT = "LEADERBOARD.md"


class LeaderboardScreen(MainScreen):
    """Finished runs ranked per setting beside the published numbers."""

    MODE = "leaderboard"
    TITLE = "Leaderboard"
    HELP = (
        "One table per setting (protocol, ways, shots, queries, test episodes): runs are only ranked "
        "against runs tested on the same episodes. Accuracy is the mean over the test episodes ± the 95% "
        f"interval; Δ is the difference to the paper's number; {TRANSDUCTIVE_MARK} marks transductive "
        "evaluation (test-batch BatchNorm statistics), which inflates accuracy. Click a column header (or "
        "press s, r) to sort; enter opens a run's record; e exports the markdown leaderboard."
    )
    BINDINGS = [
        Binding("s", "sort_next", "Sort"),
        Binding("r", "sort_reverse", "Reverse"),
        Binding("e", "export", "Export"),
        Binding("a", "toggle_all", "All runs"),
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.boards: list[Leaderboard] = []
        self.all_runs = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="board-body"):
            with VerticalScroll(id="boards"):
                yield Label("", id="boards-title", classes="section-title")
            yield RunDetail(id="board-detail")

    def on_mount(self) -> None:
        self.query_one("#boards").loading = True
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    # --- loading ---------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="leaderboard-load", exit_on_error=False)
    def reload(self) -> None:
        """Rebuild every board from the database (finished runs only)."""
        try:
            boards = store.leaderboards(self.app.db_path, self.all_runs)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._load_failed, str(exc))
            return
        self.app.call_from_thread(self._show_boards, boards)

    def action_reload(self) -> None:
        self.reload()

    def _load_failed(self, message: str) -> None:
        self.query_one("#boards").loading = False
        self.notify(f"cannot build the leaderboard: {message}", severity="error", timeout=10)

    async def _show_boards(self, boards: list[Leaderboard]) -> None:
        container = self.query_one("#boards", VerticalScroll)
        container.loading = False
        if boards == self.boards and self.tables():
            return
        # Keep each table's sort and the selected run across a reload.
        previous = {
            table.board.setting: (table.sort_column, table.sort_descending) for table in self.tables()
        }
        selected = self.selected_run_id()
        self.boards = boards
        await container.remove_children(".board")
        runs = sum(len(board.rows) for board in boards)
        scope = "all finished runs" if self.all_runs else "best budget per method"
        title = (
            f"{_count(len(boards), 'setting')}, {_count(runs, 'run')} ({scope}; a: toggle)"
            if boards
            else "No finished runs yet: press n to launch one (smoke takes seconds)."
        )
        self.query_one("#boards-title", Label).update(title)
        widgets = []
        for index, board in enumerate(boards):
            widgets.append(Label(board.setting.title, classes="board board-title"))
            widgets.append(LeaderboardTable(board, id=f"board-{index}", classes="board"))
        await container.mount_all(widgets)
        for table in self.tables():
            if table.board.setting in previous:
                column, descending = previous[table.board.setting]
                table.sort_by(column, descending)
            if selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
                table.focus()
        if not isinstance(self.focused, LeaderboardTable) and self.tables():
            self.tables()[0].focus()

    def tables(self) -> list[LeaderboardTable]:
        return list(self.query(LeaderboardTable).results(LeaderboardTable))

    def focused_table(self) -> LeaderboardTable | None:
        if isinstance(self.focused, LeaderboardTable):
            return self.focused
        tables = self.tables()
        return tables[0] if tables else None

    def selected_run_id(self) -> str | None:
        table = self.focused_table()
        return table.selected_run_id() if table is not None else None

    # --- the highlighted run -----------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, LeaderboardTable):
            run_id = run_id_of(event.row_key.value)
            if run_id is not None:
                self.load_detail(run_id)
                return
            table = event.data_table
            for reference in table.board.references:  # a published reference: show its source
                if event.row_key.value == REFERENCE_KEY + reference.name:
                    self.query_one("#board-detail", RunDetail).show_reference(reference)

    @work(thread=True, exclusive=True, group="leaderboard-detail", exit_on_error=False)
    def load_detail(self, run_id: str) -> None:
        record = store.run_record(self.app.db_path, run_id)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show_detail, record)

    def _show_detail(self, record: RunRecord | None) -> None:
        self.query_one("#board-detail", RunDetail).show(record)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        run_id = run_id_of(event.row_key.value)
        if isinstance(event.data_table, LeaderboardTable) and run_id is not None:
            self.app.push_screen(RunRecordScreen(run_id))

    # --- actions ---------------------------------------------------------------------------------

    def action_sort_next(self) -> None:
        """Sort the focused board by the next column."""
        table = self.focused_table()
        if table is not None:
            table.next_sort_column()

    def action_sort_reverse(self) -> None:
        """Reverse the focused board's order."""
        table = self.focused_table()
        if table is not None:
            table.reverse_sort()

    def action_toggle_all(self) -> None:
        """Show every finished run, or only each method's largest-budget run per setting."""
        self.all_runs = not self.all_runs
        self.reload()

    def action_export(self) -> None:
        """Ask where, then write the markdown leaderboard there."""
        self.app.push_screen(
            PathScreen("Export the leaderboard as markdown to:", DEFAULT_EXPORT, action="Export"),
            self._export_to,
        )

    def _export_to(self, path: Path | None) -> None:
        if path is not None:
            self.export(path)

    @work(thread=True, exclusive=True, group="leaderboard-export", exit_on_error=False)
    def export(self, path: Path) -> None:
        """Render the boards as they are in the database now and write them atomically."""
        try:
            count = store.export_leaderboard(self.app.db_path, path, self.all_runs)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - e.g. an unwritable folder: say so, keep running
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error", timeout=10)
            return
        where = path.resolve()
        settings = _count(count, "setting")
        self.app.call_from_thread(self.notify, f"Wrote {settings} to {where}", title="Leaderboard exported")

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Export leaderboard", "Write the markdown leaderboard to a file", self.action_export
        )
        yield SystemCommand(
            "Sort leaderboard", "Sort the focused board by the next column", self.action_sort_next
        )
        yield SystemCommand("Reverse sort", "Reverse the focused board's order", self.action_sort_reverse)
        yield SystemCommand(
            "Toggle all runs", "All finished runs, or the best budget per method", self.action_toggle_all
        )
        yield SystemCommand("Reload leaderboard", "Rebuild the boards from the database", self.action_reload)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
