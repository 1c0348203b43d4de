"""One setting's leaderboard as a DataTable sortable by any column (click its header, or press s / r)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable, Label

if TYPE_CHECKING:
    from metabench.leaderboard import Leaderboard, LeaderboardRow, PublishedReference
from metabench.config import TRANSDUCTIVE_MARK
from metabench.tui import formatting as fmt

REFERENCE_KEY = "reference:"  # the row key prefix of a published reference, which is not a run


@dataclass(frozen=True)
class Column:
    """A leaderboard column: its key, header, how to draw a row's cell, and what to sort by."""

    key: str
    label: str
    descending_first: bool  # higher is better: the first click sorts best first

    def cell(self, row: LeaderboardRow) -> SortableCell:
        text, value = _CELLS[self.key](row)
        return SortableCell(text, value)

    def reference_cell(self, reference: PublishedReference, rank: float) -> SortableCell:
        """A published reference's cell: its name, accuracy and error; 'reference' where a run has
        its published number; blank elsewhere. `rank` places it between the runs it falls between."""
        style = "italic dim"
        cells = {
            "rank": (Text("ref", style=style, justify="right"), rank),
            "method": (Text(reference.name, style="italic"), reference.name),
            "accuracy": (Text(fmt.percent(reference.accuracy, 1), style=style, justify="right"), None),
            "error": (Text(fmt.percent(reference.error, 1), style=style, justify="right"), None),
            "published": (Text("reference", style=style, justify="right"), None),
        }
        text, value = cells.get(self.key, (Text(""), None))
        if self.key in ("accuracy", "error"):
            value = reference.accuracy if self.key == "accuracy" else reference.error
        return SortableCell(text, value)


@dataclass(frozen=True)
class SortableCell:
    """A cell that draws as rich Text but sorts by its raw value (None sorts last either way)."""

    text: Text
    value: Any

    def __rich__(self) -> Text:
        return self.text

    def sort_key(self, descending: bool) -> tuple[bool, Any]:
        # With reverse=True, present values (True) come before missing ones (False).
        return (self.value is not None, self.value) if descending else (self.value is None, self.value)


def _significance(row: LeaderboardRow) -> tuple[Text, Any]:
    if row.significant_vs_above is None:
        return Text(""), None
    mark = "yes" if row.significant_vs_above else "no"
    p = f" p={row.p_value_vs_above:.3f}" if row.p_value_vs_above is not None else ""
    return Text(mark + p, style="bold" if row.significant_vs_above else "dim"), row.p_value_vs_above


def _difference(row: LeaderboardRow) -> tuple[Text, Any]:
    if row.difference is None:
        return Text("-", justify="right"), None
    style = "green" if row.difference >= 0 else "red"
    return Text(fmt.signed(row.difference), style=style, justify="right"), row.difference


_CELLS = {
    "rank": lambda r: (Text(str(r.rank), justify="right"), r.rank),
    "method": lambda r: (
        Text(r.method, style="bold")
        + (Text(f" {TRANSDUCTIVE_MARK}", style="bold yellow") if r.transductive else ""),
        r.method,
    ),
    "family": lambda r: (Text(r.family), r.family),
    "accuracy": lambda r: (
        Text(fmt.percent_ci(r.accuracy, r.ci95), style="bold", justify="right"),
        r.accuracy,
    ),
    "published": lambda r: (
        Text(
            "none"
            if r.published is None and r.published_paper
            else fmt.percent_ci(r.published, r.published_ci),
            justify="right",
        ),
        r.published,
    ),
    "error": lambda r: (Text(fmt.percent(100.0 - r.accuracy), justify="right"), 100.0 - r.accuracy),
    # More seeds first, then the tighter spread.
    "seeds": lambda r: (Text(r.seeds_text), (len(r.seeds), -(r.seed_sd or 0.0))),
    "difference": _difference,
    "significance": _significance,
    "budget": lambda r: (Text(r.budget), r.meta_steps),
    "device": lambda r: (Text(r.device), r.device),
    "time": lambda r: (Text(fmt.duration(r.train_time_s), justify="right"), r.train_time_s),
    "transductive": lambda r: (
        Text(TRANSDUCTIVE_MARK if r.transductive else "", style="bold yellow", justify="center"),
        r.transductive,
    ),
    "run_id": lambda r: (Text(r.run_id, style="dim"), r.run_id),
}

COLUMNS = (
    Column("rank", "#", False),
    Column("method", "Method", False),
    Column("family", "Fam", False),
    Column("accuracy", "Accuracy % ± CI", True),
    Column("error", "Error %", False),  # only on boards of protocols that report error rates
    Column("seeds", "Seeds", True),
    Column("published", "Published %", True),
    Column("difference", "Δ", True),
    Column("significance", "vs above", False),
    Column("budget", "Budget", True),
    Column("device", "Device", False),
    Column("time", "Time", False),
    Column("transductive", "T", True),
    Column("run_id", "Run", False),
)
COLUMN_BY_KEY = {column.key: column for column in COLUMNS}


class BoardTitle(Label):
    """A board's title above its table."""

    # $text-primary is the primary colour adjusted to read on the background, in the light theme too
    # (the accent orange did not).
    DEFAULT_CSS = """
    BoardTitle {
        width: 1fr;
        margin: 1 0 0 0;
        padding: 0 1;
        text-style: bold;
        color: $text-primary;
    }
    """


class LeaderboardTable(DataTable[SortableCell]):
    """The ranked rows of one Leaderboard; remembers how it is sorted."""

    BINDINGS = [
        Binding("j", "cursor_down", "Cursor down", show=False),
        Binding("k", "cursor_up", "Cursor up", show=False),
    ]

    def __init__(self, board: Leaderboard, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.board = board
        self.sort_column = "rank"
        self.sort_descending = False
        error_rate = board.setting.reports_error_rate
        self.shown_columns = tuple(c for c in COLUMNS if c.key != "error" or error_rate)

    def on_mount(self) -> None:
        from metabench.leaderboard import LeaderboardRow

        for column in self.shown_columns:
            # Two spare cells on every header leave room for the sort arrow without a relayout.
            self.add_column(Text(column.label + "  "), key=column.key)
        rank_above = 0.0
        for entry in self.board.entries():
            if isinstance(entry, LeaderboardRow):
                self.add_row(*(column.cell(entry) for column in self.shown_columns), key=entry.run_id)
                rank_above = entry.rank
            else:  # sorted by rank, a reference stays between the runs it falls between
                cells = (column.reference_cell(entry, rank_above + 0.5) for column in self.shown_columns)
                self.add_row(*cells, key=REFERENCE_KEY + entry.name)

    def sort_by(self, key: str, descending: bool | None = None) -> None:
        """Sort by the column `key`; a repeated sort on the same column flips the direction.

        The cursor stays on the row it was on, wherever that row moves.
        """
        if descending is None:
            if key == self.sort_column:
                descending = not self.sort_descending
            else:
                descending = COLUMN_BY_KEY[key].descending_first
        self.sort_column, self.sort_descending = key, descending
        for column in self.shown_columns:
            arrow = (" ▼" if descending else " ▲") if column.key == key else "  "
            self.columns[column.key].label = Text(column.label + arrow)  # type: ignore[index]
        selected = self.cursor_key()
        self.sort(key, key=lambda cell: cell.sort_key(descending), reverse=descending)
        if selected is not None:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def visible_column_keys(self) -> list[str]:
        """The columns shown whole in the table's viewport as it is scrolled now (all of them before
        the table has a size)."""
        width = self.scrollable_content_region.width
        keys = [column.key for column in self.shown_columns]
        if not width:
            return keys
        left, right = self.scroll_x, self.scroll_x + width
        visible, x = [], 0
        for key in keys:
            column_width = self.columns[key].get_render_width(self)  # type: ignore[index]
            if left <= x and x + column_width <= right:
                visible.append(key)
            x += column_width
        return visible or keys

    def next_sort_column(self) -> None:
        """Sort by the next column to the right among those on screen, wrapping to the first one.

        Columns scrolled out of view are skipped: at 80 columns most of them are, and a sort by a
        column one cannot see looks like a shuffle. Scrolling right brings them into the cycle.
        """
        keys = [column.key for column in self.shown_columns]
        visible = self.visible_column_keys()
        current = keys.index(self.sort_column)
        after = [key for key in visible if keys.index(key) > current]
        self.sort_by(after[0] if after else visible[0])

    def reverse_sort(self) -> None:
        """Sort the other way round by the same column."""
        self.sort_by(self.sort_column, not self.sort_descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value:
            self.sort_by(event.column_key.value)

    def column_values(self, key: str) -> list[Any]:
        """The raw values of a column in display order (what the tests and the export read)."""
        return [self.get_cell(row_key, key).value for row_key in self._row_keys_in_order()]

    def _row_keys_in_order(self) -> list[Any]:
        return [self.coordinate_to_cell_key((index, 0)).row_key for index in range(self.row_count)]

    def cursor_key(self) -> str | None:
        """The key of the row under the cursor (a run id or a reference's key); None on an empty board."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def selected_run_id(self) -> str | None:
        """The run under the cursor; None on an empty board or a published reference."""
        return run_id_of(self.cursor_key())

    def selected_row(self) -> LeaderboardRow | None:
        """The board row under the cursor; None on an empty board or a published reference."""
        return self.row_of(self.selected_run_id())

    def row_of(self, run_id: str | None) -> LeaderboardRow | None:
        """The board row that `run_id` stands for (its first seed's run), if any."""
        return next((row for row in self.board.rows if row.run_id == run_id), None)

    def selected_reference(self) -> PublishedReference | None:
        """The published reference under the cursor, if the cursor is on one."""
        key = self.cursor_key()
        return next((ref for ref in self.board.references if key == REFERENCE_KEY + ref.name), None)

    def run_ids(self) -> list[str]:
        """The board's runs in display order, every seed of a row in seed order (references left out)."""
        rows = (self.row_of(run_id_of(key.value)) for key in self._row_keys_in_order())
        return [run_id for row in rows if row is not None for run_id in row.run_ids]


def run_id_of(row_key: str | None) -> str | None:
    """The run a row shows: its key, unless the row is a published reference (or there is none)."""
    return None if row_key is None or row_key.startswith(REFERENCE_KEY) else row_key
