"""Database access for the TUI's worker threads: a short-lived connection per read, off the UI thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from metabench.db import open_database


@contextmanager
def connect(db_path: Path) -> Iterator[sqlite_utils.Database]:
    """A connection owned by the calling thread, closed when the block ends.

    SQLite connections must not be shared between the worker threads that Textual runs, and a
    fresh connection per query also sees what run subprocesses committed a moment ago.
    """
    db = open_database(db_path)
    try:
        yield db
    finally:
        db.close()
