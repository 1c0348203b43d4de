"""`--executor slurm`: a sweep's jobs as one Slurm job array (submitit); records return via a shared folder.

Every job runs `metabench run` (Job.argv) on a compute node with its own database in the shared folder
and writes its portable record there; only the submitting process writes the sweep's database, as each
job ends. A job that is preempted, requeued or reaches its time limit is stopped politely (the run
checkpoints and records itself "interrupted") and, when Slurm or submitit requeues it, its next attempt
resumes that run from the checkpoint.

The shared folder (`folder`, visible from the submitter and every node):

    records/runs/<run_id>.json     finished runs, as `metabench run --results` writes them; if the
                                   submitter died, `metabench runs ingest FOLDER/records` loads them
    unfinished/runs/<run_id>.json  interrupted and failed runs (so a later sweep can resume them)
    db/<key>.db                    one database per job key (method and spec hash): written by the job
    events/<key>.jsonl, logs/<key>.log   the run's events (stdout) and its stderr, all attempts
    outcomes/<key>.json            how the job's last attempt ended, written by the job
    submitit/                      submitit's pickles and the Slurm jobs' own logs

Checkpoints stay under METABENCH_HOME (the jobs inherit the submitter's environment), so on a cluster
of several nodes METABENCH_HOME must be on shared storage too, as home folders usually are.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from metabench import atomic, paths
from metabench.errors import MetabenchError
from metabench.sweep.executor import Job, Outcome, ProgressUpdate, RunWatcher, stop_signals

CLUSTERS = ("slurm", "local")  # local: submitit's LocalExecutor, processes on this machine (the tests)
# The keys of a sweep file's [slurm] table (and the CLI options that fill it), with their defaults.
DEFAULTS: dict[str, Any] = {
    "folder": None,  # the shared folder; None: <METABENCH_HOME>/slurm
    "partition": None,  # None: the cluster's default partition
    "time_min": 60,  # time limit of one job, minutes
    "gpus_per_job": 0,
    "cpus_per_job": 1,
    "array_parallelism": None,  # most jobs of the array at once; None: the sweep's --workers, else 64
    "cluster": "slurm",
}
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
_MAX_TIMEOUTS = 20
_NO_SUBMITIT = "submitit is not installed; install the extra: pip install 'metabench[slurm]'"


def make_executor(
    db: Path | None, results: Path, workers: int | None, options: Mapping[str, Any]
) -> SlurmExecutor:
    """The Slurm executor from a sweep file's [slurm] table (see DEFAULTS); MetabenchError for a bad value."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise MetabenchError(f"unknown [slurm] option {unknown[0]!r}; choose from {', '.join(DEFAULTS)}")
    values = {**DEFAULTS, **options}
    folder = values["folder"]
    if folder is not None and not isinstance(folder, str | os.PathLike):
        raise MetabenchError(f"slurm folder must be a path, got {folder!r}")
    parallelism = values["array_parallelism"] if values["array_parallelism"] is not None else workers or 64
    return SlurmExecutor(
        Path(folder).expanduser() if folder is not None else paths.home() / "slurm",
        db,
        results,
        partition=values["partition"],
        time_min=values["time_min"],
        gpus_per_job=values["gpus_per_job"],
        cpus_per_job=values["cpus_per_job"],
        array_parallelism=parallelism,
        cluster=values["cluster"],
    )


class SlurmExecutor:
    """Runs jobs as one submitit job array (Slurm, or local processes) and collects their records."""

    def __init__(
        self,
        folder: Path,
        db: Path | None,
        results: Path,
        *,
        partition: str | None = None,
        time_min: int = 60,
        gpus_per_job: int = 0,
        cpus_per_job: int = 1,
        array_parallelism: int = 64,
        cluster: str = "slurm",
        poll_s: float = 1.0,
    ) -> None:
        for name, value, minimum in (
            ("time_min", time_min, 1),
            ("gpus_per_job", gpus_per_job, 0),
            ("cpus_per_job", cpus_per_job, 1),
            ("array_parallelism", array_parallelism, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise MetabenchError(f"slurm {name} must be a whole number >= {minimum}, got {value!r}")
        if partition is not None and (not isinstance(partition, str) or not partition.strip()):
            raise MetabenchError(f"slurm partition must be a partition name, got {partition!r}")
        if cluster not in CLUSTERS:
            raise MetabenchError(f"slurm cluster must be one of {', '.join(CLUSTERS)}, got {cluster!r}")
        self.folder = Path(folder)
        self.db = db
        self.results = Path(results)
        self.partition = partition
        self.time_min = time_min
        self.gpus_per_job = gpus_per_job
        self.cpus_per_job = cpus_per_job
        self.array_parallelism = array_parallelism
        self.cluster = cluster
        self.poll_s = poll_s
        # Slurm job id ("123_4") of each job key once submitted: tests and tools requeue or inspect them.
        self.job_ids: dict[str, str] = {}

    # --- the submitter ------------------------------------------------------------------------

    def execute(self, jobs: Sequence[Job], report: Callable[[ProgressUpdate], None]) -> list[Outcome]:
        """Submit `jobs` as one array, report their progress, ingest each record as its job ends."""
        if not jobs:
            return []
        submitit = _submitit()
        layout = Layout(self.folder)
        layout.create()
        keys = job_keys(jobs)
        with layout.lock():
            stop = _StopFlag()
            with stop_signals(stop.set):
                tasks = [self._prepare(layout, job, key) for job, key in zip(jobs, keys, strict=True)]
                for job in jobs:
                    report(ProgressUpdate(job, "pending"))
                if stop.requested:  # stopped before anything was submitted
                    return self._all_interrupted(jobs, report)
                handles = self._submit(submitit, layout, tasks)
                return _Collector(self, layout, tasks, handles, report, stop).run()

    def _prepare(self, layout: Layout, job: Job, key: str) -> SlurmTask:
        """Clear the key's files of an earlier sweep; hand a resumed run's record to the job's database."""
        for path in (layout.outcome(key), layout.events(key)):
            path.unlink(missing_ok=True)
        if job.resume is not None:
            _copy_run(self.db, layout.database(key), job.resume)
        return SlurmTask(job, key, str(self.folder), uuid.uuid4().hex, threads=self.cpus_per_job)

    def _submit(self, submitit: Any, layout: Layout, tasks: list[SlurmTask]) -> list[Any]:
        # submitit requeues a job that reaches its time limit this many times at most (its default: 3);
        # every attempt resumes from the last, so a long run spans as many time limits as it needs.
        executor = submitit.AutoExecutor(
            folder=layout.submitit / "%j", cluster=self.cluster, slurm_max_num_timeout=_MAX_TIMEOUTS
        )
        parameters: dict[str, Any] = {
            "name": "metabench-sweep",
            "timeout_min": self.time_min,
            "cpus_per_task": self.cpus_per_job,
            "slurm_array_parallelism": self.array_parallelism,
            # Requeue-able whatever the cluster's JobRequeue says: preemption and `scontrol requeue`
            # put the job back in the queue, and its next attempt resumes the run.
            "slurm_additional_parameters": {"requeue": True},
        }
        if self.gpus_per_job:
            parameters["gpus_per_node"] = self.gpus_per_job
        if self.partition is not None:
            parameters["slurm_partition"] = self.partition
        # submitit signals the job (USR2) this long before its time limit, to checkpoint and requeue it;
        # its default of 90 s would leave a short job no time to run at all.
        parameters["slurm_signal_delay_s"] = min(90, max(10, self.time_min * 60 // 4))
        executor.update_parameters(**parameters)
        try:
            with executor.batch():
                handles = [executor.submit(task) for task in tasks]
        except Exception as exc:  # sbatch refused (unknown partition, no such GPUs, Slurm down)
            raise MetabenchError(f"could not submit the sweep to {self.cluster}: {_one_line(exc)}") from None
        for task, handle in zip(tasks, handles, strict=True):
            self.job_ids[task.key] = str(handle.job_id)
        return handles

    def _all_interrupted(
        self, jobs: Sequence[Job], report: Callable[[ProgressUpdate], None]
    ) -> list[Outcome]:
        outcomes = [Outcome(job, "interrupted", job.resume, None, None) for job in jobs]
        for outcome in outcomes:
            report(ProgressUpdate(outcome.job, "ended", run_id=outcome.run_id, outcome=outcome))
        return outcomes


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def set(self, signum: int) -> None:
        self.requested = True


class _Collector:
    """The submitter's loop: follows each job's events and state until every job has ended."""

    def __init__(
        self,
        executor: SlurmExecutor,
        layout: Layout,
        tasks: list[SlurmTask],
        handles: list[Any],
        report: Callable[[ProgressUpdate], None],
        stop: _StopFlag,
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
                f"({_one_line(exc)}); load it with: metabench runs ingest {root}",
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


# --- the shared folder -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where each file of a sweep lives in the shared folder (see the module docstring)."""

    root: Path

    @property
    def records(self) -> Path:
        """Finished runs' records (<records>/runs/<run_id>.json)."""
        return self.root / "records"

    @property
    def unfinished(self) -> Path:
        """Interrupted and failed runs' records."""
        return self.root / "unfinished"

    @property
    def submitit(self) -> Path:
        """submitit's pickles and the Slurm jobs' logs."""
        return self.root / "submitit"

    def database(self, key: str) -> Path:
        """The job's own database."""
        return self.root / "db" / f"{key}.db"

    def events(self, key: str) -> Path:
        """The run's JSON-lines events, every attempt."""
        return self.root / "events" / f"{key}.jsonl"

    def log(self, key: str) -> Path:
        """The run's stderr, every attempt."""
        return self.root / "logs" / f"{key}.log"

    def outcome(self, key: str) -> Path:
        """How the job's last attempt ended."""
        return self.root / "outcomes" / f"{key}.json"

    def create(self) -> None:
        """Make the folders; MetabenchError naming the folder when it cannot be written."""
        try:
            for name in ("records/runs", "unfinished/runs", "db", "events", "logs", "outcomes", "submitit"):
                (self.root / name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MetabenchError(
                f"cannot use {self.root} as the Slurm folder ({exc.strerror or exc}); "
                "pass a writable shared folder"
            ) from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One sweep at a time per folder: two would clear and read each other's job files."""
        with (self.root / ".sweep.lock").open("a") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise MetabenchError(
                    f"another sweep is using the Slurm folder {self.root}; wait for it or pass another folder"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)


def job_keys(jobs: Sequence[Job]) -> list[str]:
    """One file-name-safe key per job, stable across sweeps: method and spec hash (-2, -3 for repeats).

    Stable, so that a later sweep with the same folder finds the database of an earlier one's job and
    resumes its interrupted run even when the submitter died before it heard of it.
    """
    keys: list[str] = []
    for job in jobs:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", f"{job.spec.method}-{job.spec.spec_hash()}")
        key, count = base, 1
        while key in keys:
            count += 1
            key = f"{base}-{count}"
        keys.append(key)
    return keys


def _copy_run(db: Path | None, target: Path, run_id: str) -> None:
    """Put the stored run `run_id` into a job's database, so the job can `--resume` it there."""
    from metabench.db import open_database
    from metabench.leaderboard.store import get_run, save_record

    source = open_database(db)
    try:
        record = get_run(source, run_id)
    finally:
        source.conn.close()
    if record is None:
        raise MetabenchError(f"no run {run_id!r} in the database to resume; see `metabench runs list`")
    job_db = open_database(target)
    try:
        existing = get_run(job_db, run_id)
        if existing is None or existing.status not in ("finished", "running"):
            save_record(job_db, record)
    finally:
        job_db.conn.close()


# --- the job (runs on a compute node) --------------------------------------------------------------


class SlurmTask:
    """What one array job runs: `metabench run` for its Job, resuming its interrupted run if there is one.

    Slurm sends SIGTERM to every process of a job it cancels, requeues or preempts, so the run gets it
    directly, checkpoints and records itself interrupted; the next attempt then resumes it. submitit's
    own warning before the time limit (SIGUSR2) calls `checkpoint`, which stops the run the same way
    and has submitit requeue the job.
    """

    def __init__(self, job: Job, key: str, folder: str, token: str, threads: int = 1) -> None:
        self.job = job
        self.key = key
        self.folder = folder
        self.token = token  # which submission this is: an outcome file of another one is not ours
        self.threads = threads
        self._child: subprocess.Popen[bytes] | None = None
        self._ended = threading.Event()
        self._status: str | None = None
        self._stopped = False

    def __getstate__(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "key": self.key,
            "folder": self.folder,
            "token": self.token,
            "threads": self.threads,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __call__(self) -> str:
        """Run (or resume) the job's run to its end; write the outcome file; return the status."""
        layout = Layout(Path(self.folder))
        try:
            return self._perform(layout)
        except Exception as exc:  # the submitter learns why at once, not from a missing file
            error = f"the Slurm job could not run metabench: {type(exc).__name__}: {_one_line(exc)}"
            self._write_outcome(layout, Outcome(self.job, "failed", None, None, error))
            raise

    def _perform(self, layout: Layout) -> str:
        done = self._already_finished(layout)
        if done is not None:  # this submission's run finished in an earlier attempt
            self._write_outcome(layout, done)
            return "finished"
        job = self.job
        resume = self._resumable(layout)
        if resume is not None:
            job = replace(job, resume=resume)
        argv = job.argv(layout.database(self.key), layout.records)
        env = dict(os.environ)
        # torch's intra-op threads: the job's CPUs, not one per core of the whole node.
        env.setdefault("OMP_NUM_THREADS", str(self.threads))
        local = os.environ.get("SUBMITIT_EXECUTOR") != "slurm"
        events, log = layout.events(self.key), layout.log(self.key)
        start = events.stat().st_size if events.exists() else 0
        with events.open("ab") as out, log.open("ab") as err:
            self._child = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                env=env,
                # Its own session: a Ctrl-C at the submitter's terminal does not reach it twice (here,
                # then forwarded); Slurm still signals it, as it signals every process of the job.
                start_new_session=True,
                preexec_fn=_ignore_usr2,
            )
            watcher = threading.Thread(target=self._wait, args=(layout, start), daemon=True)
            watcher.start()
            if threading.current_thread() is threading.main_thread():
                handler = self._forward if local else self._note_stop
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, handler)
            while watcher.is_alive():
                watcher.join(0.5)
        return self._status or "failed"

    def checkpoint(self) -> Any:
        """submitit's time-limit warning: stop the run at a checkpoint; requeue this job to resume it."""
        from submitit.helpers import DelayedSubmission

        child = self._child
        self._stopped = True
        if child is not None and not self._ended.is_set():
            child.send_signal(signal.SIGTERM)
            self._ended.wait()
        if self._status in ("finished", "failed"):
            return None  # nothing left to resume
        return DelayedSubmission(SlurmTask(**self.__getstate__()))

    def _note_stop(self, signum: int, frame: Any) -> None:
        # Slurm signals the run itself (cancel, requeue, preemption, time limit): only note it, so a run
        # killed before its own handlers existed counts as interrupted, not failed.
        self._stopped = True

    def _forward(self, signum: int, frame: Any) -> None:
        # submitit's local jobs get SIGTERM from their controller, never from Slurm: pass one on.
        if not self._stopped:
            self._stopped = True
            child = self._child
            if child is not None and not self._ended.is_set():
                child.send_signal(signal.SIGTERM)

    def _wait(self, layout: Layout, start: int) -> None:
        """Wait for the run (in a thread: a signal handler may need to wait for it too); write the outcome."""
        assert self._child is not None
        returncode = self._child.wait()
        try:
            watcher = RunWatcher(self.job)
            with layout.events(self.key).open("rb") as file:
                file.seek(start)
                for line in file:
                    watcher.feed(line)
            # A run dead of SIGTERM was stopped (by Slurm, or by us) before its own handlers existed.
            stopped = self._stopped or returncode == -signal.SIGTERM
            outcome = watcher.outcome(returncode, _tail(layout.log(self.key)), stopped=stopped)
            if outcome.run_id is not None:
                try:
                    self._keep_record(layout, outcome)
                except (OSError, ValueError, sqlite3.Error) as exc:
                    # A finished run's missing record file then fails at the submitter, naming it.
                    print(f"metabench: could not copy the record of {outcome.run_id}: {exc}", file=sys.stderr)
            self._write_outcome(layout, outcome)
            self._status = outcome.status
        finally:
            self._ended.set()

    def _keep_record(self, layout: Layout, outcome: Outcome) -> None:
        """The run's record for the submitter: finished ones under records/, the others under unfinished/."""
        from metabench.db import open_database
        from metabench.leaderboard.portable import record_path, write_record_file
        from metabench.leaderboard.store import get_run

        assert outcome.run_id is not None
        finished = outcome.status == "finished"
        if finished:  # an older unfinished copy must not be loaded after the finished one
            record_path(layout.unfinished, outcome.run_id).unlink(missing_ok=True)
        root = layout.records if finished else layout.unfinished
        if finished and record_path(root, outcome.run_id).exists():
            return  # `metabench run` wrote it
        db = open_database(layout.database(self.key))
        try:
            record = get_run(db, outcome.run_id)
        finally:
            db.conn.close()
        if record is not None:
            write_record_file(record, root)

    def _write_outcome(self, layout: Layout, outcome: Outcome) -> None:
        data = {
            "token": self.token,
            "status": outcome.status,
            "run_id": outcome.run_id,
            "accuracy": outcome.accuracy,
            "error": outcome.error,
            "slurm_job": _slurm_job_id(),
        }
        atomic.write_text(layout.outcome(self.key), json.dumps(data) + "\n")

    def _this_submission(self, layout: Layout) -> RunWatcher:
        """This submission's earlier attempts, from the events file (the submitter cleared it)."""
        watcher = RunWatcher(self.job)
        try:
            with layout.events(self.key).open("rb") as file:
                for line in file:
                    watcher.feed(line)
        except FileNotFoundError:
            pass
        return watcher

    def _already_finished(self, layout: Layout) -> Outcome | None:
        watcher = self._this_submission(layout)
        event = watcher.terminal
        if event is None or event["event"] != "finished":
            return None
        outcome = Outcome(self.job, "finished", watcher.run_id, event.get("accuracy"), None)
        self._keep_record(layout, outcome)
        return outcome

    def _resumable(self, layout: Layout) -> str | None:
        """The run to continue: this submission's interrupted one, the Job's, else the job database's."""
        from metabench.db import open_database
        from metabench.leaderboard.store import get_run, list_runs

        path = layout.database(self.key)
        if not path.exists():
            return self.job.resume
        db = open_database(path)
        try:
            for run_id in (self._this_submission(layout).run_id, self.job.resume):
                if run_id is not None:
                    record = get_run(db, run_id)
                    if record is not None and record.status in ("interrupted", "running"):
                        return run_id
            # An earlier sweep's run of this spec, stopped before its submitter heard of it.
            for summary in list_runs(db):
                if summary.status == "interrupted" and summary.resumable:
                    return summary.run_id
            return None
        finally:
            db.conn.close()


def _slurm_job_id() -> str | None:
    """This job's id as squeue shows it: ARRAY_TASK for an array job."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _ignore_usr2() -> None:
    # Slurm signals every process of the job; submitit's SIGUSR2 (time-limit warning) is for the task,
    # and SIGUSR2's default action would kill the run without a checkpoint.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - size))
            return file.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise MetabenchError(_NO_SUBMITIT) from None
    return submitit


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "no message"
