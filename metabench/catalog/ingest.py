"""Load a validated catalog source into SQLite in one transaction (upserts, stale rows removed)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlite_utils

from metabench.catalog.model import IngestReport
from metabench.catalog.schema import migrate_catalog
from metabench.catalog.source import CatalogSource, bundled_source_dir, load_source, source_digest
from metabench.db import database_error, database_file
from metabench.errors import MetabenchError

BUNDLED = "bundled"


@dataclass(frozen=True)
class _Table:
    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]

    def upsert_sql(self) -> str:
        columns = self.keys + self.values
        changed = " OR ".join(f"{column} IS NOT excluded.{column}" for column in self.values)
        # The WHERE clause turns an identical row into a no-op, so a re-ingest writes nothing at
        # all: no trigger fires and the full-text index stays byte for byte the same.
        return (
            f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET "
            f"{', '.join(f'{column} = excluded.{column}' for column in self.values)} WHERE {changed}"
        )


_APPLICATIONS = _Table("catalog_applications", ("name",), ("position",))
_PAPERS = _Table(
    "catalog_papers",
    ("cite_key",),
    ("short_cite", "title", "authors", "venue", "year", "arxiv", "url", "note"),
)
_CELLS = _Table("catalog_cells", ("application", "family", "cite_key"), ("subfamily", "position"))
_TECHNIQUES = _Table(
    "catalog_techniques", ("cite_key", "learnable_component"), ("family", "benchmark_method", "position")
)
_META = _Table("catalog_meta", ("key",), ("value",))


@dataclass
class _Tally:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def ingest(db: sqlite_utils.Database, source_dir: Path | None = None) -> IngestReport:
    """Validate the catalog in `source_dir` (default: bundled) and make the database match it.

    Everything happens in one transaction: a validation error (CatalogValidationError, message
    `FILE:LINE: problem`) is raised before anything is written, and a database error rolls the
    whole ingest back. Re-ingesting the same files changes nothing.
    """
    source = load_source(source_dir)
    label = _source_label(source.directory)
    migrate_catalog(db)
    tally = _Tally()
    try:
        with _transaction(db.conn):
            _sync_all(db.conn, source, label, tally)
    except sqlite3.Error as exc:
        reason = database_error(exc, database_file(db))
        raise MetabenchError(
            f"could not write the catalog from {source.directory} ({reason}); the database is unchanged"
        ) from exc
    return IngestReport(
        source=source.directory,
        applications=len(source.applications),
        cells=len(source.cells),
        papers=len(source.papers),
        techniques=len(source.techniques),
        inserted=tally.inserted,
        updated=tally.updated,
        deleted=tally.deleted,
    )


def ensure_catalog(db: sqlite_utils.Database) -> None:
    """Make the catalog usable: migrate, then ingest the bundled source when the catalog is empty
    or was ingested from an older bundled source (after an upgrade or an edit of catalog/)."""
    migrate_catalog(db)
    meta = dict(db.execute("SELECT key, value FROM catalog_meta").fetchall())
    has_papers = db.execute("SELECT EXISTS (SELECT 1 FROM catalog_papers)").fetchone()[0]
    if not has_papers:
        ingest(db)
    elif meta.get("source") == BUNDLED and meta.get("digest") != source_digest(bundled_source_dir()):
        ingest(db)


def _source_label(directory: Path) -> str:
    try:
        bundled = directory.resolve() == bundled_source_dir().resolve()
    except OSError:
        bundled = False
    return BUNDLED if bundled else str(directory.resolve())


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One transaction, or a savepoint inside the caller's if one is already open."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT catalog_ingest")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO catalog_ingest")
            conn.execute("RELEASE catalog_ingest")
            raise
        conn.execute("RELEASE catalog_ingest")
        return
    # IMMEDIATE takes the write lock up front: reading the existing keys and then writing in a
    # deferred transaction could fail with SQLITE_BUSY if another process wrote in between.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _sync_all(conn: sqlite3.Connection, source: CatalogSource, label: str, tally: _Tally) -> None:
    cells = [asdict(cell) for cell in source.cells]
    techniques = [asdict(technique) for technique in source.techniques]
    # Children first when deleting and parents first when inserting, so foreign keys always hold.
    _delete_stale(conn, _CELLS, cells, tally)
    _delete_stale(conn, _TECHNIQUES, techniques, tally)
    for table, rows in (
        (_APPLICATIONS, [{"name": app.name, "position": app.position} for app in source.applications]),
        (_PAPERS, [asdict(paper) for paper in source.papers]),
    ):
        _delete_stale(conn, table, rows, tally)
        _upsert(conn, table, rows, tally)
    _upsert(conn, _CELLS, cells, tally)
    _upsert(conn, _TECHNIQUES, techniques, tally)
    meta = [{"key": "source", "value": label}, {"key": "digest", "value": source.digest}]
    _upsert(conn, _META, meta, _Tally())  # bookkeeping, not catalog content: not counted


def _existing_keys(conn: sqlite3.Connection, table: _Table) -> set[tuple[object, ...]]:
    return {tuple(row) for row in conn.execute(f"SELECT {', '.join(table.keys)} FROM {table.name}")}


def _delete_stale(conn: sqlite3.Connection, table: _Table, rows: Sequence[dict], tally: _Tally) -> None:
    wanted = {tuple(row[key] for key in table.keys) for row in rows}
    where = " AND ".join(f"{key} = ?" for key in table.keys)
    for key in sorted(_existing_keys(conn, table) - wanted, key=repr):
        tally.deleted += conn.execute(f"DELETE FROM {table.name} WHERE {where}", key).rowcount


def _upsert(conn: sqlite3.Connection, table: _Table, rows: Sequence[dict], tally: _Tally) -> None:
    existing = _existing_keys(conn, table)
    sql = table.upsert_sql()
    for row in rows:
        key = tuple(row[column] for column in table.keys)
        changes = conn.execute(sql, [row[column] for column in table.keys + table.values]).rowcount
        if key in existing:
            tally.updated += changes
        else:
            tally.inserted += changes
