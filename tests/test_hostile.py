"""Hostile input, table-driven: every case exits non-zero with one line and no traceback, and changes nothing.

Each case runs the real console entry point (`metabench.cli.app.main`) in-process against a copy of one
prepared home: a finished run with its JSON record, an interrupted run with its checkpoint, the real
Omniglot cache. The state of that home (database content, every file's bytes) is compared before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from metabench.catalog.ingest import ensure_catalog
from metabench.cli.app import main
from metabench.config import RunSpec
from metabench.db import open_database
from metabench.leaderboard import get_run, list_runs, read_record_file, save_record
from metabench.runner import CollectingSink, run

FINISHED_SPEC = RunSpec("pixels-nn", preset="smoke", eval_episodes=8, seed=1, device="cpu")
INTERRUPTED_SPEC = RunSpec("protonet", preset="smoke", meta_steps=4, eval_episodes=8, seed=2, device="cpu")
UNKNOWN_ID = "protonet-vinyals-5w1s-20260101T000000-abcd"


class StopAtValidation:
    """Ctrl-C at the first validation: leaves an interrupted, resumable run with a checkpoint."""

    def emit(self, event) -> None:
        if event.kind == "validation":
            raise KeyboardInterrupt


@dataclass
class World:
    """One prepared home: where things are, and the ids of its two runs."""

    home: Path
    finished: str
    interrupted: str

    @property
    def db(self) -> Path:
        return self.home / "metabench.db"

    @property
    def results(self) -> Path:
        return self.home / "results"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, isolated_home: Path) -> World:
    home = tmp_path_factory.mktemp("hostile-world")
    (isolated_home / "cache").mkdir(exist_ok=True)
    os.symlink(isolated_home / "cache", home / "cache")  # the session's decoded Omniglot, shared read-only
    os.environ["METABENCH_HOME"] = str(home)
    try:
        db, results = home / "metabench.db", home / "results"
        finished = run(FINISHED_SPEC, CollectingSink(), db_path=db, results_dir=results)
        interrupted = run(INTERRUPTED_SPEC, StopAtValidation(), db_path=db, results_dir=results)
        catalog = open_database(db)
        ensure_catalog(catalog)  # built on first use otherwise, which would count as a change
        catalog.conn.close()
    finally:
        os.environ["METABENCH_HOME"] = str(isolated_home)
    assert finished.status == "finished" and interrupted.status == "interrupted"
    return World(home, finished.run_id, interrupted.run_id)


@pytest.fixture
def world(prepared: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A private copy of the prepared home, which the process's environment points at."""
    home = tmp_path / "home"
    shutil.copytree(prepared.home, home, symlinks=True)
    monkeypatch.setenv("METABENCH_HOME", str(home))
    monkeypatch.delenv("METABENCH_DB", raising=False)
    monkeypatch.delenv("METABENCH_RESULTS", raising=False)
    return replace(prepared, home=home)


def state(root: Path) -> dict[str, str]:
    """Everything a command could change under `root`: the database's content (the SQL that rebuilds it,
    WAL included) and the bytes of every other file (digest), or the kind of anything that is not a file."""
    snapshot: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink() or path.is_dir():
            snapshot[name] = "link" if path.is_symlink() else "dir"
        elif path.suffix == ".db":
            with sqlite3.connect(path) as conn:
                snapshot[name] = "\n".join(conn.iterdump())
            conn.close()
        elif path.name.endswith(("-wal", "-shm")):
            continue  # their content is in the dump above
        elif path.is_file():
            snapshot[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            snapshot[name] = f"mode {path.stat().st_mode:o}"  # a FIFO or device must stay one
    return snapshot


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    out, err = capsys.readouterr()
    code = stopped.value.code
    return (code if isinstance(code, int) else 1), out, err


# --- setups: each prepares the hostile input in the world and returns extra arguments ----------------


def ingest_folder(record: Callable[[dict], object] | None = None, text: str | None = None):
    """A folder with one record file: the finished run's record changed by `record`, or raw `text`."""

    def setup(world: World) -> list[str]:
        folder = world.home / "incoming"
        folder.mkdir()
        if text is not None:
            (folder / "hostile.json").write_text(text)
        else:
            data = json.loads((world.results / "runs" / f"{world.finished}.json").read_text())
            changed = record(data)
            (folder / "hostile.json").write_text(json.dumps(data if changed is None else changed))
        return [str(folder)]

    return setup


def set_key(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data.__setitem__(key, value)


DEEP = '{"format": 2, "versions": ' + "[" * 100_000 + "]" * 100_000 + "}"  # json.loads: RecursionError


def outside_folder(world: World) -> list[str]:
    """A folder outside the home that a run id must never reach."""
    victim = world.home.parent / "thesis"
    victim.mkdir()
    (victim / "chapter1.tex").write_text("years of work")
    return [str(victim)]


def finished_id(world: World) -> list[str]:
    return [world.finished]


def running_run(world: World) -> list[str]:
    """The interrupted run marked as running in another live process (init, which never ends)."""
    db = open_database(world.db)
    record = get_run(db, world.interrupted)
    save_record(db, replace(record, status="running", resumable=False), owner_pid=1)
    db.conn.close()
    return [world.interrupted]


def flipped_checkpoint(world: World) -> list[str]:
    path = world.home / "checkpoints" / world.interrupted / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(255 - b for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))
    return [world.interrupted]


def fifo(world: World) -> list[str]:
    target = world.home / "board.md"
    os.mkfifo(target)
    return [str(target)]


def directory(world: World) -> list[str]:
    target = world.home / "board.md"
    target.mkdir()
    return [str(target)]


def flipped_zip(world: World) -> list[str]:
    """A verified install in the home's data folder, and a copy of it with one byte flipped mid-member."""
    installed, incoming = world.home / "data" / "omniglot", world.home / "incoming"
    installed.mkdir(parents=True)
    incoming.mkdir()
    real = Path(os.environ["METABENCH_DATA"])  # the real Omniglot, as conftest set it
    for name in ("images_background.zip", "images_evaluation.zip", "all_runs.zip"):
        shutil.copyfile(real / name, installed / name)
        shutil.copyfile(real / name, incoming / name)
    damaged = incoming / "images_background.zip"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    return [str(incoming), "--data", str(installed)]


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    message: str  # a part of the one-line error
    setup: Callable[[World], list[str]] | None = None  # its result is appended to args
    exit_code: int = 1
    prefix: str = "error: "  # ingest names each refused file in a warning and loads the others


BIG = str(2**63)
RUN = ["run", "protonet", "--preset", "smoke", "--device", "cpu"]
CASES = [
    # --- command-line values of `run`: refused before a run exists ---
    Case("seed 2^63", [*RUN, "--seed", BIG], "--seed must be at most"),
    Case("meta-steps 2^63", [*RUN, "--meta-steps", BIG], "--meta-steps must be at most"),
    Case("eval-episodes 2^63", [*RUN, "--eval-episodes", BIG], "--eval-episodes must be at most"),
    Case("negative seed", [*RUN, "--seed", "-1"], "--seed must be a whole number >= 0"),
    Case("lr inf", [*RUN, "--set", "lr=inf"], "--set lr='inf': expected a finite float"),
    Case("lr nan", [*RUN, "--set", "lr=nan"], "--set lr='nan': expected a finite float"),
    Case("lr negative", [*RUN, "--set", "lr=-0.1"], "--set lr='-0.1': lr must be positive"),
    Case("selection unknown", [*RUN, "--set", "model_selection=best"], "one of last, best-validation"),
    Case("hidden 2^40", [*RUN, "--set", f"hidden={2**40}"], "expected a whole number below 2,147,483,648"),
    Case("train_ways over the classes", [*RUN, "--set", "train_ways=5000"], "exceeds the 4112 training"),
    Case("train shots+queries over 20", [*RUN, "--set", "train_queries=20"], "train_shots + train_queries"),
    Case("maml train queries over 20", ["run", "maml", "--set", "train_queries=20"], "train_queries = 21"),
    Case("ways over the classes", [*RUN, "--ways", "5000"], "exceeds the 4112 classes of this split"),
    Case("ways 10^30", [*RUN, "--ways", str(10**30)], "classes of this split"),
    Case("shots+queries over 20", [*RUN, "--shots", "10", "--queries", "11"], "shots + queries = 21"),
    Case("device tpu", [*RUN, "--device", "tpu"], "unknown device 'tpu'"),
    # --- run ids given by hand ---
    Case("resume empty id", ["run", "--resume", ""], "'' is not a run id"),
    Case("resume ../../..", ["run", "--resume", "../../.."], "'../../..' is not a run id"),
    Case("resume a path", ["run", "--resume"], "is not a run id", setup=outside_folder),
    Case("resume a finished run", ["run", "--resume"], "already finished", setup=finished_id),
    Case("resume a running run", ["run", "--resume"], "is still running in process", setup=running_run),
    Case("resume a flipped checkpoint", ["run", "--resume"], "checkpoint", setup=flipped_checkpoint),
    Case("rm empty id", ["runs", "rm", ""], "'' is not a run id"),
    Case("rm a path", ["runs", "rm"], "is not a run id", setup=outside_folder),
    Case("rm ..", ["runs", "rm", ".."], "'..' is not a run id"),
    Case("rm unknown id", ["runs", "rm", UNKNOWN_ID], f"no run '{UNKNOWN_ID}'"),
    Case("rm a running run", ["runs", "rm"], "running", setup=running_run),
    Case("show a path", ["runs", "show", "/etc/passwd"], "is not a run id"),
    # --- other commands' values ---
    Case("leaderboard bogus protocol", ["leaderboard", "--protocol", "bogus"], "unknown --protocol 'bogus'"),
    Case("leaderboard ways 2^63", ["leaderboard", "--ways", BIG], "--ways"),
    Case("bench seconds inf", ["bench", "sampler", "--seconds", "inf"], "--seconds", exit_code=2),
    Case("runs list limit 0", ["runs", "list", "--limit", "0"], "--limit", exit_code=2),
    Case("catalog limit 2^63", ["catalog", "search", "speech", "--limit", BIG], "--limit", exit_code=2),
    Case("catalog list year 10^20", ["catalog", "list", "--year", str(10**20)], "--year", exit_code=2),
    Case("export onto a FIFO", ["export", "--out"], "not a regular file", setup=fifo),
    Case("export onto a folder", ["export", "--out"], "not a regular file", setup=directory),
    # --- records ingested from elsewhere: refused, named with the reason, nothing stored ---
    *(
        Case(f"ingest {name}", ["runs", "ingest"], message, setup=setup, prefix="warning: skipping ")
        for name, setup, message in [
            ("accuracy 500%", ingest_folder(set_key("accuracy", 5.0)), "'accuracy' must be a fraction"),
            ("summary not its episodes", ingest_folder(set_key("accuracy", 0.99)), "is not the mean of"),
            ("forged ci", ingest_folder(set_key("ci95", 0.001)), "is not the interval of its episodes"),
            ("3 episodes of 8", ingest_folder(set_key("episode_accuracies", [1.0, 1.0, 1.0])), "holds 3"),
            ("eval_episodes lots", ingest_folder(set_key("eval_episodes", "lots")), "'eval_episodes'"),
            ("status 7", ingest_folder(set_key("status", 7)), "'status'"),
            ("deep nesting", ingest_folder(text=DEEP), "hostile.json"),
            ("seed 2^63", ingest_folder(set_key("seed", 2**63)), "'seed'"),
            ("id a path", ingest_folder(set_key("run_id", "/home/someone/thesis")), "is not a run id"),
            ("id empty", ingest_folder(set_key("run_id", "")), "'' is not a run id"),
            ("not JSON", ingest_folder(text='{"format": 2,'), "not JSON"),
        ]
    ),
    # --- files metabench did not write ---
    Case("flipped zip over an install", ["data", "import"], "is corrupt", setup=flipped_zip),
    Case(
        "catalog csv onto a FIFO",
        ["catalog", "export", "--format", "csv", "--out"],
        "not a regular",
        setup=fifo,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_command_is_refused_in_one_line_and_changes_nothing(
    case: Case, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*case.args, *(case.setup(world) if case.setup else [])]
    outside = {path: state(path) for path in world.home.parent.iterdir() if path != world.home}
    before = state(world.home)
    code, _out, err = invoke(args, capsys)
    assert code == case.exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(case.prefix), err
    assert case.message in lines[0], lines[0]
    assert "Traceback" not in err
    assert state(world.home) == before
    assert {path: state(path) for path in outside} == outside


# --- faults that need a run in flight ------------------------------------------------------------------


def metabench_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "metabench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class RemoveResultsFolderWhileTesting:
    """Turns <results>/runs into a plain file once testing has begun: the JSON copy then cannot be written,
    as with a full disk or a folder made read-only mid-run."""

    def __init__(self, results: Path) -> None:
        self.runs = results / "runs"
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)
        if event.kind == "testing" and self.runs.is_dir():
            shutil.rmtree(self.runs)
            self.runs.write_text("not a folder")


def test_a_finished_result_survives_when_its_json_copy_cannot_be_written(tmp_path: Path) -> None:
    db, results = tmp_path / "runs.db", tmp_path / "results"
    sink = RemoveResultsFolderWhileTesting(results)
    record = run(FINISHED_SPEC, sink, db_path=db, results_dir=results)
    assert record.status == "finished" and len(record.episode_accuracies) == 8
    stored = get_run(open_database(db), record.run_id)
    assert stored is not None and stored.status == "finished" and stored.accuracy == record.accuracy
    finished = sink.events[-1]
    assert finished.kind == "finished" and finished.record_file is None
    assert f"metabench runs write {record.run_id}" in finished.warning
    # Written again, where the user says, from the database alone.
    (results / "runs").unlink()
    with pytest.raises(SystemExit) as done:
        main(["runs", "write", record.run_id, "--results", str(results), "--db", str(db)])
    assert done.value.code == 0
    assert read_record_file(results / "runs" / f"{record.run_id}.json") == stored


def test_two_resumes_of_one_run_one_goes_ahead_the_other_is_refused(tmp_path: Path) -> None:
    db, results = tmp_path / "runs.db", tmp_path / "results"
    spec = replace(INTERRUPTED_SPEC, meta_steps=10)
    stopped = run(spec, StopAtValidation(), db_path=db, results_dir=results)
    assert stopped.status == "interrupted"
    common = ["--events", "none", "--db", str(db), "--results", str(results)]
    processes = [metabench_process("run", "--resume", stopped.run_id, *common) for _ in range(2)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    refusal = next(err for code, err in outcomes if code == 1).strip()
    assert refusal.startswith("error: ") and len(refusal.splitlines()) == 1
    assert any(reason in refusal for reason in ("still running in process", "just taken", "already finished"))
    final = get_run(open_database(db), stopped.run_id)
    assert final.status == "finished" and final.steps_done == 10 and len(final.episode_accuracies) == 8


def test_sighup_stops_a_run_as_sigterm_does(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    process = metabench_process(
        "run", "protonet", "--preset", "smoke", "--meta-steps", "400", "--eval-episodes", "8",
        "--device", "cpu", "--events", "jsonl", "--db", str(db), "--results", str(tmp_path / "results"),
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line)["event"] == "progress":
            process.send_signal(signal.SIGHUP)
            break
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    [summary] = list_runs(open_database(db))
    assert summary.status == "interrupted" and summary.resumable
