"""run(spec, sink) -> RunRecord: check the input, start or claim the run, and hand it to a Session."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import sqlite_utils

from metabench import paths
from metabench.config import RunSpec
from metabench.db import database_error, open_database
from metabench.errors import MetabenchError
from metabench.leaderboard.records import RunRecord
from metabench.leaderboard.store import ensure_schema
from metabench.runid import is_run_id
from metabench.runner.checkpoint import checkpoint_path, load_checkpoint
from metabench.runner.events import EventSink, Failed
from metabench.runner.resume import claim_run, release_claim, spec_for_resume
from metabench.runner.session import Session
from metabench.runner.setup import prepare


def run(
    spec: RunSpec | None,
    sink: EventSink,
    db_path: str | os.PathLike[str] | None = None,
    results_dir: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    *,
    data_dir: str | None = None,
    device: str | None = None,
) -> RunRecord:
    """Run `spec` (or continue the run `resume`) to its end and return its record.

    Bad input raises MetabenchError before anything is written (a `failed` event with run_id null
    is emitted first). Once the run exists, it ends with exactly one terminal event and a record
    whose status says how: finished, failed (error set, checkpoint kept) or interrupted (resumable).
    `device` overrides the spec's device, e.g. to resume on another machine.
    """
    try:
        db = open_database(db_path)
        ensure_schema(db)
        results = paths.results_dir(results_dir)
        (results / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error = MetabenchError(f"cannot write results to {results_dir}: {exc.strerror}; pass --results DIR")
        sink.emit(Failed(run_id=_known(resume), error=str(error)))
        raise error from None
    except MetabenchError as exc:
        sink.emit(Failed(run_id=_known(resume), error=str(exc)))
        raise
    try:
        session = _open_session(db, spec, sink, resume, data_dir, device, results)
        return session.execute()
    except sqlite3.Error as exc:  # before the session could record anything
        error = database_error(exc, paths.database_path(db_path))
        sink.emit(Failed(run_id=_known(resume), error=str(error)))
        raise error from None
    finally:
        db.conn.close()


def _known(resume: str | None) -> str | None:
    """The --resume id for a `failed` event only when it is a run id: readers use it as one."""
    return resume if is_run_id(resume) else None


def _open_session(
    db: sqlite_utils.Database,
    spec: RunSpec | None,
    sink: EventSink,
    resume: str | None,
    data_dir: str | None,
    device: str | None,
    results: Path,
) -> Session:
    previous = None
    try:
        # Claimed atomically: a second --resume of the same run is refused here, not after training.
        previous = claim_run(db, resume) if resume is not None else None
        if previous is not None:
            spec = spec_for_resume(previous, spec, device)
        elif spec is None:
            raise MetabenchError("nothing to run: give a method, or --resume RUN_ID")
        elif device is not None:
            spec = replace(spec, device=device)
        prepared = prepare(spec, data_dir, previous.preset_overrides if previous is not None else None)
        checkpoint = None
        if previous is not None:
            if previous.data_digest != prepared.data.data_digest:
                raise MetabenchError(
                    f"the data changed since run {previous.run_id} started (digest {previous.data_digest} "
                    f"now {prepared.data.data_digest}); start a new run"
                )
            checkpoint = load_checkpoint(checkpoint_path(previous.run_id))
    except BaseException as exc:
        if previous is not None:
            release_claim(db, previous)  # refused before it ran: the run stays as it was
        if isinstance(exc, MetabenchError):
            sink.emit(Failed(run_id=_known(resume), error=str(exc)))
        raise
    return Session(db, prepared, sink, results, previous, checkpoint)
