"""What the database knows of earlier attempts at a spec: its recorded runs, and the sweeps' failure log.

A run refused before it existed (data that cannot hold the shape, a method that will not build, a
resume whose checkpoint is damaged) leaves no row in `runs`; the sweep that saw it fail notes it in
`sweep_failures`, so the next invocation skips it unless told to retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlite_utils

from metabench.config import RunSpec
from metabench.db import migrate
from metabench.leaderboard.store import ensure_schema
from metabench.process import process_alive

NAMESPACE = "sweep"


def _create_failures(db: sqlite_utils.Database) -> None:
    # Plain SQL: migrate() runs each migration in one transaction.
    db.execute(
        """CREATE TABLE sweep_failures (
            spec_hash TEXT PRIMARY KEY,
            spec_json TEXT NOT NULL,
            run_id TEXT,
            error TEXT NOT NULL,
            failed_at TEXT NOT NULL
        )"""
    )


MIGRATIONS = [_create_failures]


@dataclass(frozen=True)
class Attempt:
    """The attempt that decides what a sweep does with a spec."""

    status: str  # finished | failed | interrupted | running (a live process has it)
    run_id: str | None  # None: a failure before the run existed
    at: str  # when: a run's creation, a failure's end (UTC, ISO 8601, as the runner writes it)
    error: str | None = None


def ensure_tables(db: sqlite_utils.Database) -> None:
    """Create or upgrade the runs tables and the failure log (cheap when up to date)."""
    ensure_schema(db)
    migrate(db, NAMESPACE, MIGRATIONS)


def deciding_attempts(db: sqlite_utils.Database) -> dict[str, Attempt]:
    """{spec_hash: a finished run of it if there is one, else its latest attempt}.

    A run left "running" by a process that is gone (killed outright) counts as interrupted: `metabench
    run --resume` takes it over. On a tie in time a logged failure wins: it is written when an attempt
    ends, a run's time is when it began.
    """
    ensure_tables(db)
    deciding: dict[str, Attempt] = {}
    rows = db.execute(
        "SELECT spec_hash, status, run_id, created_at, error, owner_pid FROM runs ORDER BY created_at, run_id"
    ).fetchall()
    for spec_hash, status, run_id, created_at, error, owner in rows:
        if status == "running" and not process_alive(owner):
            status = "interrupted"
        attempt = Attempt(status, run_id, created_at, error)
        _offer(deciding, spec_hash, attempt)
    for spec_hash, run_id, error, failed_at in db.execute(
        "SELECT spec_hash, run_id, error, failed_at FROM sweep_failures"
    ).fetchall():
        _offer(deciding, spec_hash, Attempt("failed", run_id, failed_at, error), ties_win=True)
    return deciding


def _offer(deciding: dict[str, Attempt], spec_hash: str, attempt: Attempt, ties_win: bool = False) -> None:
    held = deciding.get(spec_hash)
    if held is None or (held.status != "finished" and attempt.status == "finished"):
        deciding[spec_hash] = attempt
    elif held.status != "finished" and (attempt.at > held.at or (ties_win and attempt.at == held.at)):
        deciding[spec_hash] = attempt


def log_failure(
    db: sqlite_utils.Database, spec_hash: str, spec: RunSpec, run_id: str | None, error: str
) -> None:
    """Note that the latest attempt at `spec` (recorded under `spec_hash`) failed with `error`."""
    ensure_tables(db)
    with db.conn:
        db.conn.execute(
            "INSERT OR REPLACE INTO sweep_failures (spec_hash, spec_json, run_id, error, failed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [spec_hash, json.dumps(spec.to_dict(), sort_keys=True), run_id, error, utc_now()],
        )


def utc_now() -> str:
    """Now, in the format of the runs' created_at (so the two compare as strings)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
