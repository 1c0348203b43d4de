"""Run records as files: atomic writes of <results>/runs/<run_id>.json and ingest of such files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from metabench import atomic
from metabench.leaderboard.records import RunRecord
from metabench.leaderboard.store import save_record
from metabench.runid import check_run_id

# A record of a thousand test episodes is about 60 KB; anything past this is not a run record, and
# parsing it would only cost memory.
MAX_RECORD_BYTES = 64 * 2**20


@dataclass(frozen=True)
class IngestResult:
    """What `ingest_directory` did: the run ids upserted and one warning per skipped file."""

    loaded: tuple[str, ...]
    warnings: tuple[str, ...]


def record_path(results_dir: Path, run_id: str) -> Path:
    """<results>/runs/<run_id>.json; ValueError for a malformed id (it could lead out of the folder)."""
    return results_dir / "runs" / f"{check_run_id(run_id)}.json"


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
    """Parse one record file; ValueError with a one-line reason when it is not a valid record.

    Whatever the file holds (deep nesting, huge numbers, a FIFO, gigabytes) ends in that ValueError.
    """
    try:
        if not path.is_file():
            raise ValueError("not a regular file")
        with path.open("rb") as file:
            raw = file.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES // 2**20} MiB, far beyond any run record")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError:  # json refuses integers of more than 4300 digits
        raise ValueError("holds a number too long to be part of a run record") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a run record") from None
    except MemoryError:
        raise ValueError("too large to parse") from None
    try:
        return RunRecord.from_dict(data)
    except RecursionError:  # a value nested just short of json's limit, shown in an error
        raise ValueError("nested too deeply to be a run record") from None


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
            warnings.append(f"skipping {path}: {_one_line(str(exc))}")
            continue
        save_record(db, record)
        loaded.append(record.run_id)
    return IngestResult(tuple(loaded), tuple(warnings))


def _one_line(text: str) -> str:
    return " ".join(text.split())
