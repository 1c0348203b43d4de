"""The catalog screen driven as a user would: survey table, live search, filters, a paper's record."""

from __future__ import annotations

import pytest
from test_tui_support import column_text, row_keys, settle
from textual.widgets import Button, DataTable, Input, Label, Select, Static, TabbedContent

from metabench.catalog import ensure_catalog, list_cells
from metabench.db import open_database
from metabench.tui.app import create_app
from metabench.tui.screens.catalog import CatalogScreen
from metabench.tui.screens.paper import PaperScreen
from metabench.tui.screens.run_form import RunFormScreen
from metabench.tui.widgets.paper_browser import PaperBrowser
from metabench.tui.widgets.survey_table import SurveyTableView

SIZE = (120, 40)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "tui.db"


async def test_first_screen_is_the_survey_table_as_the_lecture_shows_it(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, CatalogScreen)
        survey = app.screen.query_one("#survey", SurveyTableView)
        assert app.focused is survey
        assert [str(c.label).strip() for c in survey.columns.values()] == [
            "Application",
            "(A) Learning to initialize",
            "(B) Learning to compare",
            "(C) Other",
        ]
        assert survey.row_count == 12
        assert column_text(survey, "application")[:3] == [
            "Sound Event Detection",
            "Keyword Spotting",
            "Text Classification",
        ]
        speech = column_text(survey, "A")[row_keys(survey).index("Speech Recognition")]
        assert "Hsu et al., 2020" in speech and "Klejch et al., 2019" in speech
        keyword_c = column_text(survey, "C")[row_keys(survey).index("Keyword Spotting")]
        assert "Network architecture search: Mazzawi et al., 2019; Mo et al., 2020" in keyword_c.replace(
            "\n", " "
        )


async def test_typing_a_search_narrows_the_list_live(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        papers = screen.query_one("#papers", DataTable)
        await pilot.press("slash")  # shows the paper list and focuses the search box
        assert screen.query_one("#catalog-tabs", TabbedContent).active == "papers-pane"
        assert app.focused is screen.query_one("#search", Input)
        await settle(pilot)
        everything = papers.row_count
        assert everything == 76
        await pilot.press(*"proto")
        await settle(pilot)
        narrowed = row_keys(papers)
        assert 0 < len(narrowed) < everything
        assert "snell2017prototypical" in narrowed
        await pilot.press(*"typical networks")
        await settle(pilot)
        assert row_keys(papers)[0] == "snell2017prototypical"
        assert str(screen.query_one("#paper-count").render()).startswith(f"{papers.row_count} of 76 papers")
        await pilot.press(*" zzzz")
        await settle(pilot)
        assert papers.row_count == 0


async def test_facet_filters_restrict_to_table_cells_and_show_counts(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("p")
        family = screen.query_one("#filter-family", Select)
        labels = [str(prompt) for prompt, _ in family._options[1:]]
        assert labels[1].startswith("(B) Learning to compare (") and labels[1].endswith(")")
        # Choose B with the keyboard: open the select, move to its second option, confirm.
        family.focus()
        await pilot.press("enter", "down", "down", "enter")
        await settle(pilot)
        assert family.value == "B"
        db = open_database(db_path)
        expected = {cell.cite_key for cell in list_cells(db, family="B")}
        assert set(row_keys(screen.query_one("#papers", DataTable))) == expected
        # The count in the option label is the number of distinct papers it selects.
        assert f"({len(expected)})" in labels[1]
        await pilot.press("x")  # clear filters
        await settle(pilot)
        assert family.value is Select.NULL and screen.query_one("#papers", DataTable).row_count == 76


async def test_selecting_a_survey_cell_lists_its_papers(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        survey = screen.query_one("#survey", SurveyTableView)
        row = row_keys(survey).index("Speech Recognition")
        survey.move_cursor(row=row, column=1)  # the (A) column
        await pilot.press("enter")
        await settle(pilot)
        assert screen.query_one("#catalog-tabs", TabbedContent).active == "papers-pane"
        assert screen.query_one("#filter-application", Select).value == "Speech Recognition"
        assert screen.query_one("#filter-family", Select).value == "A"
        db = open_database(db_path)
        ensure_catalog(db)
        expected = [c.cite_key for c in list_cells(db, application="Speech Recognition", family="A")]
        assert sorted(row_keys(screen.query_one("#papers", DataTable))) == sorted(expected)


async def test_a_paper_opens_its_full_record_and_benchmark_this_prefills_the_run_form(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"finn model agnostic")
        await settle(pilot)
        papers = app.screen.query_one("#papers", DataTable)
        assert row_keys(papers)[0] == "finn2017model"
        await pilot.press("enter")  # from the search box into the list
        await pilot.press("enter")  # open the highlighted paper
        await settle(pilot)
        assert isinstance(app.screen, PaperScreen)
        record = str(app.screen.query_one("#paper-record", Static).render())
        for expected in (
            "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks",
            "Chelsea Finn, Pieter Abbeel, Sergey Levine",
            "ICML 2017",
            "2017",
            "https://arxiv.org/abs/1703.03400",
            "not cited in the table",
        ):
            assert expected in record, expected
        button = app.screen.query_one(".benchmark", Button)
        assert str(button.label) == "Benchmark maml"
        await pilot.click(".benchmark")
        await settle(pilot)
        assert isinstance(app.screen, RunFormScreen)
        form = app.screen
        assert form.query_one("#method", Select).value == "maml"
        assert form.values() == {
            "method": "maml",
            "protocol": "vinyals",
            "ways": "5",
            "shots": "1",
            "queries": "15",
            "preset": "smoke",
            "device": "auto",
            "seed": "0",
            "options": "",
        }
        await pilot.press("escape")
        assert isinstance(app.screen, PaperScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, CatalogScreen)


async def test_a_table_paper_lists_the_cells_it_appears_in(db_path):
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(PaperScreen("shimada2020b"))
        await settle(pilot)
        record = str(app.screen.query_one("#paper-record", Static).render())
        assert "Sound Event Detection" in record and "(B) Learning to compare" in record
        assert "only one such paper is known" in record  # the note
        assert not app.screen.query(".benchmark")


async def test_defect_10_a_paper_with_two_methods_offers_both_and_q_closes_its_window(db_path):
    # Nichol et al. 2018 is the paper of fomaml and of reptile: it offered only one (disabled) button,
    # `b` said nothing, and `q` did nothing.
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(PaperScreen("nichol2018first"))
        await settle(pilot)
        screen = app.screen
        assert sorted(screen.benchmark_methods()) == ["fomaml", "reptile"]
        assert not any(button.disabled for button in screen.query(".benchmark").results(Button))
        await pilot.press("b")  # two methods: the first button takes the focus, and a note says why
        assert isinstance(app.screen, PaperScreen) and app.screen.focused.has_class("benchmark")
        assert any("several methods" in str(n.message) for n in app._notifications)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, CatalogScreen)


async def test_defect_7_active_filters_are_shown_esc_leaves_the_search_and_x_clears_them(db_path):
    # A survey cell's filters stayed on while searching: 0 of 76 papers, with no hint why.
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        survey = screen.query_one("#survey", SurveyTableView)
        survey.move_cursor(row=row_keys(survey).index("Speech Recognition"), column=1)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("slash", *"prototypical")  # a paper outside that cell
        await settle(pilot)
        papers = screen.query_one("#papers", DataTable)
        assert papers.row_count == 0
        note = str(screen.query_one("#filter-note", Label).render())
        assert "No paper matches within application = Speech Recognition, family = A" in note
        assert "x clears the filters" in note
        await pilot.press("escape")
        assert screen.focused is papers
        await pilot.press("x")
        await settle(pilot)
        assert screen.query_one("#search", Input).value == ""
        assert screen.query_one("#filter-application", Select).value is Select.NULL
        assert "No filters" in str(screen.query_one("#filter-note", Label).render())
        assert papers.row_count == screen.query_one(PaperBrowser).total_papers
