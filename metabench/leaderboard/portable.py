"""Run records as files: atomic writes of <results>/runs/<run_id>.json and ingest of such files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from metabench import atomic
from metabench.leaderboard.records import RunRecord
from metabench.leaderboard.store import save_record


@dataclass(frozen=True)
class IngestResult:
    """What `ingest_directory` did: the run ids upserted and one warning per skipped file."""

    loaded: tuple[str, ...]
    warnings: tuple[str, ...]


def record_path(results_dir: Path, run_id: str) -> Path:
    return results_dir / "runs" / f"{run_id}.json"


def write_record_file(record: RunRecord, results_dir: Path) -> Path:
    """Write the record as indented, key-sorted JSON (stable diffs when committed) and return its path.

    The per-episode accuracies go last, on one line: a thousand numbers one per line would bury
    the rest of the record.
    """
    data = record.to_dict()
    episodes = data.pop("episode_accuracies")
    text = json.dumps(data, indent=2, sort_keys=True)
    text = text[: text.rindex("}")].rstrip() + f',\n  "episode_accuracies": {json.dumps(episodes)}\n}}\n'
    path = record_path(results_dir, record.run_id)
    atomic.write_text(path, text)
    return path


def read_record_file(path: Path) -> RunRecord:
    """Parse one record file; ValueError with a one-line reason when it is not a valid record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    return RunRecord.from_dict(data)


def ingest_directory(db: sqlite_utils.Database, directory: Path) -> IngestResult:
    """Upsert every valid *.json record under `directory` (recursively); skip the others with a warning."""
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory; pass the folder that holds the run records")
    loaded: list[str] = []
    warnings: list[str] = []
    for path in sorted(directory.rglob("*.json")):
        try:
            record = read_record_file(path)
        except ValueError as exc:
            warnings.append(f"skipping {path}: {exc}")
            continue
        save_record(db, record)
        loaded.append(record.run_id)
    return IngestResult(tuple(loaded), tuple(warnings))
