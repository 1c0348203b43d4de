"""A sweep's plan: its runs in a stable order, each marked new, done, failed, interrupted or running.

A planned run is `done` when the database holds a finished run of the same resolved spec (the spec
hash a run records: its budget filled in from the preset), so running a sweep again resumes it:
`interrupted` runs continue from their checkpoint (`metabench run --resume`), `failed` ones (their
latest attempt failed) are skipped unless retried, and `running` ones belong to a live process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import sqlite_utils

from metabench.config import FIXED_TEST_SHAPES, RunSpec
from metabench.data.sources import OMNIGLOT
from metabench.errors import MetabenchError
from metabench.spec_rules import resolve_spec
from metabench.sweep.attempts import deciding_attempts
from metabench.sweep.executor import Job
from metabench.sweep.sweep_file import Sweep

STATES = ("new", "done", "failed", "interrupted", "running")


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep and what the database says of it."""

    spec: RunSpec  # as the sweep file asks for it (a budget of None is the preset's)
    spec_hash: str  # what a run of it records (metabench.leaderboard.records.RunRecord.spec_hash)
    state: str  # one of STATES
    run_id: str | None = None  # the run that decides the state (None when new, or refused before it existed)
    error: str | None = None  # failed: the latest attempt's error

    def job(self, retry_failed: bool = False) -> Job | None:
        """What to do for it: None when it is skipped (done, running elsewhere, failed and not retried)."""
        if self.state == "new" or (self.state == "failed" and retry_failed):
            return Job(self.spec, None)
        if self.state == "interrupted":
            return Job(self.spec, self.run_id)
        return None


@dataclass(frozen=True)
class Plan:
    """The runs of a sweep, deduplicated, in the sweep file's order."""

    sweep: Sweep
    runs: tuple[PlannedRun, ...]

    def jobs(self, retry_failed: bool = False) -> list[Job]:
        """The jobs to execute, in order."""
        return [job for run in self.runs if (job := run.job(retry_failed)) is not None]

    def skipped(self, retry_failed: bool = False) -> list[PlannedRun]:
        """The runs left alone."""
        return [run for run in self.runs if run.job(retry_failed) is None]


def plan_sweep(sweep: Sweep, db: sqlite_utils.Database) -> Plan:
    """Every run of `sweep` once (two grids may share one), with its state in the database `db`."""
    attempts = deciding_attempts(db)
    runs: dict[str, PlannedRun] = {}
    for spec in sweep.specs():
        spec_hash = recorded_hash(spec)
        if spec_hash in runs:
            continue
        attempt = attempts.get(spec_hash)
        if attempt is None:
            runs[spec_hash] = PlannedRun(spec, spec_hash, "new")
        else:
            state = {"finished": "done"}.get(attempt.status, attempt.status)
            error = attempt.error if state == "failed" else None
            runs[spec_hash] = PlannedRun(spec, spec_hash, state, attempt.run_id, error)
    return Plan(sweep, tuple(runs.values()))


@cache
def recorded_hash(spec: RunSpec) -> str:
    """The spec_hash a run of `spec` records: its budget resolved from the preset (and, on a protocol with
    a fixed test set, its test episodes capped to that set, as metabench.runner.setup does with the data).
    """
    try:
        resolved = resolve_spec(spec).spec
    except MetabenchError as exc:  # the sweep file was checked: only a broken method card gets here
        raise ValueError(f"{spec.method}: {exc}") from None
    if resolved.protocol in FIXED_TEST_SHAPES and resolved.eval_episodes is not None:
        # Lake's runs are a fixed set of tasks: a run tests on them all, however many the preset asks for.
        resolved = replace(resolved, eval_episodes=min(resolved.eval_episodes, OMNIGLOT.runs.runs))
    return resolved.spec_hash()
