"""Following a submitted Slurm array to its outcomes: job states from squeue, outcome files from the
shared folder, progress from the runs' events, requeues waited out, records loaded into the database."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from metabench.errors import MetabenchError
from metabench.sweep.executor import Outcome, ProgressUpdate, RunWatcher
from metabench.sweep.slurm_folder import Layout, one_line
from metabench.sweep.slurm_task import SlurmTask

if TYPE_CHECKING:
    from metabench.sweep.slurm import SlurmExecutor

# Slurm states after which a job never runs again; a requeued job goes back to PENDING instead.
_ENDED_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
# A job's files written on a node can take a few seconds to show on the submitter's network filesystem.
_FILE_GRACE_S = 30.0
_REQUEUE_GRACE_S = 3.0


class StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def set(self, signum: int) -> None:
        self.requested = True


class Collector:
    """The submitter's loop: follows each job's events and state until every job has ended."""

    def __init__(
        self,
        executor: SlurmExecutor,
        layout: Layout,
        tasks: list[SlurmTask],
        handles: list[Any],
        report: Callable[[ProgressUpdate], None],
        stop: StopFlag,
    ) -> None:
        self.x = executor
        self.layout = layout
        self.tasks = tasks
        self.handles = handles
        self.report = report
        self.stop = stop
        self.cancelled = False
        self.watchers = [
            RunWatcher(t.job, where=f"{executor.cluster} {h.job_id}")
            for t, h in zip(tasks, handles, strict=True)
        ]
        self.offsets = [0] * len(tasks)
        self.partial = [b""] * len(tasks)
        self.last: list[tuple[Any, ...] | None] = [None] * len(tasks)
        self.ended_at: list[float | None] = [None] * len(tasks)
        self.outcomes: list[Outcome | None] = [None] * len(tasks)
        self.database: Any = None

    def run(self) -> list[Outcome]:
        try:
            while any(outcome is None for outcome in self.outcomes):
                if self.stop.requested and not self.cancelled:
                    self._cancel()
                states = self._states()
                for index in range(len(self.tasks)):
                    if self.outcomes[index] is None:
                        self._follow(index, states)
                if any(outcome is None for outcome in self.outcomes):
                    time.sleep(self.x.poll_s)
        finally:
            if self.database is not None:
                self.database.conn.close()
        return [outcome for outcome in self.outcomes if outcome is not None]

    def _states(self) -> dict[str, str] | None:
        """{job id: Slurm state} of our jobs (None when squeue did not answer); local: RUNNING or ENDED."""
        if self.x.cluster == "local":
            return {str(h.job_id): "ENDED" if h.done() else "RUNNING" for h in self.handles}
        arrays = sorted({str(h.job_id).split("_")[0] for h in self.handles})
        try:
            result = subprocess.run(
                ["squeue", "-h", "-r", "--states=all", "-o", "%i|%T", "-j", ",".join(arrays)],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0:
            # Once every job is past MinJobAge, squeue forgets the ids and says so: they all ended.
            return {} if "Invalid job id" in result.stderr else None
        states = {}
        for line in result.stdout.splitlines():
            job_id, _, state = line.strip().partition("|")
            states[job_id] = state.split()[0] if state else ""
        return states

    def _follow(self, index: int, states: dict[str, str] | None) -> None:
        task, handle, watcher = self.tasks[index], self.handles[index], self.watchers[index]
        for line in self._new_lines(index):
            update = watcher.feed(line)
            if update is not None:
                self._report(index, update)
        outcome = self._read_outcome(index)
        if outcome is not None and outcome.status != "interrupted":
            # Finished or failed: no attempt follows, so the job's last seconds in Slurm need no wait.
            self._end(index, outcome)
            return
        if states is None:
            return
        state = states.get(str(handle.job_id))
        if state == "RUNNING" and not watcher.started:
            self._report(
                index, ProgressUpdate(task.job, "starting", run_id=watcher.run_id, where=watcher.where)
            )
        if state is not None and state not in _ENDED_STATES and state != "ENDED":
            self.ended_at[index] = None
            return
        # The job has ended (or squeue no longer lists it): its outcome file says how.
        now = time.monotonic()
        if self.ended_at[index] is None:
            self.ended_at[index] = now
        waited = now - self.ended_at[index]
        if outcome is None and waited < (_FILE_GRACE_S if state != "CANCELLED" else 2.0):
            return
        requeuable = outcome is not None and outcome.status == "interrupted" and not self.cancelled
        if requeuable and waited < _REQUEUE_GRACE_S:
            return  # a preempted job can show as ended for a moment before Slurm requeues it
        self._end(index, outcome if outcome is not None else self._lost(index, state))

    def _end(self, index: int, outcome: Outcome) -> None:
        outcome = self._ingest(outcome)
        for line in self._new_lines(index):  # the last events, written just before the job ended
            self.watchers[index].feed(line)
        self.outcomes[index] = outcome
        self.report(self.watchers[index].ended(outcome))

    def _report(self, index: int, update: ProgressUpdate) -> None:
        # Progress events come ~10 a second: pass on only what changed.
        signature = (update.phase, update.run_id, update.step, update.total_steps, update.episodes_done)
        if signature != self.last[index]:
            self.last[index] = signature
            self.report(update)

    def _new_lines(self, index: int) -> Iterator[bytes]:
        path = self.layout.events(self.tasks[index].key)
        try:
            with path.open("rb") as file:
                file.seek(self.offsets[index])
                chunk = file.read()
        except FileNotFoundError:
            return
        self.offsets[index] += len(chunk)
        *lines, self.partial[index] = (self.partial[index] + chunk).split(b"\n")
        yield from lines

    def _read_outcome(self, index: int) -> Outcome | None:
        task = self.tasks[index]
        try:
            data = json.loads(self.layout.outcome(task.key).read_text())
        except (OSError, ValueError):
            return None
        if data.get("token") != task.token:  # a leftover of another sweep
            return None
        return Outcome(task.job, data["status"], data.get("run_id"), data.get("accuracy"), data.get("error"))

    def _lost(self, index: int, state: str | None) -> Outcome:
        """The outcome of a job that ended without writing one: cancelled before it ran, or killed."""
        task, handle, watcher = self.tasks[index], self.handles[index], self.watchers[index]
        if self.cancelled:
            return Outcome(task.job, "interrupted", watcher.run_id, None, None)
        how = f"ended {state}" if state else "left the queue"
        return Outcome(
            task.job,
            "failed",
            watcher.run_id,
            None,
            f"Slurm job {handle.job_id} {how} without a result; see {self.layout.submitit} and "
            f"{self.layout.log(task.key)}",
        )

    def _ingest(self, outcome: Outcome) -> Outcome:
        """Copy the job's record into the sweep's database (and results folder): the only writer of both."""
        if outcome.run_id is None:
            return outcome
        finished = outcome.status == "finished"
        root = self.layout.records if finished else self.layout.unfinished
        path = root / "runs" / f"{outcome.run_id}.json"
        from metabench.leaderboard.portable import read_record_file, write_record_file
        from metabench.leaderboard.store import save_record

        try:
            record = read_record_file(path)
            if finished:  # the sweep engine loads it from there if the database below refuses it
                write_record_file(record, self.x.results)
            if self.database is None:
                from metabench.db import open_database

                self.database = open_database(self.x.db)
            save_record(self.database, record)
        except (sqlite3.Error, MetabenchError):
            return outcome  # busy or locked: the record files stay, and the engine retries finished runs
        except (ValueError, OSError) as exc:
            if not finished:  # the database only misses a resumable row; the outcome stands
                return outcome
            return replace(
                outcome,
                status="failed",
                accuracy=None,
                error=f"run {outcome.run_id} finished but its record {path} could not be loaded "
                f"({one_line(exc)}); load it with: metabench runs ingest {root}",
            )
        return outcome

    def _cancel(self) -> None:
        """The polite stop: pending jobs never start, running ones checkpoint and end "interrupted"."""
        self.cancelled = True
        if self.x.cluster == "local":
            for handle in self.handles:
                process = getattr(handle, "_process", None)
                if process is not None and process.poll() is None:
                    # The job's controller passes SIGTERM on to the job, which passes it on to its run.
                    process.send_signal(signal.SIGTERM)
            return
        arrays = sorted({str(h.job_id).split("_")[0] for h in self.handles})
        subprocess.run(["scancel", *arrays], capture_output=True, timeout=60, check=False)
