"""What one Slurm array job runs on its compute node: `metabench run` for its Job, resuming its run if an
earlier attempt was interrupted (preempted, requeued, timed out)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from metabench import atomic
from metabench.sweep.executor import Job, Outcome, RunWatcher
from metabench.sweep.slurm_folder import Layout, one_line, tail


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
            error = f"the Slurm job could not run metabench: {type(exc).__name__}: {one_line(exc)}"
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
            outcome = watcher.outcome(returncode, tail(layout.log(self.key)), stopped=stopped)
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
