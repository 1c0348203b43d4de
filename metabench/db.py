"""Open the SQLite database (foreign keys, WAL, busy timeout) and apply versioned migrations."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from metabench import paths
from metabench.errors import MetabenchError

if TYPE_CHECKING:
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]

BUSY_TIMEOUT_MS = 10_000


def open_database(path: str | os.PathLike[str] | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path` or the default location."""
    # Imported here: sqlite-utils pulls in numpy (~0.15 s), which `metabench tui` must not wait
    # for before its first paint (it only checks the file with `check_database`).
    import sqlite_utils

    return sqlite_utils.Database(connect(path))


def check_database(path: str | os.PathLike[str] | None = None) -> None:
    """Raise a one-line MetabenchError unless the database at `path` opens (created if needed)."""
    connect(path).close()


def connect(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """A configured connection (created if needed) whose migrations table exists."""
    db_path = paths.database_path(path)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetabenchError(
            f"cannot create {db_path.parent}: {exc.strerror}; pass --db PATH to a writable place"
        ) from exc
    if db_path.is_dir():
        raise MetabenchError(f"{db_path} is a folder, not a database file; pass --db PATH to a file")
    try:
        # check_same_thread=False: the TUI reads from worker threads, one connection per worker.
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    except sqlite3.Error as exc:
        raise database_error(exc, db_path) from exc
    try:
        if _configure(conn) is None:
            raise MetabenchError(f"{db_path} could not be opened; pass --db PATH to another file")
        _ensure_migrations_table(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise database_error(exc, db_path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def database_file(db: sqlite_utils.Database) -> Path:
    """The file an open database reads and writes (what error messages should name)."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2])


def database_error(exc: sqlite3.Error, path: str | os.PathLike[str] | None = None) -> MetabenchError:
    """The one-line error, saying what to do, for a SQLite error on the database at `path`.

    Only a file SQLite does not recognise is "not a metabench database": a read-only file or
    folder, a full disk or a long lock leave a good database that works again once fixed.
    """
    db_path = paths.database_path(path)
    # The low byte of an extended code (SQLITE_READONLY_DIRECTORY...) is its primary code.
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_READONLY:
        return MetabenchError(
            f"{db_path} is read-only: check its permissions (and those of its -wal/-shm files "
            "and folder) or pass --db PATH"
        )
    if code == sqlite3.SQLITE_FULL:
        return MetabenchError(f"the disk holding {db_path} is full: free space and retry")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return MetabenchError(
            f"{db_path} has been locked by another process for more than {BUSY_TIMEOUT_MS / 1000:g} s: "
            "retry when it has finished"
        )
    if code == sqlite3.SQLITE_NOTADB:
        return MetabenchError(
            f"{db_path} is not a metabench database ({exc}); pass --db PATH or move the file away"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return MetabenchError(
            f"cannot open {db_path}: check that its folder exists and is writable, or pass --db PATH"
        )
    return MetabenchError(f"database error on {db_path} ({exc}); check the file or pass --db PATH")


def _configure(conn: sqlite3.Connection) -> tuple[str] | None:
    """Busy timeout, foreign keys and WAL; returns the journal mode row.

    Switching a new file to WAL needs an exclusive lock and SQLite answers "database is locked"
    at once, without waiting, when another connection is doing the same (the TUI and a CLI
    command opening a fresh database together): retry until the busy timeout.
    """
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _ensure_migrations_table(conn: sqlite3.Connection) -> None:
    # A no-op, without a write lock, when the table exists: a read-only database still opens.
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " namespace TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (namespace, version))"
    )


def migrate(db: sqlite_utils.Database, namespace: str, migrations: Sequence[Migration]) -> int:
    """Apply the migrations of `namespace` not yet applied, each in its own transaction.

    Each feature (catalog, runs) keeps its own numbered list; a migration is never edited once
    released, only appended, so every database converges on the same schema.
    """
    # A plain read first: nearly every call finds everything applied and returns without the write
    # lock, so reads still work on a read-only database and while another process writes.
    applied = {
        row[0]
        for row in db.execute("SELECT version FROM _migrations WHERE namespace = ?", [namespace]).fetchall()
    }
    count = 0
    for version, migration in enumerate(migrations, start=1):
        if version in applied:
            continue
        # BEGIN IMMEDIATE takes the write lock before we look again, so two processes opening a new
        # database at once cannot both apply the same migration; an explicit transaction also
        # keeps a failed migration from leaving half its tables behind (Python's sqlite3 would
        # autocommit each CREATE). Migrations therefore use plain SQL (db.execute), not
        # sqlite-utils helpers that commit on their own.
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            done = db.execute(
                "SELECT 1 FROM _migrations WHERE namespace = ? AND version = ?", [namespace, version]
            ).fetchone()
            if not done:
                migration(db)
                db.execute("INSERT INTO _migrations (namespace, version) VALUES (?, ?)", [namespace, version])
                count += 1
        except BaseException:
            db.conn.rollback()
            raise
        db.conn.commit()
    return count


def schema_version(db: sqlite_utils.Database, namespace: str) -> int:
    """The highest migration applied for `namespace` (0 when none)."""
    row = db.execute("SELECT MAX(version) FROM _migrations WHERE namespace = ?", [namespace]).fetchone()
    return row[0] or 0
