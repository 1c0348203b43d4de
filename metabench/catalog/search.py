"""Full-text search over the papers (SQLite FTS5, ranked by bm25); user text never reaches FTS syntax."""

from __future__ import annotations

import re

import sqlite_utils

from metabench.catalog.model import Paper
from metabench.catalog.queries import PAPER_COLUMNS, all_papers, paper_from_row

# Letters and digits only: everything else is a separator for FTS5's unicode61 tokenizer anyway,
# so dropping it loses nothing and keeps quotes, *, (, ^ and friends out of the MATCH expression.
_WORD = re.compile(r"[^\W_]+")

# bm25 weights per indexed column, in the order of catalog_search's columns: a hit in the title
# or the cite key says more than one in a note.
_WEIGHTS = {
    "cite_key": 8.0,
    "title": 10.0,
    "authors": 6.0,
    "venue": 2.0,
    "application": 4.0,
    "note": 1.0,
    "technique": 3.0,
}


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for free text: every word must match, as a word or a word prefix.

    Each word is a quoted string (internal quotes doubled), so FTS5 operators typed by the user
    (AND, OR, NOT, NEAR, column filters) are searched as plain words. None when the text has no
    words at all.
    """
    words = _WORD.findall(text)
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


def search_papers(db: sqlite_utils.Database, query: str, limit: int | None = 50) -> list[Paper]:
    """Papers matching every word of `query`, best first (bm25), at most `limit` (None: all).

    A query without any word (blank, or only punctuation) returns every paper, by cite key.
    """
    match = fts_query(query)
    if match is None:
        return all_papers(db)
    weights = ", ".join(str(weight) for weight in _WEIGHTS.values())
    rows = db.execute(
        f"SELECT {PAPER_COLUMNS} FROM catalog_search JOIN catalog_papers AS p ON p.id = catalog_search.rowid "
        f"WHERE catalog_search MATCH ? ORDER BY bm25(catalog_search, {weights}), p.year DESC, p.cite_key "
        "LIMIT ?",
        [match, -1 if limit is None else max(limit, 0)],
    )
    return [paper_from_row(row) for row in rows]
