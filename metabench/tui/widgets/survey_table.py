"""The lecture's survey table (applications x families A, B, C) as a DataTable whose cells wrap to fit."""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.widgets import DataTable

if TYPE_CHECKING:
    from metabench.catalog.model import Cell, SurveyTable

APPLICATION_WIDTH = 20
NARROW_APPLICATION_WIDTH = 14  # below WIDE_TABLE columns the application names wrap instead
WIDE_TABLE = 110
MIN_FAMILY_WIDTH = 14
CELL_PADDING = 2  # DataTable pads every cell by one column on each side
SCROLLBAR = 2


def cell_text(cells: tuple[Cell, ...]) -> Text:
    """The citations of one table cell, one per line; C cells grouped under their subfamily."""
    text = Text()
    for subfamily, group in groupby(cells, key=lambda cell: cell.subfamily):
        if text:
            text.append("\n")
        if subfamily:
            text.append(f"{subfamily}: ", style="italic dim")
        text.append("; ".join(cell.short_cite for cell in group))
    return text


class SurveyTableView(DataTable[Text]):
    """One row per application, one column per family; selecting a cell filters the paper list to it."""

    def __init__(self, **kwargs: object) -> None:
        # Two header lines: the family headings wrap rather than being cut on a narrow terminal.
        super().__init__(cursor_type="cell", zebra_stripes=True, header_height=2, **kwargs)  # type: ignore[arg-type]
        self.survey: SurveyTable | None = None
        self._laid_out_width = 0

    def show_placeholder(self, message: str) -> None:
        """An empty table whose only heading is `message` (while loading, or when loading failed)."""
        self.clear(columns=True)
        self.add_column(Text(message, style="italic"), key="placeholder")

    def show(self, survey: SurveyTable) -> None:
        """Fill the table (again) for the current width."""
        self.survey = survey
        self._layout()

    def on_resize(self, event: events.Resize) -> None:
        if self.survey is not None and event.size.width != self._laid_out_width:
            self._layout()

    def _layout(self) -> None:
        from metabench.catalog.model import FAMILIES, family_heading  # loaded already, with the data

        assert self.survey is not None
        width = self.size.width or 80
        self._laid_out_width = width
        # Share what the application column leaves equally between the three families.
        application_width = APPLICATION_WIDTH if width >= WIDE_TABLE else NARROW_APPLICATION_WIDTH
        family_width = max(MIN_FAMILY_WIDTH, (width - SCROLLBAR - application_width - 4 * CELL_PADDING) // 3)
        cursor = self.cursor_coordinate
        self.clear(columns=True)
        self.add_column(Text("Application", style="bold"), width=application_width, key="application")
        for family in FAMILIES:
            self.add_column(Text(family_heading(family), style="bold"), width=family_width, key=family)
        for row in self.survey.rows:
            self.add_row(
                Text(row.application, style="bold"),
                *(cell_text(row.cells(family)) for family in FAMILIES),
                height=None,  # as tall as the longest wrapped cell
                key=row.application,
            )
        if self.row_count:
            self.cursor_coordinate = cursor

    def selection(self) -> tuple[str, str | None] | None:
        """(application, family or None for the application column) under the cursor."""
        from metabench.catalog.model import FAMILIES

        if self.survey is None or not self.row_count:
            return None
        row, column = self.cursor_coordinate
        application = self.survey.rows[row].application
        return application, (None if column == 0 else FAMILIES[column - 1])
