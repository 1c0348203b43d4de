"""The local executor: a pool of workers, each running one `metabench run` process at a time.

With GPUs, one worker per GPU by default, each child pinned to its GPU with CUDA_VISIBLE_DEVICES; on
the CPU, the cores are divided between the workers (OMP_NUM_THREADS, which sets torch's intra-op
threads in the child). Every child runs in its own session, so a Ctrl-C at the terminal reaches the
sweep alone, which passes one polite SIGTERM on (two signals would cut a training step short).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metabench.interrupts import on_stop_signals
from metabench.sweep.executor import Job, Outcome, ProgressUpdate, RunWatcher

CORES_PER_CPU_WORKER = 4  # the default CPU pool: small models gain little past a few threads per run
STDERR_TAIL_BYTES = 64 * 1024  # of a child's stderr, enough for its last lines (the error)
POLL_S = 0.2  # how often the loop looks at a stop request when no child has news


def make_executor(
    db: Path | None, results: Path, workers: int | None, options: Mapping[str, Any]
) -> LocalExecutor:
    """The executor of `metabench sweep --executor local` (it takes no options from the sweep file)."""
    return LocalExecutor(db, results, workers)


def visible_gpus() -> list[str]:
    """The ids to put in a child's CUDA_VISIBLE_DEVICES, one per GPU this process may use."""
    import torch  # only torch knows the GPUs this process may use: imported once per local sweep

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpu_ids(count, os.environ.get("CUDA_VISIBLE_DEVICES"))


def gpu_ids(count: int, inherited: str | None) -> list[str]:
    """`count` GPU ids; a parent already limited by CUDA_VISIBLE_DEVICES (`inherited`) hands out its own
    entries: pinning a child to "0" would mean the machine's first GPU, not the parent's first."""
    given = [item.strip() for item in (inherited or "").split(",") if item.strip()]
    return given[:count] if count and len(given) >= count else [str(index) for index in range(count)]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a Slurm or taskset allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs jobs as `metabench run` subprocesses on this machine, `workers` at a time."""

    def __init__(
        self,
        db: Path | None,
        results: Path,
        workers: int | None = None,
        *,
        gpus: Sequence[str] | None = None,
        cores: int | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.db = db
        self.results = results
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        self.cores = cores or usable_cores()
        self.workers = workers or len(self.gpus) or max(1, self.cores // CORES_PER_CPU_WORKER)
        self.threads = max(1, self.cores // self.workers)
        self._lock = threading.Lock()
        self._signals = 0  # stop requests received (the signal handler only counts them)
        self._forwarded = 0
        self._children: dict[int, subprocess.Popen] = {}  # worker slot: its running child

    @property
    def description(self) -> str:
        """How the pool runs, for the sweep's first line: '2 at once on the CPU, 1 thread each'."""
        if self.gpus:
            return f"{self.workers} at once on GPU {', '.join(self.gpus)}"
        return (
            f"{self.workers} at once on the CPU, {self.threads} thread{'s' if self.threads > 1 else ''} each"
        )

    def worker_environment(self, slot: int) -> tuple[dict[str, str], str]:
        """The environment of the child run by worker `slot`, and where that is, for display."""
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        if self.gpus:
            gpu = self.gpus[slot % len(self.gpus)]
            env["CUDA_VISIBLE_DEVICES"] = gpu
            return env, f"gpu {gpu}"
        return env, f"cpu {slot}"

    def execute(self, jobs: Sequence[Job], report: Callable[[ProgressUpdate], None]) -> list[Outcome]:
        """Run `jobs` on the pool; see metabench.sweep.executor for the contract."""
        pending = list(enumerate(jobs))
        pending.reverse()  # popped from the end: in order
        outcomes: dict[int, Outcome] = {}
        updates: queue.Queue[tuple[int, ProgressUpdate]] = queue.Queue()
        self._signals = self._forwarded = 0

        def work(slot: int) -> None:
            while True:
                with self._lock:
                    if self._signals or not pending:
                        return
                    index, job = pending.pop()
                self._run(slot, index, job, updates)

        with on_stop_signals(self._on_signal):
            threads = [
                threading.Thread(target=work, args=(slot,), name=f"sweep worker {slot}", daemon=True)
                for slot in range(min(self.workers, len(jobs)))
            ]
            for thread in threads:
                thread.start()
            try:
                while any(thread.is_alive() for thread in threads) or not updates.empty():
                    self._forward_stop()
                    try:
                        index, update = updates.get(timeout=POLL_S)
                    except queue.Empty:
                        continue
                    if update.outcome is not None:
                        outcomes[index] = update.outcome
                    report(update)
            except BaseException:
                # The display failed (or the caller's thread was interrupted): never leave orphan runs.
                self._signals += 1
                self._forward_stop()
                raise
            finally:
                for thread in threads:
                    thread.join()
        return [
            outcomes.get(index) or Outcome(job, "interrupted", None, None, None)
            for index, job in enumerate(jobs)
        ]

    def _on_signal(self, signum: int) -> None:
        self._signals += 1  # acted upon by the loop: a handler must not take the lock the loop may hold

    def _forward_stop(self) -> None:
        """Pass each stop request on to every running child: the first stops it politely, a second at once."""
        with self._lock:
            while self._forwarded < self._signals:
                self._forwarded += 1
                for process in self._children.values():
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)

    def _run(self, slot: int, index: int, job: Job, updates: queue.Queue) -> None:
        env, where = self.worker_environment(slot)
        watcher = RunWatcher(job, where)
        with tempfile.TemporaryFile() as stderr:
            with self._lock:
                if self._signals:  # a stop came while this worker took the job: it is never started
                    return
                try:
                    process = subprocess.Popen(
                        job.argv(self.db, self.results),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        env=env,
                        # Own session: the terminal's Ctrl-C goes to the sweep, which passes one SIGTERM on.
                        start_new_session=True,
                    )
                except OSError as exc:
                    outcome = Outcome(job, "failed", job.resume, None, f"cannot start metabench run: {exc}")
                    updates.put((index, watcher.ended(outcome)))
                    return
                self._children[slot] = process
            updates.put((index, ProgressUpdate(job, "starting", run_id=job.resume, where=where)))
            assert process.stdout is not None
            with process.stdout:
                for line in process.stdout:
                    update = watcher.feed(line)
                    if update is not None:
                        updates.put((index, update))
            returncode = process.wait()
            with self._lock:
                del self._children[slot]
                stopped = self._signals > 0
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - STDERR_TAIL_BYTES))
            tail = stderr.read().decode("utf-8", "replace")
        updates.put((index, watcher.ended(watcher.outcome(returncode, tail, stopped))))
