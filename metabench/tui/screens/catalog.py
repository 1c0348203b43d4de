"""The catalog screen: the survey table, and a paper list with live search and facet filters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Select, TabbedContent, TabPane
from textual.worker import get_current_worker

from metabench.tui import store
from metabench.tui.screens.base import MainScreen
from metabench.tui.screens.paper import PaperScreen
from metabench.tui.store import PaperQuery
from metabench.tui.widgets.survey_table import SurveyTableView

if TYPE_CHECKING:
    from metabench.catalog import Facets, Paper, SurveyTable

FILTERS = ("application", "family", "year", "venue")
FIXED_COLUMNS = {"citation": 24, "venue": 16, "year": 4}


class CatalogScreen(MainScreen):
    """Survey table and papers; every read runs in a thread worker."""

    MODE = "catalog"
    TITLE = "Catalog"
    HELP = (
        "The lecture's survey of meta-learning in speech and NLP: the table of applications by family "
        "((A) learning to initialize, (B) learning to compare, (C) other) and every paper it cites, plus "
        "the method papers the benchmark implements. Select a table cell to list its papers; type to "
        "search (title, authors, venue, application, technique); open a paper with enter or a click."
    )
    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("t", "survey", "Survey table"),
        Binding("p", "papers", "Papers"),
        Binding("x", "clear_filters", "Clear filters"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.papers: list[Paper] = []
        self.total_papers = 0

    def compose_body(self) -> ComposeResult:
        with TabbedContent(initial="survey-pane", id="catalog-tabs"):
            with TabPane("Survey table", id="survey-pane"):
                yield SurveyTableView(id="survey")
            with TabPane("Papers", id="papers-pane"):
                with Horizontal(id="search-row"):
                    yield Input(placeholder="Search papers…  (/)", id="search")
                    yield Label("", id="paper-count")
                with Horizontal(id="filters"):
                    for name in FILTERS:
                        yield Select[str]([], prompt=name, id=f"filter-{name}", compact=True)
                yield DataTable(cursor_type="row", zebra_stripes=True, id="papers")

    def on_mount(self) -> None:
        table = self.query_one("#papers", DataTable)
        _set_columns(table, self._title_width())
        table.loading = True
        self.query_one("#survey", SurveyTableView).loading = True
        self.load_catalog()

    # --- loading -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog-load", exit_on_error=False)
    def load_catalog(self) -> None:
        try:
            table, counts = store.load_catalog(self.app.db_path)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            self.app.call_from_thread(self._load_failed, str(exc))
            return
        self.app.call_from_thread(self._show_catalog, table, counts)
        self.search()

    def _load_failed(self, message: str) -> None:
        self.query_one("#survey", SurveyTableView).loading = False
        self.query_one("#papers", DataTable).loading = False
        self.notify(f"cannot load the catalog: {message}", severity="error", timeout=10)

    def _show_catalog(self, table: SurveyTable, counts: Facets) -> None:
        from metabench.catalog.model import FAMILY_LABELS  # loaded already, with the data

        survey = self.query_one("#survey", SurveyTableView)
        survey.loading = False
        survey.show(table)
        if self.focused is None or not isinstance(self.focused, DataTable | Input):
            self._focus_active_pane()
        self.total_papers = counts.total_papers
        options = {
            "application": [(f"{f.value} ({f.papers})", f.value) for f in counts.applications],
            "family": [
                (f"({f.value}) {FAMILY_LABELS[f.value]} ({f.papers})", f.value) for f in counts.families
            ],
            "year": [(f"{f.value} ({f.papers})", f.value) for f in reversed(counts.years)],
            "venue": [(f"{f.value} ({f.papers})", f.value) for f in counts.venues],
        }
        for name, choices in options.items():
            self.query_one(f"#filter-{name}", Select).set_options(choices)

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

    @work(thread=True, exclusive=True, group="catalog-search", exit_on_error=False)
    def search(self) -> None:
        """Run the current query off the UI thread; a newer query supersedes this one."""
        query = self.app.call_from_thread(self.current_query)
        try:
            papers = store.find_papers(self.app.db_path, query)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self.notify, f"search failed: {exc}", severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_papers, papers, query)

    def _show_papers(self, papers: list[Paper], query: PaperQuery) -> None:
        self.papers = papers
        table = self.query_one("#papers", DataTable)
        table.loading = False
        cursor_key = _cursor_key(table)
        title_width = self._title_width()
        _set_columns(table, title_width)
        for paper in papers:
            table.add_row(
                Text(paper.short_cite, style="bold"),
                _clip(paper.title, title_width),
                _clip(paper.venue, FIXED_COLUMNS["venue"]),
                Text(str(paper.year)),
                key=paper.cite_key,
            )
        if cursor_key is not None and cursor_key in table.rows:
            table.move_cursor(row=table.get_row_index(cursor_key))
        scope = " in filtered table cells" if query.filtered else ""
        total = f" of {self.total_papers}" if self.total_papers else ""
        self.query_one("#paper-count", Label).update(f"{len(papers)}{total} papers{scope}")

    def _title_width(self) -> int:
        width = self.query_one("#papers", DataTable).size.width or self.app.size.width
        fixed = sum(FIXED_COLUMNS.values()) + 2 * (len(FIXED_COLUMNS) + 1) + 2
        return max(20, width - fixed)

    def on_resize(self, event: events.Resize) -> None:
        if self.papers:
            self.call_after_refresh(self._show_papers, self.papers, self.current_query())

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

    # --- opening things -----------------------------------------------------------------------

    @on(DataTable.RowSelected, "#papers")
    def _paper_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(PaperScreen(event.row_key.value))

    @on(DataTable.CellSelected, "#survey")
    def _survey_cell_selected(self, event: DataTable.CellSelected) -> None:
        selection = self.query_one("#survey", SurveyTableView).selection()
        if selection is None:
            return
        application, family = selection
        self.set_filters(application=application, family=family)
        self.action_papers()

    def set_filters(self, **values: str | None) -> None:
        """Set the filters named (others are cleared) and the search box empty."""
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

    # --- actions -----------------------------------------------------------------------------

    def action_search(self) -> None:
        """Show the paper list and put the cursor in the search box."""
        self.query_one("#catalog-tabs", TabbedContent).active = "papers-pane"
        self.query_one("#search", Input).focus()

    def action_survey(self) -> None:
        """Show the survey table."""
        self.query_one("#catalog-tabs", TabbedContent).active = "survey-pane"
        self.query_one("#survey", SurveyTableView).focus()

    def action_papers(self) -> None:
        """Show the paper list."""
        self.query_one("#catalog-tabs", TabbedContent).active = "papers-pane"
        self.query_one("#papers", DataTable).focus()

    def _focus_active_pane(self) -> None:
        if self.query_one("#catalog-tabs", TabbedContent).active == "survey-pane":
            self.query_one("#survey", SurveyTableView).focus()
        else:
            self.query_one("#papers", DataTable).focus()

    @on(TabbedContent.TabActivated, "#catalog-tabs")
    def _pane_activated(self) -> None:
        # Clicking a tab leaves the focus on the tab strip; put it where the keys do something.
        if not isinstance(self.focused, DataTable | Input):
            self._focus_active_pane()

    def action_clear_filters(self) -> None:
        """Clear the search text and every filter."""
        self.set_filters()

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Search papers", "Search the catalog's papers", self.action_search)
        yield SystemCommand("Survey table", "Show the applications x families table", self.action_survey)
        yield SystemCommand("Papers", "Show the list of papers", self.action_papers)
        yield SystemCommand("Clear filters", "Clear the paper search and filters", self.action_clear_filters)


def _set_columns(table: DataTable[Text], title_width: int) -> None:
    # Fixed widths, the title taking what is left: the table fits the terminal, no sideways scrolling.
    table.clear(columns=True)
    table.add_column("Citation", key="citation", width=FIXED_COLUMNS["citation"])
    table.add_column("Title", key="title", width=title_width)
    table.add_column("Venue", key="venue", width=FIXED_COLUMNS["venue"])
    table.add_column("Year", key="year", width=FIXED_COLUMNS["year"])


def _clip(value: str, width: int) -> Text:
    text = Text(value)
    text.truncate(width, overflow="ellipsis")
    return text


def _cursor_key(table: DataTable[Text]) -> str | None:
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:  # noqa: BLE001 - a stale cursor just starts at the top
        return None
