"""Every core call the TUI makes, for its worker threads: one short-lived connection per call.

The core modules (and sqlite-utils, which pulls in numpy) are imported on first use, inside the
worker, so importing the app and painting the first screen never waits for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

    from metabench.catalog import Facets, Paper, PaperRecord, SurveyTable
    from metabench.leaderboard import Leaderboard, RunRecord, RunSummary


@contextmanager
def connect(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A connection owned by the calling thread, closed when the block ends.

    SQLite connections must not be shared between the worker threads that Textual runs, and a
    fresh connection per call also sees what run subprocesses committed a moment ago.
    """
    from metabench.db import open_database

    db = open_database(db_path)
    try:
        yield db
    finally:
        db.close()


# --- catalog ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperQuery:
    """What the paper list shows: free text plus the four facet filters (None: any)."""

    text: str = ""
    application: str | None = None
    family: str | None = None
    year: int | None = None
    venue: str | None = None

    @property
    def filtered(self) -> bool:
        return any(value is not None for value in (self.application, self.family, self.year, self.venue))


def load_catalog(db_path: Path) -> tuple[SurveyTable, Facets]:
    """Ingest the catalog if this database lacks it, then read the survey table and the facets."""
    from metabench.catalog import ensure_catalog, facets, survey_table

    with connect(db_path) as db:
        ensure_catalog(db)
        return survey_table(db), facets(db)


def find_papers(db_path: Path, query: PaperQuery) -> list[Paper]:
    """Papers matching the text (best first), kept to those cited in table cells that pass the filters.

    The filters are the survey table's facets, so they narrow to papers the table cites; the text
    alone searches every paper, method papers included.
    """
    from metabench.catalog import list_cells, search_papers

    with connect(db_path) as db:
        papers = search_papers(db, query.text, limit=None)
        if not query.filtered:
            return papers
        cells = list_cells(db, query.application, query.family, query.year, query.venue)
    allowed = {cell.cite_key for cell in cells}
    return [paper for paper in papers if paper.cite_key in allowed]


def paper_record(db_path: Path, cite_key: str) -> PaperRecord | None:
    """One paper with its table cells and techniques."""
    from metabench.catalog import get_paper

    with connect(db_path) as db:
        return get_paper(db, cite_key)


# --- runs and leaderboards -----------------------------------------------------------------------


def recent_runs(db_path: Path, limit: int) -> list[RunSummary]:
    """The newest runs first."""
    from metabench.leaderboard import list_runs

    with connect(db_path) as db:
        return list_runs(db, limit=limit)


def run_record(db_path: Path, run_id: str) -> RunRecord | None:
    """A run's full record, learning curve included."""
    from metabench.leaderboard import get_run

    with connect(db_path) as db:
        return get_run(db, run_id)


def run_records(db_path: Path, run_ids: Sequence[str]) -> list[RunRecord]:
    """The records of `run_ids` that are still in the database, in the order asked."""
    from metabench.leaderboard import get_run

    with connect(db_path) as db:
        records = [get_run(db, run_id) for run_id in run_ids]
    return [record for record in records if record is not None]


def leaderboards(db_path: Path, all_runs: bool = False) -> list[Leaderboard]:
    """The boards of every setting (each method's largest budget, or every finished run)."""
    from metabench.leaderboard import build_leaderboards

    with connect(db_path) as db:
        return build_leaderboards(db, all_runs=all_runs)


def export_leaderboard(db_path: Path, path: Path, all_runs: bool = False) -> int:
    """Write the markdown leaderboard to `path` atomically; returns the number of settings.

    A missing folder is an error (FileNotFoundError), not created: the user typed the path.
    """
    from metabench import atomic
    from metabench.leaderboard import render_markdown

    boards = leaderboards(db_path, all_runs)
    atomic.write_text(path, render_markdown(boards), make_parents=False)
    return len(boards)
