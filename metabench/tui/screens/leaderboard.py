"""The leaderboard screen: one sortable table per setting, the highlighted run's record, charts, export."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Label

if TYPE_CHECKING:
    from metabench.leaderboard import Leaderboard, LeaderboardRow, Setting
    from metabench.leaderboard.records import RunRecord

from metabench.tui import store
from metabench.tui.screens.base import MainScreen
from metabench.tui.screens.compare import CompareScreen
from metabench.tui.screens.dialogs import PathScreen, write_error
from metabench.tui.screens.run_record import RunRecordScreen
from metabench.tui.widgets.board_chart import BoardChartView
from metabench.tui.widgets.leaderboard_table import (
    TRANSDUCTIVE_MARK,
    BoardTitle,
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
        "interval. Runs that differ only by seed share a row: their mean, ± the interval of the "
        "seed-averaged episodes; Seeds says how many and their standard deviation. Δ is the difference "
        f"to the paper's number; {TRANSDUCTIVE_MARK} marks transductive evaluation (test-batch BatchNorm "
        "statistics), which inflates accuracy. Click a column header (or press s for the next column on "
        "screen, r to reverse) to sort; j/k move like the arrows; enter opens a row's record (its first "
        "seed's, the other seeds listed). g shows the focused board's chart under it (each row's accuracy "
        "with its 95% interval beside the published number); c overlays the learning curves of its runs; "
        "e exports the markdown leaderboard. With a wide terminal the highlighted row's record and curves "
        "sit beside the boards."
    )
    AUTO_FOCUS = "LeaderboardTable"
    BINDINGS = [
        Binding("s", "sort_next", "Sort"),
        Binding("r", "sort_reverse", "Reverse"),
        Binding("g", "toggle_chart", "Chart"),
        Binding("c", "compare", "Compare"),
        Binding("e", "export", "Export"),
        Binding("a", "toggle_all", "All runs", show=False),  # the boards' title says "a: toggle"
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.boards: list[Leaderboard] = []
        self.all_runs = False
        self.charted: set[Setting] = set()  # the boards whose chart is shown, kept across reloads
        self._current: LeaderboardTable | None = None  # the board the user last focused
        self._detail_for: str | None = None  # the run the side panel waits for

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
        # Keep each table's sort, the focused board and its cursor's row across a reload.
        previous = {
            table.board.setting: (table.sort_column, table.sort_descending) for table in self.tables()
        }
        current = self.focused_table()
        focused = (current.board.setting, current.cursor_key()) if current is not None else None
        self.boards = boards
        await container.remove_children(".board")
        runs = sum(len(row.run_ids) for board in boards for row in board.rows)
        scope = "all finished runs" if self.all_runs else "best budget per method"
        title = (
            f"{_count(len(boards), 'setting')}, {_count(runs, 'run')} ({scope}; a: toggle)"
            if boards
            else "No finished runs yet: press n to launch one (smoke takes seconds)."
        )
        self.query_one("#boards-title", Label).update(title)
        widgets: list[Widget] = []
        for index, board in enumerate(boards):
            widgets.append(BoardTitle(board.setting.title, id=f"title-{index}", classes="board"))
            widgets.append(LeaderboardTable(board, id=f"board-{index}", classes="board"))
            if board.setting in self.charted:
                widgets.append(_chart_view(board, index))
        await container.mount_all(widgets)
        tables = self.tables()
        focus = tables[0] if tables else None
        for table in tables:
            if table.board.setting in previous:
                column, descending = previous[table.board.setting]
                table.sort_by(column, descending)
            if focused is not None and table.board.setting == focused[0]:
                focus = table
                if focused[1] in table.rows:
                    table.move_cursor(row=table.get_row_index(focused[1]), animate=False)
        if focus is not None:
            focus.focus(scroll_visible=False)
            self._current = focus
            self._show_cursor_row(focus)
            if focus is not tables[0]:
                self.call_after_refresh(self._reveal, focus)

    def tables(self) -> list[LeaderboardTable]:
        """Every board's table, top to bottom."""
        return list(self.query(LeaderboardTable).results(LeaderboardTable))

    def focused_table(self) -> LeaderboardTable | None:
        """The board the keys act on: the focused one, else the one focused last, else the first."""
        if isinstance(self.focused, LeaderboardTable):
            return self.focused
        tables = self.tables()
        if self._current in tables:
            return self._current
        return tables[0] if tables else None

    # --- the highlighted run -----------------------------------------------------------------------

    @on(events.DescendantFocus)
    def _board_focused(self, event: events.DescendantFocus) -> None:
        # Tab, shift+tab or a click moved to another board: the side panel follows.
        if isinstance(event.widget, LeaderboardTable) and event.widget is not self._current:
            self._current = event.widget
            self._show_cursor_row(event.widget)
            self.call_after_refresh(self._reveal, event.widget)

    def _reveal(self, table: LeaderboardTable) -> None:
        """Scroll the boards so that `table` starts at the top with its title (focus alone centres a
        table, which can hide its title)."""
        boards = self.query_one("#boards", VerticalScroll)
        tables = self.tables()
        if tables and table is tables[0]:  # the first board: the top, with the boards' own title line
            boards.scroll_home(animate=False)
            return
        titles = self.query(f"#title-{(table.id or '').removeprefix('board-')}")
        if titles:
            boards.scroll_to_widget(titles.first(), animate=False, top=True)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Every table highlights its first row when it is filled: only the focused board's cursor counts.
        if isinstance(event.data_table, LeaderboardTable) and event.data_table is self.focused_table():
            self._show_cursor_row(event.data_table)

    def _show_cursor_row(self, table: LeaderboardTable) -> None:
        """Show the run (or published reference) under `table`'s cursor in the side panel."""
        row = table.selected_row()
        self._detail_for = None if row is None else row.run_id
        if row is not None:
            self.load_detail(row)
            return
        reference = table.selected_reference()
        if reference is not None:  # a published reference: show its source
            self.query_one("#board-detail", RunDetail).show_reference(reference)

    @work(thread=True, exclusive=True, group="leaderboard-detail", exit_on_error=False)
    def load_detail(self, row: LeaderboardRow) -> None:
        """Read the record of a row's first seed for the side panel."""
        record = store.run_record(self.app.db_path, row.run_id)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show_detail, row, record)

    def _show_detail(self, row: LeaderboardRow, record: RunRecord | None) -> None:
        # A thread worker runs to its end even when a newer one replaced it: drop stale answers.
        if row.run_id == self._detail_for:
            self.query_one("#board-detail", RunDetail).show(record, row)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, LeaderboardTable):
            row = event.data_table.row_of(run_id_of(event.row_key.value))
            if row is not None:
                self.app.push_screen(BoardRowRecordScreen(row))

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

    async def action_toggle_chart(self) -> None:
        """Show or hide the focused board's chart, just under its table."""
        table = self.focused_table()
        if table is None:
            return
        setting = table.board.setting
        index = self.boards.index(table.board)
        if setting in self.charted:
            self.charted.discard(setting)
            await self.query(f"#chart-{index}").remove()
            return
        self.charted.add(setting)
        chart = _chart_view(table.board, index)
        await self.query_one("#boards", VerticalScroll).mount(chart, after=table)
        chart.scroll_visible(animate=False)

    def action_compare(self) -> None:
        """Overlay the learning curves of every run on the focused board."""
        table = self.focused_table()
        if table is None or not table.run_ids():
            self.notify("No runs on this board to compare.", severity="warning")
            return
        title = f"Learning curves: {table.board.setting.title}"
        self.app.push_screen(CompareScreen(table.run_ids(), title=title))

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
        """Render the boards as they are in the database now and write them atomically to `path`."""
        try:
            count = store.export_leaderboard(self.app.db_path, path, self.all_runs)  # type: ignore[attr-defined]
        except OSError as exc:  # e.g. the folder went away or is read-only: say so, keep running
            self.app.call_from_thread(self.notify, write_error(path, exc), severity="error", timeout=10)
            return
        except Exception as exc:  # noqa: BLE001 - the database: one line, keep running
            message = f"cannot export the leaderboard: {' '.join(str(exc).split())}"
            self.app.call_from_thread(self.notify, message, severity="error", timeout=10)
            return
        settings = _count(count, "setting")
        self.app.call_from_thread(self.notify, f"Wrote {settings} to {path}", title="Leaderboard exported")

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Export leaderboard", "Write the markdown leaderboard to a file", self.action_export
        )
        yield SystemCommand(
            "Sort leaderboard", "Sort the focused board by the next column", self.action_sort_next
        )
        yield SystemCommand("Reverse sort", "Reverse the focused board's order", self.action_sort_reverse)
        yield SystemCommand(
            "Board chart", "Show or hide the focused board's accuracies as a chart", self.action_toggle_chart
        )
        yield SystemCommand(
            "Compare learning curves", "Overlay the curves of the focused board's runs", self.action_compare
        )
        yield SystemCommand(
            "Toggle all runs", "All finished runs, or the best budget per method", self.action_toggle_all
        )
        yield SystemCommand("Reload leaderboard", "Rebuild the boards from the database", self.action_reload)


class BoardRowRecordScreen(RunRecordScreen):
    """The record of a board row's first seed, with the row's seeds and their other runs above it."""

    def __init__(self, row: LeaderboardRow) -> None:
        super().__init__(row.run_id)
        self.row = row

    def _show(self, record: RunRecord | None) -> None:
        self.query_one("#record-dialog").loading = False
        self.query_one(RunDetail).show(record, self.row)


def _chart_view(board: Leaderboard, index: int) -> BoardChartView:
    """The chart of the board shown as table `index`, to sit under that table."""
    from metabench.leaderboard.figures import board_chart

    return BoardChartView(board_chart(board), id=f"chart-{index}", classes="board")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
