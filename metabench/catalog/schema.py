"""The catalog's tables, its full-text index and the triggers that keep the index in sync."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from metabench import db as database
from metabench.errors import MetabenchError

NAMESPACE = "catalog"

# The full-text row of a paper: its own fields plus the applications that cite it and its
# techniques, so a search for "keyword spotting" or "optimizer" finds the papers filed there.
_INDEX_PAPER = """
INSERT INTO catalog_search (rowid, cite_key, title, authors, venue, application, note, technique)
SELECT p.id, p.cite_key, p.title, p.authors, p.venue,
       coalesce((SELECT group_concat(application, ' | ')
                 FROM (SELECT DISTINCT application FROM catalog_cells WHERE cite_key = p.cite_key)), ''),
       coalesce(p.note, ''),
       coalesce((SELECT group_concat(learnable_component || ' ' || coalesce(benchmark_method, ''), ' | ')
                 FROM catalog_techniques WHERE cite_key = p.cite_key), '')
FROM catalog_papers AS p WHERE p.cite_key = {key};
"""

_UNINDEX_PAPER = (
    "DELETE FROM catalog_search WHERE rowid = (SELECT id FROM catalog_papers WHERE cite_key = {key});"
)


def _reindex(key: str) -> str:
    return _UNINDEX_PAPER.format(key=key) + _INDEX_PAPER.format(key=key)


_TABLES = [
    """CREATE TABLE catalog_applications (
           name TEXT PRIMARY KEY,
           position INTEGER NOT NULL
       )""",
    """CREATE TABLE catalog_papers (
           id INTEGER PRIMARY KEY,  -- a stable rowid for the full-text index (VACUUM keeps it)
           cite_key TEXT NOT NULL UNIQUE,
           short_cite TEXT NOT NULL,
           title TEXT NOT NULL,
           authors TEXT NOT NULL,   -- "First Last; First Last"
           venue TEXT NOT NULL,
           year INTEGER NOT NULL,
           arxiv TEXT,
           url TEXT,
           note TEXT
       )""",
    """CREATE TABLE catalog_cells (
           application TEXT NOT NULL REFERENCES catalog_applications (name),
           family TEXT NOT NULL CHECK (family IN ('A', 'B', 'C')),
           subfamily TEXT,
           cite_key TEXT NOT NULL REFERENCES catalog_papers (cite_key),
           position INTEGER NOT NULL,
           PRIMARY KEY (application, family, cite_key),
           CHECK ((family = 'C') = (subfamily IS NOT NULL))
       )""",
    "CREATE INDEX catalog_cells_cite_key ON catalog_cells (cite_key)",
    """CREATE TABLE catalog_techniques (
           cite_key TEXT NOT NULL REFERENCES catalog_papers (cite_key),
           learnable_component TEXT NOT NULL,
           family TEXT CHECK (family IN ('A', 'B', 'C')),
           benchmark_method TEXT,
           position INTEGER NOT NULL,
           PRIMARY KEY (cite_key, learnable_component)
       )""",
    # Which source was ingested last and its digest, so a changed bundled catalog is reloaded.
    """CREATE TABLE catalog_meta (
           key TEXT PRIMARY KEY,
           value TEXT NOT NULL
       )""",
    """CREATE VIRTUAL TABLE catalog_search USING fts5 (
           cite_key, title, authors, venue, application, note, technique,
           tokenize = 'unicode61 remove_diacritics 2'
       )""",
]


def _triggers() -> list[str]:
    statements = [
        "CREATE TRIGGER catalog_papers_ai AFTER INSERT ON catalog_papers BEGIN "
        + _INDEX_PAPER.format(key="new.cite_key")
        + " END",
        "CREATE TRIGGER catalog_papers_au AFTER UPDATE ON catalog_papers BEGIN "
        "DELETE FROM catalog_search WHERE rowid = old.id; "
        + _INDEX_PAPER.format(key="new.cite_key")
        + " END",
        "CREATE TRIGGER catalog_papers_ad AFTER DELETE ON catalog_papers BEGIN "
        "DELETE FROM catalog_search WHERE rowid = old.id; END",
    ]
    for table in ("catalog_cells", "catalog_techniques"):
        statements += [
            f"CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN {_reindex('new.cite_key')} END",
            f"CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN {_reindex('old.cite_key')} END",
            f"CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN "
            f"{_reindex('old.cite_key')} {_reindex('new.cite_key')} END",
        ]
    return statements


def _v1_catalog(db: sqlite_utils.Database) -> None:
    # Plain db.execute: db.migrate holds one transaction around this, which sqlite-utils'
    # table helpers would commit early.
    for statement in _TABLES + _triggers():
        db.execute(statement)


MIGRATIONS = [_v1_catalog]


def migrate_catalog(db: sqlite_utils.Database) -> None:
    """Bring the catalog's schema up to date (idempotent)."""
    try:
        database.migrate(db, NAMESPACE, MIGRATIONS)
    except sqlite3.Error as exc:
        # Two processes opening a new database at once (the TUI and a CLI command) both see the
        # migration missing; the second fails on "table already exists" once the first commits.
        # Its work is then done, and the schema is as good as if this connection had built it.
        if database.schema_version(db, NAMESPACE) >= len(MIGRATIONS):
            return
        raise MetabenchError(
            f"cannot create the catalog tables: {database.database_error(exc, database.database_file(db))}"
        ) from exc
