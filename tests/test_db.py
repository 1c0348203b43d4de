"""The database opens with the promised pragmas, migrates once, and refuses non-databases clearly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from metabench import db as dbmod
from metabench.errors import MetabenchError


def test_pragmas_and_idempotent_migrations(tmp_path: Path) -> None:
    created = []

    def first(db):
        db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
        created.append(1)

    def second(db):
        db.execute("ALTER TABLE things ADD COLUMN size INTEGER")
        created.append(2)

    db = dbmod.open_database(tmp_path / "x.db")
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == dbmod.BUSY_TIMEOUT_MS
    assert dbmod.migrate(db, "demo", [first]) == 1
    assert dbmod.migrate(db, "demo", [first, second]) == 1
    assert dbmod.migrate(db, "demo", [first, second]) == 0
    assert created == [1, 2]
    assert dbmod.schema_version(db, "demo") == 2
    assert {c.name for c in db["things"].columns} == {"id", "name", "size"}


def test_failed_migration_leaves_no_trace(tmp_path: Path) -> None:
    def broken(db):
        db.execute("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("boom")

    db = dbmod.open_database(tmp_path / "x.db")
    with pytest.raises(RuntimeError, match="boom"):
        dbmod.migrate(db, "demo", [broken])
    assert dbmod.schema_version(db, "demo") == 0
    assert "half" not in db.table_names()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"this is a text file, not SQLite" * 100)
    with pytest.raises(MetabenchError, match="not a metabench database"):
        dbmod.open_database(bogus)


def test_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metabench import paths

    monkeypatch.setenv("METABENCH_DB", str(tmp_path / "env.db"))
    assert paths.database_path() == tmp_path / "env.db"
    assert paths.database_path(tmp_path / "flag.db") == tmp_path / "flag.db"
    monkeypatch.delenv("METABENCH_DB")
    monkeypatch.setenv("METABENCH_HOME", str(tmp_path / "home"))
    assert paths.database_path() == tmp_path / "home" / "metabench.db"


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    import threading

    def create(db):
        db.execute("CREATE TABLE shared (id INTEGER PRIMARY KEY)")

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            dbmod.migrate(dbmod.open_database(tmp_path / "race.db"), "race", [create])
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert dbmod.schema_version(dbmod.open_database(tmp_path / "race.db"), "race") == 1


def test_many_rounds_of_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL answers "database is locked" at once to a second connection doing
    # the same; before the retry this failed about one round in fifteen.
    import threading

    errors: list[BaseException] = []

    def opener(path: Path) -> None:
        try:
            dbmod.open_database(path).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    for round_number in range(60):
        path = tmp_path / f"fresh-{round_number}.db"
        threads = [threading.Thread(target=opener, args=(path,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_a_directory_is_not_reported_as_locked(tmp_path: Path) -> None:
    with pytest.raises(MetabenchError, match="is a folder, not a database file; pass --db PATH to a file"):
        dbmod.open_database(tmp_path)


def create_things(db) -> None:
    db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")


def test_a_current_schema_is_checked_without_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "x.db"
    dbmod.migrate(dbmod.open_database(path), "demo", [create_things])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        db = dbmod.open_database(path)
        # Before, this took the write lock and failed after the busy timeout, as a read command did.
        assert dbmod.migrate(db, "demo", [create_things]) == 0
        # A missing migration does need the lock, and says so once the busy timeout has passed.
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as raised:
            dbmod.migrate(db, "demo", [create_things, create_things])
        assert dbmod.schema_version(db, "demo") == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert str(dbmod.database_error(raised.value, path)) == (
        f"{path} has been locked by another process for more than 0.1 s: retry when it has finished"
    )


def sqlite_failure(tmp_path: Path, kind: str) -> sqlite3.Error:
    """A real error from SQLite of each kind database_error tells apart."""
    path = tmp_path / "x.db"
    dbmod.open_database(path).conn.close()
    if kind == "not sqlite":
        path.write_bytes(b"plain text, not SQLite " * 200)
    conn = sqlite3.connect(f"file:{path}?mode=ro" if kind == "read-only" else path, uri=True, timeout=0)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        if kind == "full":
            conn.execute("PRAGMA max_page_count = 1")  # the file may not grow: as on a full disk
        if kind == "locked":
            holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.Error, match="readonly|full|locked|not a database") as raised:
            conn.execute("CREATE TABLE t (x)")
        return raised.value
    finally:
        conn.close()
        holder.close()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("read-only", "{path} is read-only: check its permissions (and those of its -wal/-shm files and "
         "folder) or pass --db PATH"),
        ("full", "the disk holding {path} is full: free space and retry"),
        ("locked", "{path} has been locked by another process for more than 10 s: retry when it has "
         "finished"),
        ("not sqlite", "{path} is not a metabench database (file is not a database); pass --db PATH or move "
         "the file away"),
    ],
    ids=["read-only", "full", "locked", "not sqlite"],
)  # fmt: skip
def test_database_error_says_what_to_do(tmp_path: Path, kind: str, message: str) -> None:
    error = dbmod.database_error(sqlite_failure(tmp_path, kind), tmp_path / "x.db")
    assert str(error) == message.format(path=tmp_path / "x.db")


def test_a_missing_folder_is_not_a_bad_database(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file") as raised:
        sqlite3.connect(tmp_path / "missing" / "x.db")
    assert str(dbmod.database_error(raised.value, tmp_path / "missing" / "x.db")) == (
        f"cannot open {tmp_path / 'missing' / 'x.db'}: check that its folder exists and is writable, "
        "or pass --db PATH"
    )
