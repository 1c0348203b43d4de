"""One setting's leaderboard as a DataTable sortable by any column (click its header, or press s / r)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import DataTable

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


class LeaderboardTable(DataTable[SortableCell]):
    """The ranked rows of one Leaderboard; remembers how it is sorted."""

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
        """Sort by the column `key`; a repeated sort on the same column flips the direction."""
        if descending is None:
            if key == self.sort_column:
                descending = not self.sort_descending
            else:
                descending = COLUMN_BY_KEY[key].descending_first
        self.sort_column, self.sort_descending = key, descending
        for column in self.shown_columns:
            arrow = (" ▼" if descending else " ▲") if column.key == key else "  "
            self.columns[column.key].label = Text(column.label + arrow)  # type: ignore[index]
        self.sort(key, key=lambda cell: cell.sort_key(descending), reverse=descending)

    def next_sort_column(self) -> None:
        """Sort by the column to the right of the current one (wrapping)."""
        keys = [column.key for column in self.shown_columns]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)])

    def reverse_sort(self) -> None:
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

    def selected_run_id(self) -> str | None:
        """The run under the cursor; None on an empty board or a published reference."""
        if not self.row_count:
            return None
        return run_id_of(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


def run_id_of(row_key: str | None) -> str | None:
    """The run a row shows: its key, unless the row is a published reference (or there is none)."""
    return None if row_key is None or row_key.startswith(REFERENCE_KEY) else row_key
