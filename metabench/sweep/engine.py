"""Run a sweep's plan through an executor: log each failure, see every finished run into the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from metabench.leaderboard.portable import read_record_file, record_path
from metabench.leaderboard.store import save_record
from metabench.sweep.attempts import log_failure
from metabench.sweep.executor import Executor, Outcome, ProgressUpdate
from metabench.sweep.plan import Plan, PlannedRun, recorded_hash


@dataclass(frozen=True)
class SweepResult:
    """What one invocation of a sweep did."""

    outcomes: tuple[Outcome, ...]  # one per job executed, in order
    skipped: tuple[PlannedRun, ...]  # done, running elsewhere, or failed and not retried
    warnings: tuple[str, ...] = ()

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def interrupted(self) -> bool:
        """The sweep was stopped before every job ended."""
        return any(outcome.status == "interrupted" for outcome in self.outcomes)


def run_sweep(
    plan: Plan,
    executor: Executor,
    db: sqlite_utils.Database,
    results: Path,
    report: Callable[[ProgressUpdate], None],
    retry_failed: bool = False,
) -> SweepResult:
    """Execute the plan's jobs; each failure is logged as it happens, so a killed sweep keeps what it saw."""
    logged: set[Outcome] = set()

    def note(update: ProgressUpdate) -> None:
        outcome = update.outcome
        if outcome is not None and outcome.status == "failed":
            _log(db, outcome)
            logged.add(outcome)
        report(update)

    outcomes = executor.execute(plan.jobs(retry_failed), note)
    warnings = []
    for outcome in outcomes:
        if outcome.status == "failed" and outcome not in logged:
            _log(db, outcome)
        if outcome.status == "finished" and outcome.run_id is not None:
            warning = _ensure_recorded(db, results, outcome.run_id)
            if warning:
                warnings.append(warning)
    return SweepResult(tuple(outcomes), tuple(plan.skipped(retry_failed)), tuple(warnings))


def _log(db: sqlite_utils.Database, outcome: Outcome) -> None:
    spec = outcome.job.spec
    log_failure(db, recorded_hash(spec), spec, outcome.run_id, outcome.error or "failed without a message")


def _ensure_recorded(db: sqlite_utils.Database, results: Path, run_id: str) -> str | None:
    """Load a finished run's JSON record when the database lacks it (its run wrote another database)."""
    row = db.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is not None and row[0] == "finished":
        return None
    path = record_path(results, run_id)
    try:
        save_record(db, read_record_file(path))
    except ValueError as exc:
        return (
            f"run {run_id} finished but {path} could not be loaded ({exc}); "
            f"load it with `metabench runs ingest`"
        )
    return None
