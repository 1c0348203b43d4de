"""One sweep at a time per database: an advisory lock on a file beside it, freed when the sweep ends or dies.

Two sweeps planning against one database would both start every run neither has recorded yet, and
the board would count those runs twice. The lock is the kernel's (flock), so a sweep that is killed,
even with SIGKILL, leaves no stale lock behind. Where the platform has no flock (Windows) sweeps are
not locked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metabench.errors import MetabenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(db_path: Path) -> Path:
    """The lock file of the database at `db_path`: beside it, so every sweep on that database finds it."""
    return db_path.with_name(db_path.name + ".sweep-lock")


@contextmanager
def sweep_lock(db_path: Path) -> Iterator[None]:
    """Hold the database's sweep lock while the block runs; refuse at once if another sweep holds it."""
    if fcntl is None:
        yield
        return
    path = lock_path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise MetabenchError(
            f"cannot open the sweep lock {path} ({exc.strerror or exc}); "
            "give the sweep a --db in a folder you can write"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = " ".join(handle.read().split()) or "a process"
            raise MetabenchError(
                f"another sweep ({holder}) is running on {db_path}; wait for it to end, "
                "or give this sweep its own --db"
            ) from None
        try:
            # Who holds it, for the message a second sweep prints; only the holder writes here.
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
