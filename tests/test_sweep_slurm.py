"""The Slurm executor for real: submitit's local processes always, a single-node Slurm when one is up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from metabench.config import RunSpec
from metabench.db import open_database
from metabench.errors import MetabenchError
from metabench.leaderboard.store import list_runs
from metabench.sweep.executor import Job, ProgressUpdate
from metabench.sweep.slurm import SlurmExecutor, job_keys, make_executor

# Past this a job array that never ran (a drained node, a hung daemon) is stopped and the test fails.
DEADLINE_S = 150


@pytest.fixture(scope="module")
def omniglot_cache(omniglot_dir: Path) -> None:
    """Decode Omniglot once into the session's cache before the jobs start (the suite has mostly done
    so already), rather than in every job at once."""
    from metabench.data.cache import load_cache

    load_cache(omniglot_dir)


def smoke(method: str, seed: int = 0, **budget: object) -> Job:
    overrides = (("train_ways", "5"),) if method == "protonet" else ()  # 5-way training: quick steps
    return Job(RunSpec(method, preset="smoke", seed=seed, device="cpu", overrides=overrides, **budget), None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """SIGTERM to this process after `seconds`: the executor's polite stop, so a hung cluster ends a test."""
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def stored_runs(db: Path) -> dict[str, tuple[str, int]]:
    database = open_database(db)
    try:
        return {run.run_id: (run.status, run.steps_done) for run in list_runs(database)}
    finally:
        database.conn.close()


def events(folder: Path, key: str) -> list[dict]:
    lines = (folder / "events" / f"{key}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ended(updates: list[ProgressUpdate], job: Job) -> list[ProgressUpdate]:
    return [u for u in updates if u.job == job and u.phase == "ended"]


def test_make_executor_checks_the_slurm_table(tmp_path: Path) -> None:
    executor = make_executor(
        tmp_path / "db", tmp_path, 3, {"folder": str(tmp_path / "shared"), "time_min": 5}
    )
    assert (executor.folder, executor.time_min, executor.array_parallelism) == (tmp_path / "shared", 5, 3)
    with pytest.raises(MetabenchError, match="unknown \\[slurm\\] option 'gpus'"):
        make_executor(None, tmp_path, None, {"gpus": 1})
    with pytest.raises(MetabenchError, match="time_min must be a whole number >= 1"):
        make_executor(None, tmp_path, None, {"time_min": "1h"})
    with pytest.raises(MetabenchError, match="cluster must be one of slurm, local"):
        make_executor(None, tmp_path, None, {"cluster": "pbs"})


def test_job_keys_are_stable_and_unique() -> None:
    jobs = [smoke("pixels-nn"), smoke("pixels-nn"), smoke("pixels-nn", seed=1)]
    keys = job_keys(jobs)
    assert keys == job_keys(jobs) and len(set(keys)) == 3
    assert keys[1] == f"{keys[0]}-2" and keys[0].startswith("pixels-nn-")


@pytest.mark.slow
def test_local_cluster_runs_two_smoke_runs_into_the_submitters_database(
    tmp_path: Path, omniglot_cache: None
) -> None:
    pytest.importorskip("submitit", reason="submitit is missing: pip install -e '.[slurm]'")
    jobs = [smoke("pixels-nn", seed=0), smoke("pixels-nn", seed=1)]
    shared, db, results = tmp_path / "shared", tmp_path / "sweep.db", tmp_path / "results"
    executor = SlurmExecutor(shared, db, results, cluster="local", time_min=5, poll_s=0.2)
    updates: list[ProgressUpdate] = []
    with deadline(DEADLINE_S):
        outcomes = executor.execute(jobs, updates.append)

    assert [(o.job, o.status, o.error) for o in outcomes] == [(job, "finished", None) for job in jobs]
    run_ids = {o.run_id for o in outcomes}
    assert stored_runs(db) == {run_id: ("finished", 0) for run_id in run_ids}
    for run_id in run_ids:  # the portable records: in the shared folder and in the sweep's results
        assert (shared / "records" / "runs" / f"{run_id}.json").is_file()
        assert (results / "runs" / f"{run_id}.json").is_file()
    for job, outcome in zip(jobs, outcomes, strict=True):
        assert [u.outcome for u in ended(updates, job)] == [outcome]
        assert [u.phase for u in updates if u.job == job][0] == "pending"


SLURMCTLD_PORT = 6817  # Slurm's default, which scripts/slurm_local.sh keeps


def slurm_unavailable() -> str | None:
    """Why the real Slurm test cannot run here, or None when a cluster answers."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH: scripts/slurm_local.sh install, then scripts/slurm_local.sh start"
    try:  # a controller that is not running refuses at once, where sinfo retries for ~16 s
        socket.create_connection((socket.gethostname(), SLURMCTLD_PORT), timeout=2).close()
    except OSError:
        return "no slurmctld answers on this host: scripts/slurm_local.sh start"
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s: is slurmctld up? (scripts/slurm_local.sh start)"
    if sinfo.returncode != 0:
        said = " ".join(sinfo.stderr.split())
        return f"no Slurm cluster is up (sinfo: {said}); start one: scripts/slurm_local.sh start"
    if not {"idle", "mixed", "allocated", "completing"} & set(sinfo.stdout.split()):
        return f"no Slurm node can take jobs (sinfo says {' '.join(sinfo.stdout.split())})"
    return None


@pytest.mark.slow
def test_slurm_job_array_with_a_requeued_run_that_resumes_from_its_checkpoint(
    tmp_path: Path, omniglot_cache: None
) -> None:
    reason = slurm_unavailable()
    if reason and os.environ.get("METABENCH_REQUIRE_SLURM"):  # .ci/run started a cluster: it must answer
        pytest.fail(f"METABENCH_REQUIRE_SLURM is set but {reason}")
    if reason:
        pytest.skip(reason)
    pytest.importorskip("submitit", reason="submitit is missing: pip install -e '.[slurm]'")
    # The ProtoNet run still trains when the requeue hits (at step 2 or so of 60, ~2 s or more before
    # its end even alone on a fast core); the two pixel runs share the array with it.
    training = smoke("protonet", meta_steps=60, eval_episodes=16)
    jobs = [training, smoke("pixels-nn", seed=0), smoke("pixels-nn", seed=1)]
    shared, db, results = tmp_path / "shared", tmp_path / "sweep.db", tmp_path / "results"
    executor = SlurmExecutor(shared, db, results, time_min=5, cpus_per_job=1, array_parallelism=3, poll_s=0.3)
    key = job_keys(jobs)[0]
    requeued: list[str] = []
    updates: list[ProgressUpdate] = []

    def report(update: ProgressUpdate) -> None:
        updates.append(update)
        if update.job == training and update.phase == "training" and (update.step or 0) >= 2 and not requeued:
            job_id = executor.job_ids[key]
            subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True, timeout=30)
            requeued.append(job_id)

    with deadline(DEADLINE_S):
        outcomes = executor.execute(jobs, report)

    assert [(o.status, o.error) for o in outcomes] == [("finished", None)] * 3
    assert requeued, "the ProtoNet run never reported step 2: nothing was requeued"
    run_id = outcomes[0].run_id
    # One run, recorded once, finished with all its steps; the pixel runs beside it.
    assert stored_runs(db) == {run_id: ("finished", 60), **{o.run_id: ("finished", 0) for o in outcomes[1:]}}
    assert all([u.outcome for u in ended(updates, job)] == [o] for job, o in zip(jobs, outcomes, strict=True))
    # Stopped once at a checkpoint past step 0, and continued from exactly there, not from 0.
    stops = [e for e in events(shared, key) if e["event"] in ("started", "interrupted", "finished")]
    assert [e["event"] for e in stops] == ["started", "interrupted", "started", "finished"]
    assert {e["run_id"] for e in stops} == {run_id}
    checkpoint = stops[1]["checkpoint_step"]
    assert 2 <= checkpoint < 60 and stops[2]["resumed"] and stops[2]["step"] == checkpoint
    show = subprocess.run(
        ["scontrol", "show", "job", requeued[0]], capture_output=True, text=True, timeout=30
    )
    assert "Restarts=1" in show.stdout
