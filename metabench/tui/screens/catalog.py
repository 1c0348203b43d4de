"""The catalog screen: the lecture's survey table, and the paper list (search, facet filters)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import DataTable, Input, TabbedContent, TabPane

from metabench.tui import store
from metabench.tui.screens.base import MainScreen
from metabench.tui.widgets.paper_browser import PaperBrowser
from metabench.tui.widgets.survey_table import SurveyTableView

if TYPE_CHECKING:
    from metabench.catalog import Facets, SurveyTable


class CatalogScreen(MainScreen):
    """Survey table and papers; the catalog is read (and ingested on first use) in a thread worker."""

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
        Binding("t", "survey", "Survey table", show=False),
        Binding("p", "papers", "Papers", show=False),
        Binding("x", "clear_filters", "Clear filters"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.facets: Facets | None = None

    def compose_body(self) -> ComposeResult:
        with TabbedContent(initial="survey-pane", id="catalog-tabs"):
            with TabPane("Survey table", id="survey-pane"):
                yield SurveyTableView(id="survey")
            # The paper browser is mounted after the first frame: the hidden pane must not delay it.
            yield TabPane("Papers", id="papers-pane")

    def on_mount(self) -> None:
        # A one-line placeholder rather than `loading = True`: the animated loading indicator
        # costs the first paint about 0.1 s on a small machine.
        self.query_one("#survey", SurveyTableView).show_placeholder("Loading the survey table…")
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        # The worker's imports (sqlite-utils, numpy) would otherwise compete with the first paint.
        self.query_one("#papers-pane", TabPane).mount(PaperBrowser())
        self.load_catalog()

    @work(thread=True, exclusive=True, group="catalog-load", exit_on_error=False)
    def load_catalog(self) -> None:
        try:
            table, counts = store.load_catalog(self.app.db_path)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            self.app.call_from_thread(self._load_failed, str(exc))
            return
        self.app.call_from_thread(self._show_catalog, table, counts)

    def _load_failed(self, message: str) -> None:
        self.query_one("#survey", SurveyTableView).show_placeholder("The survey table could not be loaded.")
        self.with_browser(PaperBrowser.load_failed)
        self.notify(f"cannot load the catalog: {message}", severity="error", timeout=10)

    def _show_catalog(self, table: SurveyTable, counts: Facets) -> None:
        survey = self.query_one("#survey", SurveyTableView)
        survey.show(table)
        if not isinstance(self.focused, DataTable | Input):
            self._focus_active_pane()
        self.facets = counts
        # The paper browser is mounted after the first frame: whichever comes second (the data or
        # the browser's mount) hands the facets over.
        browsers = self.query(PaperBrowser)
        if browsers and browsers.first().is_mounted:
            browsers.first().catalog_loaded(counts)

    def with_browser(self, call: Callable[[PaperBrowser], object]) -> None:
        """Call `call(browser)` now, or as soon as the lazily mounted paper browser exists."""
        browsers = self.query(PaperBrowser)
        if browsers and browsers.first().is_mounted:
            call(browsers.first())
        elif self.is_attached:
            self.set_timer(0.02, lambda: self.with_browser(call))

    @on(PaperBrowser.PaperChosen)
    def _paper_chosen(self, event: PaperBrowser.PaperChosen) -> None:
        from metabench.tui.screens.paper import PaperScreen

        self.app.push_screen(PaperScreen(event.cite_key))

    @on(DataTable.CellSelected, "#survey")
    def _survey_cell_selected(self) -> None:
        selection = self.query_one("#survey", SurveyTableView).selection()
        if selection is None:
            return
        application, family = selection
        self.with_browser(lambda browser: browser.set_filters(application=application, family=family))
        self.action_papers()

    # --- actions -----------------------------------------------------------------------------

    def action_search(self) -> None:
        """Show the paper list and put the cursor in the search box."""
        self.query_one("#catalog-tabs", TabbedContent).active = "papers-pane"
        self.with_browser(lambda browser: browser.query_one("#search", Input).focus())

    def action_survey(self) -> None:
        """Show the survey table."""
        self.query_one("#catalog-tabs", TabbedContent).active = "survey-pane"
        self.query_one("#survey", SurveyTableView).focus()

    def action_papers(self) -> None:
        """Show the paper list."""
        self.query_one("#catalog-tabs", TabbedContent).active = "papers-pane"
        self.with_browser(lambda browser: browser.query_one("#papers", DataTable).focus())

    def action_clear_filters(self) -> None:
        """Clear the search text and every filter."""
        self.with_browser(lambda browser: browser.set_filters())

    def focus_default(self) -> None:
        self._focus_active_pane()

    def _focus_active_pane(self) -> None:
        if self.query_one("#catalog-tabs", TabbedContent).active == "survey-pane":
            self.action_survey()
        else:
            self.action_papers()

    @on(TabbedContent.TabActivated, "#catalog-tabs")
    def _pane_activated(self) -> None:
        # Clicking a tab leaves the focus on the tab strip; put it where the keys do something.
        if not isinstance(self.focused, DataTable | Input):
            self._focus_active_pane()

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Search papers", "Search the catalog's papers", self.action_search)
        yield SystemCommand("Survey table", "Show the applications x families table", self.action_survey)
        yield SystemCommand("Papers", "Show the list of papers", self.action_papers)
        yield SystemCommand("Clear filters", "Clear the paper search and filters", self.action_clear_filters)
