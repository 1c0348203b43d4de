"""`--executor slurm`: a sweep's jobs as one Slurm job array (submitit); records return via a shared folder.

Every job runs `metabench run` (Job.argv) on a compute node with its own database in the shared folder
and writes its portable record there; only the submitting process writes the sweep's database, as each
job ends. A job that is preempted, requeued or reaches its time limit is stopped politely (the run
checkpoints and records itself "interrupted") and, when Slurm or submitit requeues it, its next attempt
resumes that run from the checkpoint.

The shared folder (`folder`, visible from the submitter and every node) is laid out in
metabench.sweep.slurm_folder; what a job runs is metabench.sweep.slurm_task.

Checkpoints stay under METABENCH_HOME (the jobs inherit the submitter's environment), so on a cluster
of several nodes METABENCH_HOME must be on shared storage too, as home folders usually are.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metabench import paths
from metabench.errors import MetabenchError
from metabench.interrupts import on_stop_signals
from metabench.sweep.executor import Job, Outcome, ProgressUpdate
from metabench.sweep.slurm_folder import Layout, copy_run, job_keys, one_line
from metabench.sweep.slurm_follow import Collector, StopFlag
from metabench.sweep.slurm_task import SlurmTask

__all__ = ["CLUSTERS", "DEFAULTS", "SlurmExecutor", "job_keys", "make_executor"]

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
            stop = StopFlag()
            with on_stop_signals(stop.set):
                tasks = [self._prepare(layout, job, key) for job, key in zip(jobs, keys, strict=True)]
                for job in jobs:
                    report(ProgressUpdate(job, "pending"))
                if stop.requested:  # stopped before anything was submitted
                    return self._all_interrupted(jobs, report)
                handles = self._submit(submitit, layout, tasks)
                return Collector(self, layout, tasks, handles, report, stop).run()

    def _prepare(self, layout: Layout, job: Job, key: str) -> SlurmTask:
        """Clear the key's files of an earlier sweep; hand a resumed run's record to the job's database."""
        for path in (layout.outcome(key), layout.events(key)):
            path.unlink(missing_ok=True)
        if job.resume is not None:
            copy_run(self.db, layout.database(key), job.resume)
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
            raise MetabenchError(f"could not submit the sweep to {self.cluster}: {one_line(exc)}") from None
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


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise MetabenchError(_NO_SUBMITIT) from None
    return submitit
