"""Runs in SQLite, ranked per setting beside the published numbers, rendered as markdown (no torch, no UI).

The API the front ends use: list_runs, get_run, delete_run, build_leaderboards, render_markdown,
ingest_directory, write_record_file, and the typed records (RunRecord, RunSummary, Leaderboard).
Accuracies in records are fractions; leaderboard rows are in percent, like the papers. Every record
that enters (ingest, save_record) is checked against the one schema in records.py.
"""

from __future__ import annotations

from metabench.leaderboard.markdown import render_markdown
from metabench.leaderboard.portable import (
    IngestResult,
    ingest_directory,
    read_record_file,
    write_record_file,
)
from metabench.leaderboard.published import (
    PublishedReference,
    PublishedResult,
    find_published,
    load_published,
    load_references,
)
from metabench.leaderboard.ranking import Leaderboard, LeaderboardRow, Setting, build_leaderboards
from metabench.leaderboard.record_schema import STATUSES
from metabench.leaderboard.records import (
    RECORD_FORMAT,
    CurvePoint,
    RunRecord,
    RunSummary,
    budget_text,
)
from metabench.leaderboard.stats import PairedTest, mean_ci95, paired_t_test
from metabench.leaderboard.store import (
    delete_run,
    ensure_schema,
    get_run,
    list_runs,
    live_owner,
    save_record,
)

__all__ = [
    "RECORD_FORMAT",
    "STATUSES",
    "CurvePoint",
    "IngestResult",
    "Leaderboard",
    "LeaderboardRow",
    "PairedTest",
    "PublishedReference",
    "PublishedResult",
    "RunRecord",
    "RunSummary",
    "Setting",
    "budget_text",
    "build_leaderboards",
    "delete_run",
    "ensure_schema",
    "find_published",
    "get_run",
    "ingest_directory",
    "list_runs",
    "live_owner",
    "load_published",
    "load_references",
    "mean_ci95",
    "paired_t_test",
    "read_record_file",
    "render_markdown",
    "save_record",
    "write_record_file",
]
