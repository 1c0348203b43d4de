"""The paper list: a search box with live results, four facet filters with counts, and the matching papers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Select
from textual.worker import get_current_worker

from metabench.tui import store
from metabench.tui.store import PaperQuery

if TYPE_CHECKING:
    from metabench.catalog import Facets, Paper

FILTERS = ("application", "family", "year", "venue")
WIDE_COLUMNS = {"citation": 24, "venue": 16, "year": 4}
NARROW_COLUMNS = {"citation": 18, "venue": 10, "year": 4}  # below WIDE_LIST columns
WIDE_LIST = 110


class PaperBrowser(Vertical):
    """Searches and filters the catalog's papers in a thread worker; enter on a paper opens it."""

    class PaperChosen(Message):
        """The user chose a paper (enter or click on its row)."""

        def __init__(self, cite_key: str) -> None:
            super().__init__()
            self.cite_key = cite_key

    def __init__(self) -> None:
        super().__init__(id="paper-browser")
        self.papers: list[Paper] = []
        self.total_papers = 0
        self.ready = False  # the filters have their options and a first search has run
        self.shown_query = PaperQuery()
        self._serial = 0  # numbers the searches: only the newest one's result is shown

    def compose(self) -> ComposeResult:
        with Horizontal(id="search-row"):
            yield Input(placeholder="Search papers…  (/)", id="search")
            yield Label("", id="paper-count")
        with Horizontal(id="filters"):
            for name in FILTERS:
                yield Select[str]([], prompt=name, id=f"filter-{name}", compact=True)
        yield Label("", id="filter-note")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="papers")

    def on_mount(self) -> None:
        table = self.query_one("#papers", DataTable)
        _set_columns(table, self._widths())
        table.loading = True
        facets = getattr(self.screen, "facets", None)
        if facets is not None:  # the catalog was read before this (lazily mounted) widget existed
            self.catalog_loaded(facets)

    def catalog_loaded(self, counts: Facets) -> None:
        """Give the filters their options (value and paper count), then list every paper."""
        from metabench.catalog.model import FAMILY_LABELS  # loaded already, with the data

        if self.ready:  # both the screen and this widget's mount may hand the facets over
            return
        self.total_papers = counts.total_papers
        options = {
            "application": [(f"{f.value} ({f.papers})", f.value) for f in counts.applications],
            "family": [
                (f"({f.value}) {FAMILY_LABELS[f.value]} ({f.papers})", f.value) for f in counts.families
            ],
            "year": [(f"{f.value} ({f.papers})", f.value) for f in reversed(counts.years)],
            "venue": [(f"{f.value} ({f.papers})", f.value) for f in counts.venues],
        }
        with self.prevent(Select.Changed):
            for name, choices in options.items():
                self.query_one(f"#filter-{name}", Select).set_options(choices)
        self.ready = True
        self.search()

    def load_failed(self) -> None:
        self.query_one("#papers", DataTable).loading = False

    # --- searching ---------------------------------------------------------------------------

    def current_query(self) -> PaperQuery:
        values = {}
        for name in FILTERS:
            value = self.query_one(f"#filter-{name}", Select).value
            values[name] = None if value is Select.NULL else str(value)
        year = values["year"]
        return PaperQuery(
            text=self.query_one("#search", Input).value,
            application=values["application"],
            family=values["family"],
            year=int(year) if year else None,
            venue=values["venue"],
        )

    def search(self) -> None:
        """List the papers for the current text and filters (once the catalog is loaded)."""
        if self.ready:
            self._serial += 1
            self._run_search(self.current_query(), self._serial)

    @work(thread=True, exclusive=True, group="catalog-search", exit_on_error=False)
    def _run_search(self, query: PaperQuery, serial: int) -> None:
        # exclusive: a newer keystroke cancels this worker; a thread cannot be stopped mid-query,
        # so a result that arrives late is dropped by its serial number instead.
        try:
            papers = store.find_papers(self.app.db_path, query)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            self.app.call_from_thread(self.notify, f"search failed: {exc}", severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_result, papers, query, serial)

    def _show_result(self, papers: list[Paper], query: PaperQuery, serial: int) -> None:
        if serial == self._serial:
            self._show_papers(papers, query)

    def _show_papers(self, papers: list[Paper], query: PaperQuery) -> None:
        self.papers = papers
        self.shown_query = query
        table = self.query_one("#papers", DataTable)
        table.loading = False
        cursor_key = _cursor_key(table)
        widths = self._widths()
        _set_columns(table, widths)
        for paper in papers:
            table.add_row(
                _clip(paper.short_cite, widths["citation"], style="bold"),
                _clip(paper.title, widths["title"]),
                _clip(paper.venue, widths["venue"]),
                Text(str(paper.year)),
                key=paper.cite_key,
            )
        if cursor_key is not None and cursor_key in table.rows:
            table.move_cursor(row=table.get_row_index(cursor_key))
        total = f" of {self.total_papers}" if self.total_papers else ""
        self.query_one("#paper-count", Label).update(f"{len(papers)}{total} papers")
        self.query_one("#filter-note", Label).update(filter_note(query, len(papers)))

    def _widths(self) -> dict[str, int]:
        """Column widths for the table's width: fixed columns, the title taking what is left."""
        width = self.query_one("#papers", DataTable).size.width or self.app.size.width
        widths = dict(WIDE_COLUMNS if width >= WIDE_LIST else NARROW_COLUMNS)
        fixed = sum(widths.values()) + 2 * (len(widths) + 1) + 2  # cell padding and scrollbar
        widths["title"] = max(20, width - fixed)
        return widths

    def on_resize(self, event: events.Resize) -> None:
        # The title column takes the width left over: lay the rows out again for the new width
        # (whatever list is shown by then, not the one shown now).
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        title = self.query_one("#papers", DataTable).columns["title"]
        if self.papers and title.width != self._widths()["title"]:
            self._show_papers(self.papers, self.shown_query)

    def set_filters(self, **values: str | None) -> None:
        """Set the filters named (clearing the others and the search text), then search."""
        with self.prevent(Input.Changed, Select.Changed):
            self.query_one("#search", Input).value = ""
            for name in FILTERS:
                select = self.query_one(f"#filter-{name}", Select)
                value = values.get(name)
                if value is None:
                    select.clear()
                else:
                    select.value = value
        self.search()

    @on(Input.Changed, "#search")
    def _search_changed(self) -> None:
        self.search()

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        table = self.query_one("#papers", DataTable)
        if table.row_count:
            table.focus()

    @on(Select.Changed)
    def _filter_changed(self, event: Select.Changed) -> None:
        if event.select.id and event.select.id.startswith("filter-"):
            self.search()

    @on(DataTable.RowSelected, "#papers")
    def _paper_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(self.PaperChosen(event.row_key.value))


def filter_note(query: PaperQuery, found: int) -> str:
    """The line under the filters (content markup): which filters narrow the list, and how to clear them."""
    if not query.filtered:
        return "[dim]No filters: the search covers every paper; a survey cell or a filter narrows it.[/]"
    active = ", ".join(
        f"{name} = {getattr(query, name)}" for name in FILTERS if getattr(query, name) is not None
    )
    lead = "[b]No paper matches[/b] within" if not found else "Only the table cells of"
    return (
        f"{lead} [b $warning]{escape(active)}[/]  [dim](x clears the filters; esc leaves the search box)[/]"
    )


def _set_columns(table: DataTable[Text], widths: dict[str, int]) -> None:
    # Fixed widths, the title taking what is left: the table fits the terminal, no sideways scrolling.
    table.clear(columns=True)
    for key in ("citation", "title", "venue", "year"):
        table.add_column(key.title(), key=key, width=widths[key])


def _clip(value: str, width: int, style: str = "") -> Text:
    text = Text(value, style=style)
    text.truncate(width, overflow="ellipsis")
    return text


def _cursor_key(table: DataTable[Text]) -> str | None:
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:  # noqa: BLE001 - a stale cursor just starts at the top
        return None
