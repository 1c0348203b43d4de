"""Read the ingested catalog: table cells with filters, one paper's record, the survey table, facets."""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlite_utils

from metabench.catalog.model import (
    FAMILIES,
    Cell,
    FacetCount,
    Facets,
    Paper,
    PaperRecord,
    SurveyRow,
    SurveyTable,
    Technique,
)
from metabench.catalog.source import AUTHOR_SEPARATOR
from metabench.errors import MetabenchError

PAPER_COLUMNS = "p.cite_key, p.short_cite, p.title, p.authors, p.venue, p.year, p.arxiv, p.url, p.note"

_CELL_SELECT = """
SELECT c.application, c.family, c.subfamily, c.cite_key, p.short_cite, p.title, p.year, p.venue
FROM catalog_cells AS c
JOIN catalog_papers AS p ON p.cite_key = c.cite_key
JOIN catalog_applications AS a ON a.name = c.application
"""
_CELL_ORDER = " ORDER BY a.position, c.family, c.position"


def paper_from_row(row: Sequence[Any]) -> Paper:
    """A Paper from a row selected with PAPER_COLUMNS."""
    cite_key, short_cite, title, authors, venue, year, arxiv, url, note = row
    return Paper(
        cite_key, short_cite, title, tuple(authors.split(AUTHOR_SEPARATOR)), venue, year, arxiv, url, note
    )


def _cell(row: Sequence[Any]) -> Cell:
    """A Cell from a row selected with _CELL_SELECT (same column order as the dataclass)."""
    return Cell(*row)


def application_names(db: sqlite_utils.Database) -> list[str]:
    """The survey table's applications, in the lecture's order."""
    return [row[0] for row in db.execute("SELECT name FROM catalog_applications ORDER BY position")]


def list_cells(
    db: sqlite_utils.Database,
    application: str | None = None,
    family: str | None = None,
    year: int | None = None,
    venue: str | None = None,
) -> list[Cell]:
    """The survey table's cells in table order, filtered by application (exact, any case),
    family (A, B or C), the paper's year and a piece of its venue (any case)."""
    clauses: list[str] = []
    params: list[object] = []
    if application is not None:
        names = application_names(db)
        if application.casefold() not in {name.casefold() for name in names}:
            raise MetabenchError(f"unknown application '{application}'; choose one of: {', '.join(names)}")
        clauses.append("c.application = ? COLLATE NOCASE")
        params.append(application)
    if family is not None:
        if family.upper() not in FAMILIES:
            raise MetabenchError(f"unknown family '{family}'; choose A, B or C")
        clauses.append("c.family = ?")
        params.append(family.upper())
    if year is not None:
        clauses.append("p.year = ?")
        params.append(year)
    if venue is not None:
        clauses.append("instr(lower(p.venue), lower(?)) > 0")
        params.append(venue)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return [_cell(row) for row in db.execute(_CELL_SELECT + where + _CELL_ORDER, params)]


def all_papers(db: sqlite_utils.Database) -> list[Paper]:
    """Every paper (table and method papers), by cite key."""
    rows = db.execute(f"SELECT {PAPER_COLUMNS} FROM catalog_papers AS p ORDER BY p.cite_key")
    return [paper_from_row(row) for row in rows]


def all_techniques(db: sqlite_utils.Database) -> list[Technique]:
    """Every technique, in source order."""
    rows = db.execute(
        "SELECT cite_key, learnable_component, family, benchmark_method FROM catalog_techniques "
        "ORDER BY position"
    )
    return [Technique(*row) for row in rows]


def get_paper(db: sqlite_utils.Database, cite_key: str) -> PaperRecord | None:
    """A paper with the table cells that cite it and its techniques; None for an unknown key."""
    row = db.execute(
        f"SELECT {PAPER_COLUMNS} FROM catalog_papers AS p WHERE p.cite_key = ?", [cite_key]
    ).fetchone()
    if row is None:
        return None
    cells = [
        _cell(cell) for cell in db.execute(_CELL_SELECT + " WHERE c.cite_key = ?" + _CELL_ORDER, [cite_key])
    ]
    techniques = db.execute(
        "SELECT cite_key, learnable_component, family, benchmark_method FROM catalog_techniques "
        "WHERE cite_key = ? ORDER BY position",
        [cite_key],
    )
    return PaperRecord(paper_from_row(row), tuple(cells), tuple(Technique(*t) for t in techniques))


def closest_cite_key(db: sqlite_utils.Database, cite_key: str) -> str | None:
    """The known cite key most like a mistyped one (for "did you mean ...?"), if any is close."""
    keys = [row[0] for row in db.execute("SELECT cite_key FROM catalog_papers")]
    close = difflib.get_close_matches(cite_key, keys, n=1)
    return close[0] if close else None


def survey_table(db: sqlite_utils.Database) -> SurveyTable:
    """The lecture's table: every application in order, with its A, B and C cells in source order."""
    by_row: dict[str, dict[str, list[Cell]]] = defaultdict(lambda: {family: [] for family in FAMILIES})
    for cell in list_cells(db):
        by_row[cell.application][cell.family].append(cell)
    rows = []
    for name in application_names(db):
        cells = by_row[name]
        rows.append(SurveyRow(name, tuple(cells["A"]), tuple(cells["B"]), tuple(cells["C"])))
    return SurveyTable(tuple(rows))


_PARENTHESES = re.compile(r"\([^)]*\)")


def venue_series(venue: str) -> str:
    """The venue without year, pages or remarks: "ICASSP 2020 (pp. 81-85)" -> "ICASSP"."""
    words = [word for word in _PARENTHESES.sub(" ", venue).split() if not any(ch.isdigit() for ch in word)]
    return " ".join(words) or venue


def facets(db: sqlite_utils.Database) -> Facets:
    """Counts of the table's cells (and distinct papers) by family, application, year and venue."""
    cells = list_cells(db)

    def count(key: Callable[[Cell], str], order: Iterable[str] | None = None) -> tuple[FacetCount, ...]:
        groups: dict[str, list[Cell]] = defaultdict(list)
        for cell in cells:
            groups[key(cell)].append(cell)
        values = list(order) if order is not None else sorted(groups, key=lambda v: (-len(groups[v]), v))
        return tuple(
            FacetCount(value, len(groups[value]), len({cell.cite_key for cell in groups[value]}))
            for value in values
        )

    total_papers = db.execute("SELECT count(*) FROM catalog_papers").fetchone()[0]
    return Facets(
        families=count(lambda cell: cell.family, FAMILIES),
        applications=count(lambda cell: cell.application, application_names(db)),
        years=count(lambda cell: str(cell.year), sorted({str(cell.year) for cell in cells})),
        venues=count(lambda cell: venue_series(cell.venue)),
        total_cells=len(cells),
        total_table_papers=len({cell.cite_key for cell in cells}),
        total_papers=total_papers,
    )
