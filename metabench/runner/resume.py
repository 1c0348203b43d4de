"""Which runs may be continued with --resume, claimed by one process at a time, and with which spec."""

from __future__ import annotations

import os
from dataclasses import replace

import sqlite_utils

from metabench.config import RunSpec
from metabench.errors import MetabenchError
from metabench.leaderboard.records import RunRecord
from metabench.leaderboard.store import get_run, run_owner
from metabench.process import process_alive
from metabench.runid import check_run_id
from metabench.spec_rules import resolve_spec


def claim_run(db: sqlite_utils.Database, run_id: str) -> RunRecord:
    """Take the stored run `run_id` for this process if it may be continued; MetabenchError saying why not.

    The claim is a compare-and-set under SQLite's write lock, so of two `--resume` of one run started
    together exactly one goes ahead and the other is told the run is taken.
    """
    try:
        check_run_id(run_id)
    except ValueError as exc:
        raise MetabenchError(f"--resume: {exc}") from None
    record = get_run(db, run_id)
    if record is None:
        raise MetabenchError(f"no run {run_id!r} in the database; see `metabench runs list`")
    if record.status == "finished":
        raise MetabenchError(f"run {run_id} already finished; start a new run to train again")
    if record.status == "failed":
        raise MetabenchError(
            f"run {run_id} failed ({record.error}); failed runs do not resume, start a new run"
        )
    owner = run_owner(db, run_id)
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        status, current_owner = db.conn.execute(
            "SELECT status, owner_pid FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if (status, current_owner) != (record.status, owner):
            raise MetabenchError(f"run {run_id} was just taken by another process; see `metabench runs list`")
        if status == "running" and owner and owner != os.getpid() and process_alive(owner):
            raise MetabenchError(f"run {run_id} is still running in process {owner}; stop it before resuming")
        db.conn.execute(
            "UPDATE runs SET status = 'running', owner_pid = ? WHERE run_id = ?", [os.getpid(), run_id]
        )
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
    return record


def release_claim(db: sqlite_utils.Database, previous: RunRecord) -> None:
    """Give back a run claimed by `claim_run` that did not start (its data or checkpoint was refused)."""
    with db.conn:
        db.conn.execute(
            "UPDATE runs SET status = ?, owner_pid = NULL WHERE run_id = ? AND owner_pid = ?",
            [previous.status, previous.run_id, os.getpid()],
        )


def spec_for_resume(previous: RunRecord, spec: RunSpec | None, device: str | None) -> RunSpec:
    """The stored spec, on `device` when given; a differing `spec` is refused, not silently ignored."""
    stored = previous.spec
    if spec is not None:
        resolved = resolve_spec(spec).spec
        if resolved.spec_hash() != previous.spec_hash:
            raise MetabenchError(
                f"--resume {previous.run_id} continues its own spec; drop the method and options that differ"
            )
        stored = replace(stored, device=spec.device)
    return replace(stored, device=device) if device is not None else stored
