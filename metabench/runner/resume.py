"""Which runs may be continued with --resume, and with which spec."""

from __future__ import annotations

import os
from dataclasses import replace

import sqlite_utils

from metabench.config import RunSpec
from metabench.errors import MetabenchError
from metabench.leaderboard.records import RunRecord
from metabench.leaderboard.store import get_run, run_owner
from metabench.runner.setup import resolve_spec


def resumable_run(db: sqlite_utils.Database, run_id: str) -> RunRecord:
    """The stored run `run_id` if it may be continued; MetabenchError saying why not otherwise."""
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
    if record.status == "running" and owner and owner != os.getpid() and _process_alive(owner):
        raise MetabenchError(f"run {run_id} is still running in process {owner}; stop it before resuming")
    return record


def spec_for_resume(previous: RunRecord, spec: RunSpec | None, device: str | None) -> RunSpec:
    """The stored spec, on `device` when given; a differing `spec` is refused, not silently ignored."""
    stored = previous.spec
    if spec is not None:
        resolved, _, _ = resolve_spec(spec)
        if resolved.spec_hash() != previous.spec_hash:
            raise MetabenchError(
                f"--resume {previous.run_id} continues its own spec; drop the method and options that differ"
            )
        stored = replace(stored, device=spec.device)
    return replace(stored, device=device) if device is not None else stored


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
