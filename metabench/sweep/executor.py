"""The executor interface: Job, Outcome, ProgressUpdate, Executor, and the helpers every executor shares.

An executor performs jobs, each one `metabench run` process (`Job.argv`), and returns one Outcome per
job. Every run records itself: the database row and <results>/runs/<run_id>.json are written by the
`metabench run` process, never by the executor (see metabench.runner). The sweep engine
(metabench.sweep.engine) then ingests the JSON record of any finished run the database lacks, so an
executor whose runs cannot reach the database (a cluster with the database on a network filesystem)
may pass `db=None` and leave the copy to the engine.

Contract of `Executor.execute(jobs, report)`:
- returns one Outcome per job, in the order of `jobs`; a job the executor never started (the sweep
  was stopped first) is "interrupted" with run_id None;
- calls `report` from the thread that called `execute`, with a ProgressUpdate whenever a job's phase
  or step changes and exactly once with phase "ended" (and its Outcome) when it ends;
- a failed run never stops the others; `execute` raises only for a fault of the executor itself;
- SIGINT, SIGTERM or SIGHUP to the sweep process (metabench.interrupts) is a polite stop: start no new job,
  pass SIGTERM on to every running `metabench run` (it finishes its step, checkpoints and records
  itself "interrupted"), wait for them, and return.

An executor module (metabench.sweep.local, metabench.sweep.slurm) exposes
`make_executor(db, results, workers, options) -> Executor` (see ExecutorFactory): `options` is the
sweep file's table named after the executor (`[slurm]`), {} when the file has none.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from metabench.config import RunSpec

STATUSES = ("finished", "failed", "interrupted")
# pending: waiting for a worker or an allocation; starting: the process is up but has not reported yet
# (importing torch, loading data); ended: `outcome` is set.
PHASES = ("pending", "starting", "training", "testing", "ended")


@dataclass(frozen=True)
class Job:
    """One run to perform: `spec` from the beginning, or the interrupted run `resume` from its checkpoint."""

    spec: RunSpec
    resume: str | None  # run id of an interrupted run to continue, else None

    def argv(self, db: Path | None, results: Path) -> list[str]:
        """The `python -m metabench run ...` command line, with --events jsonl on stdout.

        `db` None leaves the database to the child's environment (METABENCH_DB or the default).
        """
        if self.resume is not None:
            what = ["--resume", self.resume]
        else:
            spec, episode = self.spec, self.spec.episode
            what = [
                spec.method,
                "--protocol", spec.protocol,
                "--ways", str(episode.ways),
                "--shots", str(episode.shots),
                "--queries", str(episode.queries),
                "--preset", spec.preset,
                "--seed", str(spec.seed),
                "--device", spec.device,
                *(["--meta-steps", str(spec.meta_steps)] if spec.meta_steps is not None else []),
                *(["--eval-episodes", str(spec.eval_episodes)] if spec.eval_episodes is not None else []),
                *(item for key, value in spec.overrides for item in ("--set", f"{key}={value}")),
            ]  # fmt: skip
        database = ["--db", str(db)] if db is not None else []
        return [sys.executable, "-m", "metabench", "run", *what, "--events", "jsonl", *database,
                "--results", str(results)]  # fmt: skip

    @property
    def label(self) -> str:
        """A short human name, e.g. 'protonet vinyals 5w1s quick seed 0'."""
        spec = self.spec
        return f"{spec.method} {spec.protocol} {spec.episode.label} {spec.preset} seed {spec.seed}"


@dataclass(frozen=True)
class Outcome:
    """How a job ended."""

    job: Job
    status: str  # "finished" | "failed" | "interrupted"
    run_id: str | None  # None when no run was created (refused input, or stopped before it started)
    accuracy: float | None  # finished runs: the test accuracy, a fraction
    error: str | None  # failed runs: one line


@dataclass(frozen=True)
class ProgressUpdate:
    """Where one job stands: its phase, its training step, its test episodes, and how it ended."""

    job: Job
    phase: str  # one of PHASES
    run_id: str | None = None
    step: int | None = None
    total_steps: int | None = None
    episodes_done: int | None = None  # while testing
    episodes: int | None = None
    where: str | None = None  # where it runs, for display: "cuda:0", "cpu (2 threads)", a Slurm job id
    outcome: Outcome | None = None  # set when phase is "ended"


class Executor(Protocol):
    """Performs jobs; see the module docstring for the contract."""

    def execute(self, jobs: Sequence[Job], report: Callable[[ProgressUpdate], None]) -> list[Outcome]: ...


class ExecutorFactory(Protocol):
    """The `make_executor` every executor module exposes."""

    def __call__(
        self, db: Path | None, results: Path, workers: int | None, options: Mapping[str, Any]
    ) -> Executor: ...


class RunWatcher:
    """Folds one `metabench run --events jsonl` stdout into ProgressUpdates and, at the end, its Outcome."""

    def __init__(self, job: Job, where: str | None = None) -> None:
        self.job = job
        self.where = where
        self.run_id: str | None = job.resume
        self.terminal: dict[str, Any] | None = None
        self.started = False

    def feed(self, line: str | bytes) -> ProgressUpdate | None:
        """The update one stdout line means; None for a line that is no event (or no news)."""
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            return None
        kind = event["event"]
        self.run_id = event.get("run_id") or self.run_id
        if kind in STATUSES:
            self.terminal = event
            return None  # the "ended" update comes with the Outcome, once the process has exited
        self.started = True
        testing = kind == "testing"
        # A method with nothing to train (pixels-nn) goes from its start straight to its test.
        untrained = kind == "started" and not event.get("total_steps")
        return ProgressUpdate(
            self.job,
            "testing" if testing or untrained else "training",
            run_id=self.run_id,
            step=event.get("step"),
            total_steps=event.get("total_steps"),
            episodes_done=event.get("episodes_done") if testing else None,
            episodes=event.get("episodes") if testing else event.get("eval_episodes"),
            where=self.where,
        )

    def outcome(self, returncode: int, stderr: str, stopped: bool) -> Outcome:
        """How the job ended, from its last event, else its exit code and the end of its stderr.

        `stopped`: the sweep asked the run to stop, so a process that died without a word (a SIGTERM
        before its signal handlers existed) was interrupted, not failed.
        """
        event = self.terminal
        if event is not None:
            accuracy = event.get("accuracy") if event["event"] == "finished" else None
            error = _one_line(event.get("error")) if event["event"] == "failed" else None
            return Outcome(self.job, event["event"], self.run_id, accuracy, error)
        if stopped:
            return Outcome(self.job, "interrupted", self.run_id, None, None)
        said = [line[len("error: ") :] for line in stderr.splitlines() if line.startswith("error: ")]
        if said:
            error = _one_line(said[-1])
        elif returncode < 0:
            error = f"metabench run was killed by {_signal_name(-returncode)}"
        else:
            last = [line for line in stderr.splitlines() if line.strip()]
            error = f"metabench run exited with code {returncode}" + (
                f": {_one_line(last[-1])}" if last else ""
            )
        return Outcome(self.job, "failed", self.run_id, None, error)

    def ended(self, outcome: Outcome) -> ProgressUpdate:
        """The final update of this job."""
        return ProgressUpdate(self.job, "ended", run_id=outcome.run_id, where=self.where, outcome=outcome)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _one_line(text: object) -> str:
    return " ".join(str(text or "").split()) or "no error message"
