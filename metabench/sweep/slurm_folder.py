"""The shared folder of a Slurm sweep: where each job's database, events, log, outcome and record live.

records/runs/<run_id>.json     finished runs, as `metabench run --results` writes them; if the
                               submitter died, `metabench runs ingest FOLDER/records` loads them
unfinished/runs/<run_id>.json  interrupted and failed runs (so a later sweep can resume them)
db/<key>.db                    one database per job key (method and spec hash): written by the job
events/<key>.jsonl, logs/<key>.log   the run's events (stdout) and its stderr, all attempts
outcomes/<key>.json            how the job's last attempt ended, written by the job
submitit/                      submitit's pickles and the Slurm jobs' own logs
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from metabench.errors import MetabenchError
from metabench.sweep.executor import Job


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


def copy_run(db: Path | None, target: Path, run_id: str) -> None:
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


def tail(path: Path, size: int = 4096) -> str:
    """The last `size` bytes of a log, as text ("" when it cannot be read)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - size))
            return file.read().decode("utf-8", "replace")
    except OSError:
        return ""


def one_line(text: object) -> str:
    """`text` on one line, for a summary or an outcome file."""
    return " ".join(str(text).split()) or "no message"
