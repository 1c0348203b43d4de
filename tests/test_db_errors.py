"""A read-only, locked, full or unreachable database: reads go on, the rest is one line saying what to do."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metabench import catalog
from metabench import db as dbmod
from metabench.cli.app import app
from metabench.leaderboard.store import ensure_schema

# `runs rm` of any well-formed id takes the write lock and deletes: a write whether or not it exists.
RUN_ID = "protonet-vinyals-5w1s-20260101T100000-ab12"


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make `path` (a file or a folder) really unwritable to this process, then restore it.

    chmod is enough for an ordinary user; root ignores permissions, so as root the path is made
    immutable instead (chattr +i), which refuses root's writes with EPERM. SQLite opens a file it
    cannot open for writing read-only, whatever the errno, so both are what a user meets on a file
    they may not write. The access() check keeps the test from passing on a path still writable.
    """
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    immutable = False
    if os.access(path, os.W_OK) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        if os.access(path, os.W_OK):
            pytest.skip("cannot make a file unwritable here (root without chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def dump(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    """A database with the catalog and the runs tables, closed (its -wal and -shm files gone)."""
    path = tmp_path / "metabench.db"
    database = dbmod.open_database(path)
    catalog.ensure_catalog(database)
    ensure_schema(database)
    database.conn.close()
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "not a metabench database" not in result.stderr


@pytest.mark.parametrize("which", ["database file", "-shm file"])
def test_a_read_only_database_serves_reads_and_refuses_writes_in_one_line(db_path: Path, which: str) -> None:
    before = dump(db_path)
    # The -shm file lasts while a connection is open or after a crash: here a process that died with
    # the database open. (Not a connection of this process: SQLite would share its writable mapping.)
    code = "import os, sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('SELECT 1 FROM runs'); os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(db_path)], check=True)
    with unwritable(db_path if which == "database file" else Path(f"{db_path}-shm")):
        for read in (["runs", "list"], ["leaderboard"], ["catalog", "show", "finn2017model"]):
            result = invoke(*read, "--db", str(db_path))
            assert result.exit_code == 0, result.output
        assert "Model-Agnostic Meta-Learning" in result.stdout
        removed = invoke("runs", "rm", RUN_ID, "--db", str(db_path))
        assert_one_line_error(removed, f"{db_path} is read-only: check its permissions", "--db PATH")
    assert dump(db_path) == before


def test_a_read_only_folder_is_not_reported_as_a_bad_database(db_path: Path) -> None:
    # Without its folder SQLite cannot create the -wal file a WAL database needs even to be read. It
    # says SQLITE_READONLY_DIRECTORY when permissions refuse (EACCES), SQLITE_CANTOPEN when the folder
    # is immutable (EPERM, as root): either way the message points at the folder.
    with unwritable(db_path.parent):
        result = invoke("runs", "list", "--db", str(db_path))
    assert_one_line_error(result, str(db_path), "folder", "--db PATH")


def test_a_new_database_in_a_read_only_folder_is_not_reported_as_a_bad_database(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    with unwritable(folder):
        result = invoke("runs", "list", "--db", str(folder / "metabench.db"))
    assert_one_line_error(result, f"cannot open {folder / 'metabench.db'}", "writable")
    assert list(folder.iterdir()) == []


def test_a_held_write_lock_lets_readers_through_and_writers_fail_in_one_line(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 100)
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    writer.execute("UPDATE runs SET device_name = 'busy'")
    try:
        for read in (["runs", "list"], ["catalog", "show", "finn2017model"]):
            result = invoke(*read, "--db", str(db_path))
            assert result.exit_code == 0, result.output
        removed = invoke("runs", "rm", RUN_ID, "--db", str(db_path))
        assert_one_line_error(removed, "locked by another process for more than 0.1 s", "retry")
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # max_page_count caps the file at its current size: SQLite then answers SQLITE_FULL, "database
    # or disk is full", the same error code and message a write on a full disk (ENOSPC) gets.
    path = tmp_path / "full.db"
    connect = dbmod.connect

    def capped(db_path=None):
        conn = connect(db_path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(dbmod, "connect", capped)
    result = invoke("leaderboard", "--db", str(path))  # creates the runs tables: the file must grow
    assert_one_line_error(result, f"the disk holding {path} is full: free space and retry")
    monkeypatch.undo()
    assert invoke("leaderboard", "--db", str(path)).exit_code == 0
