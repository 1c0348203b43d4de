"""The runs tables in SQLite: schema, upsert of a record, and the queries the front ends need."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from metabench.config import RunSpec
from metabench.db import migrate
from metabench.leaderboard.record_schema import STATUSES
from metabench.leaderboard.records import CurvePoint, RunRecord, RunSummary
from metabench.process import process_alive
from metabench.runid import check_run_id

NAMESPACE = "runs"


def _create_runs(db: sqlite_utils.Database) -> None:
    # Plain SQL: migrate() wraps each migration in one transaction, which sqlite-utils helpers
    # would commit early.
    db.execute(
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            method TEXT NOT NULL,
            family TEXT NOT NULL,
            protocol TEXT NOT NULL,
            ways INTEGER NOT NULL,
            shots INTEGER NOT NULL,
            queries INTEGER NOT NULL,
            preset TEXT NOT NULL,
            meta_steps INTEGER NOT NULL,
            eval_episodes INTEGER NOT NULL,
            eval_seed INTEGER NOT NULL,
            eval_batch_size INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            spec_json TEXT NOT NULL,
            spec_hash TEXT NOT NULL,
            transductive INTEGER NOT NULL,
            steps_done INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            versions_json TEXT NOT NULL,
            device_type TEXT NOT NULL,
            device_name TEXT NOT NULL,
            data_digest TEXT NOT NULL,
            wall_time_s REAL NOT NULL,
            train_time_s REAL NOT NULL,
            eval_time_s REAL NOT NULL,
            tasks_per_s REAL,
            peak_rss_mb REAL,
            peak_cuda_mb REAL,
            curve_json TEXT NOT NULL,
            accuracy REAL,
            ci95 REAL,
            error TEXT,
            resumable INTEGER NOT NULL,
            owner_pid INTEGER
        )"""
    )
    db.execute("CREATE INDEX runs_setting ON runs (protocol, ways, shots, queries, eval_episodes)")
    db.execute("CREATE INDEX runs_created ON runs (created_at)")
    db.execute(
        """CREATE TABLE run_episodes (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            episode INTEGER NOT NULL,
            accuracy REAL NOT NULL,
            PRIMARY KEY (run_id, episode)
        )"""
    )


def _add_record_format_2(db: sqlite_utils.Database) -> None:
    # Rows written before keep the defaults: unknown ('' or NULL), as in a format-1 record.
    db.execute("ALTER TABLE runs ADD COLUMN test_episodes_digest TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN torch_threads INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN code_version TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN preset_overrides_json TEXT")


def _add_record_format_3(db: sqlite_utils.Database) -> None:
    # Rows written before tested their last state, at a step not recorded (NULL).
    db.execute("ALTER TABLE runs ADD COLUMN model_selection TEXT NOT NULL DEFAULT 'last'")
    db.execute("ALTER TABLE runs ADD COLUMN tested_step INTEGER")


MIGRATIONS = [_create_runs, _add_record_format_2, _add_record_format_3]

_SUMMARY_COLUMNS = (
    "run_id, status, method, family, protocol, ways, shots, queries, preset, meta_steps, steps_done, "
    "eval_episodes, seed, accuracy, ci95, transductive, device_name, created_at, finished_at, "
    "train_time_s, resumable, error, preset_overrides_json, model_selection, tested_step"
)


_SETTING_COLUMNS = ("ways", "shots", "queries", "eval_episodes", "eval_seed", "meta_steps")


@dataclass(frozen=True)
class FinishedRun:
    """A finished run as ranking needs it: which test episodes it ran on, and on which data."""

    summary: RunSummary
    eval_seed: int
    data_digest: str
    test_episodes_digest: str  # "" when unknown (records before format 2)
    seedless_hash: str  # RunSpec.seedless_hash: equal for runs that differ only by seed; "" when unreadable


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create or upgrade the runs tables (cheap when up to date)."""
    migrate(db, NAMESPACE, MIGRATIONS)


def save_record(db: sqlite_utils.Database, record: RunRecord, owner_pid: int | None = None) -> None:
    """Insert or replace the run and its per-episode accuracies in one transaction.

    ValueError, and nothing written, when the record breaks the schema (records.py): the
    database holds only records that could have been ingested.
    """
    record.check()
    ensure_schema(db)
    row = _record_to_row(record, owner_pid)
    columns = ", ".join(row)
    placeholders = ", ".join("?" for _ in row)
    with db.conn:
        db.conn.execute("DELETE FROM run_episodes WHERE run_id = ?", [record.run_id])
        db.conn.execute(
            f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({placeholders})", list(row.values())
        )
        db.conn.executemany(
            "INSERT INTO run_episodes (run_id, episode, accuracy) VALUES (?, ?, ?)",
            [(record.run_id, index, value) for index, value in enumerate(record.episode_accuracies)],
        )


def get_run(db: sqlite_utils.Database, run_id: str) -> RunRecord | None:
    """The full record of `run_id` (learning curve and per-episode accuracies included), or None.

    ValueError when `run_id` does not have the shape of a run id.
    """
    check_run_id(run_id)
    ensure_schema(db)
    cursor = db.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    values = cursor.fetchone()
    if values is None:
        return None
    row = dict(zip([c[0] for c in cursor.description], values, strict=True))
    return _row_to_record(row, episode_accuracies(db, run_id))


def episode_accuracies(db: sqlite_utils.Database, run_id: str) -> tuple[float, ...]:
    """The per-episode test accuracies of a run, in evaluation order."""
    ensure_schema(db)
    rows = db.execute("SELECT accuracy FROM run_episodes WHERE run_id = ? ORDER BY episode", [run_id])
    return tuple(value for (value,) in rows)


def list_runs(
    db: sqlite_utils.Database, limit: int | None = None, status: str | None = None
) -> list[RunSummary]:
    """Runs newest first, optionally only those with `status`; ValueError for an unknown status."""
    ensure_schema(db)
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; choose one of {', '.join(STATUSES)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    sql = f"SELECT {_SUMMARY_COLUMNS} FROM runs"
    params: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        params.append(status)
    sql += " ORDER BY created_at DESC, run_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_summary(row) for row in db.execute(sql, params).fetchall()]


def finished_summaries(
    db: sqlite_utils.Database, protocol: str | None = None, ways: int | None = None, shots: int | None = None
) -> list[FinishedRun]:
    """Finished runs with an accuracy, oldest first."""
    ensure_schema(db)
    sql = f"SELECT {_SUMMARY_COLUMNS}, eval_seed, data_digest, test_episodes_digest, spec_json FROM runs"
    sql += " WHERE status = 'finished' AND accuracy IS NOT NULL"
    # Rows ingested before records were checked may hold anything ("eval_episodes": "lots"); the
    # boards skip what could not be ranked instead of failing on it.
    sql += " AND accuracy BETWEEN 0 AND 1 AND typeof(accuracy) IN ('real', 'integer')"
    sql += "".join(f" AND typeof({column}) = 'integer'" for column in _SETTING_COLUMNS)
    params: list[Any] = []
    for column, value in (("protocol", protocol), ("ways", ways), ("shots", shots)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    rows = db.execute(sql + " ORDER BY created_at, run_id", params).fetchall()
    count = len(_SUMMARY_COLUMNS.split(","))
    return [FinishedRun(_summary(row[:count]), *row[count:-1], _seedless_hash(row[-1])) for row in rows]


def _seedless_hash(spec_json: str) -> str:
    # A row stored before records were checked may hold a spec that does not parse: its run is then
    # grouped with no other.
    try:
        return RunSpec.from_dict(json.loads(spec_json)).seedless_hash()
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""


def run_owner(db: sqlite_utils.Database, run_id: str) -> int | None:
    """The process id that last wrote this run while it was running (None once it ended)."""
    ensure_schema(db)
    row = db.execute("SELECT owner_pid FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else row[0]


def live_owner(db: sqlite_utils.Database, run_id: str) -> int | None:
    """The id of the live process running `run_id`, or None when no process is running it."""
    ensure_schema(db)
    return _live_owner(db, run_id)


def _live_owner(db: sqlite_utils.Database, run_id: str) -> int | None:
    row = db.execute("SELECT status, owner_pid FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return row[1] if row is not None and row[0] == "running" and process_alive(row[1]) else None


def delete_run(db: sqlite_utils.Database, run_id: str) -> bool:
    """Remove a run and its per-episode results; False when there was no such run.

    ValueError for a malformed id, and for a run that a live process is running: it would keep
    saving the row and checkpoints deleted under it.
    """
    check_run_id(run_id)
    ensure_schema(db)
    # The write lock first, so no process can claim the run between the check and the delete.
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        owner = _live_owner(db, run_id)
        if owner is not None:
            raise ValueError(
                f"run {run_id} is running in process {owner}; stop it first (Ctrl-C or kill {owner})"
            )
        cursor = db.conn.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
    return cursor.rowcount > 0


def _summary(row: tuple[Any, ...]) -> RunSummary:
    (run_id, status, method, family, protocol, ways, shots, queries, preset, meta_steps, steps_done,
     eval_episodes, seed, accuracy, ci95, transductive, device_name, created_at, finished_at,
     train_time_s, resumable, error, preset_overrides_json, model_selection, tested_step) = row  # fmt: skip
    return RunSummary(
        run_id=run_id,
        status=status,
        method=method,
        family=family,
        protocol=protocol,
        ways=ways,
        shots=shots,
        queries=queries,
        preset=preset,
        meta_steps=meta_steps,
        steps_done=steps_done,
        eval_episodes=eval_episodes,
        seed=seed,
        accuracy=accuracy,
        ci95=ci95,
        transductive=bool(transductive),
        device_name=device_name,
        created_at=created_at,
        finished_at=finished_at,
        train_time_s=train_time_s,
        resumable=bool(resumable),
        error=error,
        preset_overrides=_json_or_none(preset_overrides_json),
        model_selection=model_selection,
        tested_step=tested_step,
    )


def _record_to_row(record: RunRecord, owner_pid: int | None) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "status": record.status,
        "method": record.method,
        "family": record.family,
        "protocol": record.protocol,
        "ways": record.episode.ways,
        "shots": record.episode.shots,
        "queries": record.episode.queries,
        "preset": record.preset,
        "meta_steps": record.meta_steps,
        "eval_episodes": record.eval_episodes,
        "eval_seed": record.eval_seed,
        "eval_batch_size": record.eval_batch_size,
        "seed": record.seed,
        "spec_json": json.dumps(record.spec.to_dict(), sort_keys=True),
        "spec_hash": record.spec_hash,
        "transductive": int(record.transductive),
        "steps_done": record.steps_done,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
        "versions_json": json.dumps(dict(record.versions), sort_keys=True),
        "device_type": record.device_type,
        "device_name": record.device_name,
        "data_digest": record.data_digest,
        "wall_time_s": record.wall_time_s,
        "train_time_s": record.train_time_s,
        "eval_time_s": record.eval_time_s,
        "tasks_per_s": record.tasks_per_s,
        "peak_rss_mb": record.peak_rss_mb,
        "peak_cuda_mb": record.peak_cuda_mb,
        "curve_json": json.dumps([point.to_dict() for point in record.curve]),
        "accuracy": record.accuracy,
        "ci95": record.ci95,
        "error": record.error,
        "resumable": int(record.resumable),
        "owner_pid": owner_pid,
        "test_episodes_digest": record.test_episodes_digest,
        "torch_threads": record.torch_threads,
        "code_version": record.code_version,
        "model_selection": record.model_selection,
        "tested_step": record.tested_step,
        "preset_overrides_json": None
        if record.preset_overrides is None
        else json.dumps(dict(record.preset_overrides), sort_keys=True),
    }


def _row_to_record(row: dict[str, Any], accuracies: tuple[float, ...]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        status=row["status"],
        spec=RunSpec.from_dict(json.loads(row["spec_json"])),
        spec_hash=row["spec_hash"],
        family=row["family"],
        transductive=bool(row["transductive"]),
        eval_seed=row["eval_seed"],
        eval_batch_size=row["eval_batch_size"],
        created_at=row["created_at"],
        steps_done=row["steps_done"],
        finished_at=row["finished_at"],
        versions=json.loads(row["versions_json"]),
        device_type=row["device_type"],
        device_name=row["device_name"],
        data_digest=row["data_digest"],
        wall_time_s=row["wall_time_s"],
        train_time_s=row["train_time_s"],
        eval_time_s=row["eval_time_s"],
        tasks_per_s=row["tasks_per_s"],
        peak_rss_mb=row["peak_rss_mb"],
        peak_cuda_mb=row["peak_cuda_mb"],
        curve=tuple(CurvePoint.from_dict(point) for point in json.loads(row["curve_json"])),
        accuracy=row["accuracy"],
        ci95=row["ci95"],
        episode_accuracies=accuracies,
        error=row["error"],
        resumable=bool(row["resumable"]),
        test_episodes_digest=row["test_episodes_digest"],
        torch_threads=row["torch_threads"],
        code_version=row["code_version"],
        preset_overrides=_json_or_none(row["preset_overrides_json"]),
        model_selection=row["model_selection"],
        tested_step=row["tested_step"],
    )


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
