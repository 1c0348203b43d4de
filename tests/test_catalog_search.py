"""Search (FTS5, bm25) and the cell queries: relevant hits first, hostile text never raises."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from metabench import catalog
from metabench.catalog.search import fts_query
from metabench.db import open_database
from metabench.errors import MetabenchError


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> sqlite_utils.Database:
    database = open_database(tmp_path_factory.mktemp("search") / "catalog.db")
    catalog.ensure_catalog(database)
    return database


def keys(papers: list[catalog.Paper]) -> list[str]:
    return [paper.cite_key for paper in papers]


def test_title_words_find_the_paper_first(db: sqlite_utils.Database) -> None:
    assert keys(catalog.search_papers(db, "prototypical networks few-shot"))[0] == "snell2017prototypical"
    assert keys(catalog.search_papers(db, "Learning to Compare: Relation Network")) == ["sung2018learning"]


def test_authors_venue_application_note_and_technique_are_searchable(db: sqlite_utils.Database) -> None:
    assert "finn2017model" in keys(catalog.search_papers(db, "Chelsea Finn"))
    assert set(keys(catalog.search_papers(db, "ASRU"))) == {"klejch2019speaker"}
    spotting = set(keys(catalog.search_papers(db, "keyword spotting")))
    assert {
        "chen2020a",
        "huh2020metric",
        "veniat2019stochastic",
        "mazzawi2019improving",
        "mo2020neural",
    } <= spotting
    assert "shimada2020b" in keys(catalog.search_papers(db, "most likely repeats"))
    assert set(keys(catalog.search_papers(db, "lstm-optimizer"))) == {
        "andrychowicz2016learning",
        "ravi2017optimization",
    }


def test_prefixes_and_missing_accents_match(db: sqlite_utils.Database) -> None:
    assert "snell2017prototypical" in keys(catalog.search_papers(db, "prototyp"))
    assert keys(catalog.search_papers(db, "Serra blow")) == ["serra2019blow"]
    assert keys(catalog.search_papers(db, "suris visual scenes")) == ["suris2019learning"]
    assert keys(catalog.search_papers(db, "Serrà")) == ["serra2019blow"]


def test_ranking_prefers_title_hits(db: sqlite_utils.Database) -> None:
    hits = keys(catalog.search_papers(db, "architecture search"))
    assert len(hits) >= 8
    assert hits[0] in {"zoph2017neural", "liu2019darts", "mo2020neural", "li2020neural", "pham2018efficient"}


def test_blank_query_returns_every_paper(db: sqlite_utils.Database) -> None:
    for query in ("", "   ", "\t\n"):
        papers = catalog.search_papers(db, query)
        assert len(papers) == 76
        assert keys(papers) == sorted(keys(papers))


def test_limit(db: sqlite_utils.Database) -> None:
    assert len(catalog.search_papers(db, "learning", limit=3)) == 3
    assert len(catalog.search_papers(db, "learning", limit=None)) > 50


HOSTILE = [
    '"',
    '""',
    "*",
    "(",
    ")",
    "AND",
    "OR NOT",
    "NOT",
    "NEAR(",
    "NEAR(meta learning, 2)",
    "'",
    "meta'",
    '"unbalanced quote',
    "title:maml",
    "^maml",
    "meta -learning",
    "{maml}",
    "a AND OR b",
    "\\",
    "%_",
    "ünïcødé 日本語 мета",
    "🙂",
    "\x00",
    "x" * 5000,
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_query_text_never_raises(db: sqlite_utils.Database, query: str) -> None:
    papers = catalog.search_papers(db, query)
    assert isinstance(papers, list)
    assert all(isinstance(paper, catalog.Paper) for paper in papers)


def test_operators_and_punctuation_are_plain_text(db: sqlite_utils.Database) -> None:
    # As FTS5 syntax these would be a column filter, a phrase error and a NEAR group; as text
    # they are the words around them.
    assert catalog.search_papers(db, "title:maml") == []  # no paper has the word "title"
    assert "antoniou2019train" in keys(catalog.search_papers(db, '"MAML'))
    assert "antoniou2019train" in keys(catalog.search_papers(db, "(MAML)*"))
    assert keys(catalog.search_papers(db, "NEAR(Snell")) == []  # needs the word "near" too
    assert keys(catalog.search_papers(db, "Snell AND Swersky")) == []  # "and" is a word here
    assert keys(catalog.search_papers(db, "Snell Swersky")) == ["snell2017prototypical"]


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('near( "x" OR y*') == '"near"* "x"* "OR"* "y"*'
    assert fts_query(" ( * ) ") is None


def test_list_cells_filters(db: sqlite_utils.Database) -> None:
    assert len(catalog.list_cells(db)) == 50
    c_cells = catalog.list_cells(db, family="C")
    assert len(c_cells) == 12
    assert all(cell.subfamily for cell in c_cells)
    assert len(catalog.list_cells(db, family="c")) == 12
    speech = catalog.list_cells(db, application="speech recognition")
    assert [cell.short_cite for cell in speech][:2] == ["Hsu et al., 2020", "Klejch et al., 2019"]
    assert len(speech) == 7
    of_2018 = catalog.list_cells(db, year=2018)
    assert of_2018 and all(cell.year == 2018 for cell in of_2018)
    icassp = catalog.list_cells(db, venue="icassp")
    assert icassp and all("ICASSP" in cell.venue for cell in icassp)
    assert catalog.list_cells(db, application="Parsing", family="B") == []


def test_list_cells_rejects_unknown_filters(db: sqlite_utils.Database) -> None:
    with pytest.raises(MetabenchError, match="unknown family 'D'; choose A, B or C"):
        catalog.list_cells(db, family="D")
    with pytest.raises(MetabenchError, match="unknown application 'Poetry'; choose one of: Sound Event"):
        catalog.list_cells(db, application="Poetry")


def test_get_paper_has_cells_and_techniques(db: sqlite_utils.Database) -> None:
    record = catalog.get_paper(db, "shi2020few")
    assert record is not None
    assert [(cell.application, cell.family) for cell in record.cells] == [
        ("Sound Event Detection", "A"),
        ("Sound Event Detection", "B"),
    ]
    assert record.paper.authors[0] == "Bowen Shi"
    snail = catalog.get_paper(db, "mishra2018simple")
    assert snail is not None and snail.cells == ()
    assert [(t.family, t.benchmark_method) for t in snail.techniques] == [("C", "snail")]
    assert catalog.get_paper(db, "nobody2099") is None


def test_survey_table_and_facets(db: sqlite_utils.Database) -> None:
    table = catalog.survey_table(db)
    assert len(table.rows) == 12
    assert sum(len(row.cells(family)) for row in table.rows for family in "ABC") == 50
    voice = next(row for row in table.rows if row.application == "Voice Cloning")
    assert (voice.a, voice.b) == ((), ())
    assert [cell.label for cell in voice.c] == [
        "Learning the learning algorithm: Chen et al., 2019b",
        "Learning the learning algorithm: Serrà et al., 2019",
    ]
    facets = catalog.facets(db)
    assert [(f.value, f.cells) for f in facets.families] == [("A", 21), ("B", 17), ("C", 12)]
    assert sum(f.cells for f in facets.applications) == 50
    assert [f.value for f in facets.applications] == [row.application for row in table.rows]
    assert sum(f.cells for f in facets.years) == 50
    assert sum(f.cells for f in facets.venues) == 50
    assert facets.venues[0].value == "ICASSP"
    assert (facets.total_cells, facets.total_table_papers, facets.total_papers) == (50, 49, 76)


def test_queries_work_from_another_thread(tmp_path: Path) -> None:
    """The TUI calls the core from worker threads, each with its own connection."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "threads.db"
    catalog.ensure_catalog(open_database(path))

    def work(query: str) -> int:
        return len(catalog.search_papers(open_database(path), query))

    queries = ["maml", "speech", ""]
    expected = [len(catalog.search_papers(open_database(path), q)) for q in queries]
    assert 0 < expected[0] < 76 and 0 < expected[1] < 76 and expected[2] == 76
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(work, queries)) == expected
