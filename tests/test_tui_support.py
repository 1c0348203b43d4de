"""Helpers the TUI tests share (wait for workers, read tables), and tests of the TUI's pure logic.

The helpers live in a test module because conftest.py belongs to the whole suite; the other
test_tui_*.py files import them from here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.worker import WorkerCancelled

COMMITTED_RUNS = Path(__file__).resolve().parent.parent / "results" / "runs"


async def settle(pilot: Pilot, quiet_rounds: int = 2) -> None:
    """Let the short workers (database reads) finish and their messages be handled.

    Repeats until `quiet_rounds` rounds in a row find no worker to wait for, since a worker's result
    may start another worker a frame later. Live runs (group "runs") are left running; a worker
    superseded by a newer exclusive one ends cancelled, which is how it should end.
    """
    quiet = 0
    for _ in range(100):
        pending = [w for w in pilot.app.workers if w.group != "runs" and not w.is_finished]
        for worker in pending:
            try:
                await worker.wait()
            except WorkerCancelled:
                pass
        await pilot.pause()
        quiet = 0 if pending else quiet + 1
        if quiet >= quiet_rounds:
            return


async def wait_until(
    pilot: Pilot, condition: Callable[[], bool], timeout: float = 60.0, what: str = ""
) -> None:
    """Poll `condition` while the app runs (for subprocesses and timers); fail after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or condition}")
        await pilot.pause(0.1)


def column_text(table: DataTable, column: str) -> list[str]:
    """The plain text of one column, top to bottom, as displayed."""
    values = []
    for index in range(table.row_count):
        row_key = table.coordinate_to_cell_key((index, 0)).row_key
        cell = table.get_cell(row_key, column)
        rendered = cell.__rich__() if hasattr(cell, "__rich__") else cell
        values.append(rendered.plain if isinstance(rendered, Text) else str(rendered))
    return values


def row_keys(table: DataTable) -> list[str]:
    """The row keys in display order."""
    return [table.coordinate_to_cell_key((index, 0)).row_key.value for index in range(table.row_count)]


def ingest_committed_runs(path: Path) -> Path:
    """A database at `path` holding every run record committed under results/runs (real runs, whose ids,
    times and devices are fixed, so the screens that show them can be snapshotted)."""
    from metabench.db import open_database
    from metabench.leaderboard import ingest_directory

    db = open_database(path)
    try:
        result = ingest_directory(db, COMMITTED_RUNS)
    finally:
        db.close()
    assert len(result.loaded) >= 40 and not result.warnings
    return path


def private_copy(source: Path, copy: Path) -> Path:
    """A copy of a database that a test may change (SQLite's backup API copies a WAL database whole)."""
    with sqlite3.connect(source) as reader, sqlite3.connect(copy) as writer:
        reader.backup(writer)
    return copy


# --- the pure logic behind the screens -----------------------------------------------------------


def test_form_validation_names_each_problem():
    from metabench.methods.registry import all_cards
    from metabench.tui.run_process import validate_form

    cards = {card.name: card for card in all_cards()}
    good = {"method": "protonet", "protocol": "vinyals", "ways": "5", "shots": "1", "queries": "15",
            "preset": "smoke", "device": "cpu", "seed": "0", "options": ""}  # fmt: skip
    assert validate_form(good, cards) == {}
    assert validate_form(good, None) == {}  # method list still loading: no complaint yet
    errors = validate_form({**good, "ways": "1", "shots": "6", "queries": "15", "seed": "-1"}, None)
    assert errors == {"seed": "seed must be a whole number"}  # the numbers are read before their rules
    errors = validate_form({**good, "ways": "1", "shots": "6", "queries": "15"}, None)
    assert errors["ways"] == "--ways must be at least 2 for a classification task, got 1"
    assert "shots + queries = 21 but Omniglot has only 20" in errors["queries"]
    assert validate_form({**good, "shots": "", "method": "nope"}, cards) == {
        "method": "unknown method 'nope'",
        "shots": "shots must be a whole number",
    }
    assert "protocol" in validate_form({**good, "protocol": "omniglot"}, None)


def test_the_form_refuses_what_the_run_refuses_from_the_same_rules():
    from metabench.config import parse_overrides
    from metabench.errors import MetabenchError
    from metabench.methods.registry import all_cards
    from metabench.spec_rules import resolve_spec
    from metabench.tui.run_process import _spec, validate_form

    cards = {card.name: card for card in all_cards()}
    good = {"method": "pixels-nn", "protocol": "lake-runs", "ways": "20", "shots": "1", "queries": "1",
            "preset": "smoke", "device": "cpu", "seed": "0", "options": ""}  # fmt: skip
    assert validate_form(good, cards) == {}
    refused = [
        ({"ways": "5", "queries": "15"}, "ways", "protocol lake-runs tests on fixed 20w1s tasks"),
        ({"method": "protonet", "options": "lr=-1"}, "options", "lr must be positive"),
        ({"method": "protonet", "options": "bogus=1"}, "options", "unknown key 'bogus'"),
        ({"method": "protonet", "options": "lr"}, "options", "--set expects key=value"),
    ]
    for change, field, message in refused:
        values = {**good, **change}
        errors = validate_form(values, cards)
        assert list(errors) == [field] and message in errors[field], (change, errors)
        if field == "options" and "=" not in values["options"]:
            continue  # the CLI refuses that one while parsing --set, before any spec exists
        numbers = {name: int(values[name]) for name in ("ways", "shots", "queries", "seed")}
        spec = _spec(values, numbers, parse_overrides(values["options"].split()))
        with pytest.raises(MetabenchError) as refusal:  # the run refuses it with the same words
            resolve_spec(spec)
        assert message in str(refusal.value)


def test_events_fold_into_a_snapshot():
    from metabench.tui.run_process import LiveRun, parse_event

    assert parse_event(b"loading data...\n") is None
    assert parse_event('{"no_event": 1}') is None
    live = LiveRun(key=1, title="protonet")
    live.apply(parse_event('{"event": "started", "run_id": "r1", "total_steps": 10}'))
    for step in range(1, 6):
        live.apply({"event": "progress", "step": step, "total_steps": 10, "loss": 2.0 / step,
                    "accuracy": 0.1 * step, "steps_per_s": 5.0, "eta_s": 10 - step,
                    "metrics": {"lr": 0.001, "meta_grad_norm": step, "broken": "x"}})  # fmt: skip
    snapshot = live.snapshot()
    assert snapshot.metrics == (("lr", 0.001), ("meta_grad_norm", 5.0))  # the method's own, latest values
    assert (snapshot.run_id, snapshot.status, snapshot.step, snapshot.fraction) == ("r1", "running", 5, 0.5)
    assert snapshot.losses == ((1, 2.0), (2, 1.0), (3, 2.0 / 3), (4, 0.5), (5, 0.4))
    assert snapshot.accuracies[-1] == (5, 0.5)
    live.apply({"event": "validation", "step": 5, "accuracy": 0.75})
    assert live.snapshot().val_accuracies == ((5, 0.75),)
    live.apply({"event": "interrupted", "run_id": "r1", "step": 5})
    assert live.snapshot().resumable and live.snapshot().done


def test_a_run_that_dies_silently_fails_with_its_last_meaningful_stderr_line():
    from metabench.tui.run_process import LiveRun

    live = LiveRun(key=2, title="maml")
    live.process_exited(
        1, ["Traceback (most recent call last):", '  File "x.py"', "ValueError: bad shots", ""]
    )
    assert (live.status, live.error) == ("failed", "ValueError: bad shots")
    typer_panel = LiveRun(key=3, title="x")
    typer_panel.process_exited(2, ["╭─ Error ─────╮", "│ No such option: --bogus │", "╰─────────────╯"])
    assert typer_panel.error == "No such option: --bogus"
    finished = LiveRun(key=4, title="y")
    finished.apply({"event": "finished", "accuracy": 0.9, "ci95": 0.01, "episodes": 100})
    finished.process_exited(0, [])
    assert finished.status == "finished" and finished.error is None


def test_long_curves_are_thinned_evenly():
    from metabench.tui.run_process import CURVE_POINTS, Curve

    curve = Curve()
    for step in range(10 * CURVE_POINTS):
        curve.append(step, float(step))
    assert len(curve.points) <= CURVE_POINTS
    gaps = {b[0] - a[0] for a, b in zip(curve.points, curve.points[1:], strict=False)}
    assert gaps == {curve.stride}  # evenly spaced in steps
    assert all(step == value for step, value in curve.points)


def test_run_command_line_matches_the_runner_interface(tmp_path):
    import sys

    from metabench.tui.run_process import RunRequest, resume_command, run_command

    argv = run_command(
        RunRequest("protonet", ways=20, shots=5, preset="quick", device="cpu", seed=3), tmp_path / "x.db"
    )
    assert argv[:5] == [sys.executable, "-m", "metabench", "run", "protonet"]
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options == {"--protocol": "vinyals", "--ways": "20", "--shots": "5", "--queries": "15",
                       "--preset": "quick", "--device": "cpu", "--seed": "3", "--events": "jsonl",
                       "--db": str(tmp_path / "x.db")}  # fmt: skip
    assert resume_command("abc", tmp_path / "x.db")[3:] == ["run", "--resume", "abc", "--events", "jsonl",
                                                             "--db", str(tmp_path / "x.db")]  # fmt: skip


def test_formatting():
    from metabench.tui import formatting as fmt

    assert fmt.fraction_ci(0.987, 0.004) == "98.70 ± 0.40"
    assert fmt.percent_ci(98.7, None) == "98.70"
    assert fmt.fraction_ci(None, 0.1) == "-"
    assert [fmt.duration(s) for s in (None, 4.4, 185, 7800)] == ["-", "4s", "3m05s", "2h10m"]
    assert fmt.signed(-2.1) == "-2.10" and fmt.signed(0.31) == "+0.31"
