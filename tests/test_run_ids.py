"""Run ids are never trusted as paths: `runs rm/show/write`, ingest and the database check them first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_leaderboard import make_record, run_id_of
from typer.testing import CliRunner

from metabench.cli.app import app
from metabench.db import open_database
from metabench.leaderboard import delete_run, get_run, list_runs, save_record, write_record_file
from metabench.leaderboard.store import live_owner
from metabench.process import process_alive


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A private METABENCH_HOME with one stored run and its checkpoint folder."""
    monkeypatch.setenv("METABENCH_HOME", str(tmp_path / "home"))
    record = make_record("000a", "protonet", 0.9, episodes=8)
    database = open_database(tmp_path / "home" / "metabench.db")
    save_record(database, record)
    database.conn.close()
    (tmp_path / "home" / "checkpoints" / record.run_id).mkdir(parents=True)
    (tmp_path / "home" / "checkpoints" / record.run_id / "checkpoint.pt").write_bytes(b"weights")
    return tmp_path / "home"


RUN = run_id_of("protonet", "000a")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr and "Traceback" not in result.output


def stored_runs(home: Path) -> list[str]:
    database = open_database(home / "metabench.db")
    try:
        return [run.run_id for run in list_runs(database)]
    finally:
        database.conn.close()


def test_a_path_ingested_as_run_id_is_refused_and_rm_of_it_deletes_nothing(home, tmp_path) -> None:
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    data = make_record("000b", "protonet", 0.9, episodes=8).to_dict()
    records = tmp_path / "records"
    records.mkdir()
    for name, run_id in (("path.json", str(thesis)), ("empty.json", ""), ("up.json", "../../..")):
        (records / name).write_text(json.dumps({**data, "run_id": run_id}))
    ingest = invoke("runs", "ingest", str(records))
    assert ingest.exit_code == 1 and "ingested 0 run records" in ingest.stdout
    assert ingest.stderr.count("is not a run id") == 3
    for run_id in (str(thesis), "", "../../..", f"{RUN}/..", "."):
        assert_one_line_error(invoke("runs", "rm", run_id), "is not a run id (expected METHOD-PROTOCOL-")
        assert_one_line_error(invoke("runs", "show", run_id), "is not a run id")
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    assert (home / "checkpoints" / RUN / "checkpoint.pt").exists()
    assert stored_runs(home) == [RUN]


def test_rm_deletes_the_run_and_only_its_checkpoint_folder(home) -> None:
    other = home / "checkpoints" / run_id_of("maml", "000b")
    other.mkdir()
    result = invoke("runs", "rm", RUN)
    assert result.exit_code == 0 and f"deleted {RUN}" in result.stdout
    assert not (home / "checkpoints" / RUN).exists() and other.exists()
    assert stored_runs(home) == []
    assert_one_line_error(invoke("runs", "rm", RUN), "no run")


def test_rm_refuses_a_checkpoint_folder_that_links_outside(home, tmp_path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    link = home / "checkpoints" / run_id_of("maml", "000c")
    link.symlink_to(outside, target_is_directory=True)
    save = make_record("000c", "maml", 0.8, family="A", episodes=8)
    database = open_database(home / "metabench.db")
    save_record(database, save)
    database.conn.close()
    assert_one_line_error(invoke("runs", "rm", save.run_id), "leads outside")
    assert (outside / "keep.txt").exists() and save.run_id in stored_runs(home)


def test_rm_of_a_running_run_is_refused_while_its_process_lives(home) -> None:
    database = open_database(home / "metabench.db")
    running = make_record("000a", "protonet", 0.9, episodes=8, status="running")
    save_record(database, running, owner_pid=os.getpid())  # this test process: alive
    assert live_owner(database, RUN) == os.getpid()
    database.conn.close()
    assert_one_line_error(invoke("runs", "rm", RUN), f"is running in process {os.getpid()}; stop it first")
    assert stored_runs(home) == [RUN] and (home / "checkpoints" / RUN / "checkpoint.pt").exists()
    # Once its process is gone (killed without a chance to record it), the run can be removed.
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    database = open_database(home / "metabench.db")
    save_record(database, running, owner_pid=int(ended.stdout))
    assert live_owner(database, RUN) is None
    database.conn.close()
    assert invoke("runs", "rm", RUN).exit_code == 0 and stored_runs(home) == []


def test_the_database_refuses_malformed_ids(home) -> None:
    database = open_database(home / "metabench.db")
    for bad in ("", "/etc", "../x", RUN + "/..", "protonet-vinyals-5w1s-20260101T100000-00a"):
        with pytest.raises(ValueError, match="is not a run id"):
            get_run(database, bad)
        with pytest.raises(ValueError, match="is not a run id"):
            delete_run(database, bad)
    forged = make_record("000a", "protonet", 0.9, episodes=8)
    with pytest.raises(ValueError, match="is not a run id"):
        save_record(database, replace(forged, run_id="/tmp/x"))
    database.conn.close()
    assert stored_runs(home) == [RUN]


def test_process_alive_names_only_one_live_process() -> None:
    assert process_alive(os.getpid())
    for value in (0, -1, None, True, "1", 2**80):
        assert not process_alive(value)  # 0 and -1 would probe whole process groups


def test_runs_write_rewrites_the_json_record(home, tmp_path) -> None:
    result = invoke("runs", "write", RUN, "--results", str(tmp_path / "out"))
    path = tmp_path / "out" / "runs" / f"{RUN}.json"
    assert result.exit_code == 0 and str(path) in result.stdout.replace("\n", "")
    assert json.loads(path.read_text())["run_id"] == RUN
    assert_one_line_error(invoke("runs", "write", "../x", "--results", str(tmp_path)), "is not a run id")


def test_write_record_file_refuses_a_path_as_run_id(tmp_path) -> None:
    record = make_record("000a", "protonet", 0.9, episodes=8)
    forged = replace(record, run_id="../../escape")
    with pytest.raises(ValueError, match="is not a run id"):
        write_record_file(forged, tmp_path / "results")
    assert not (tmp_path / "escape.json").exists()


def test_methods_json_lists_every_config_key_with_type_and_default() -> None:
    result = invoke("methods", "--json")
    methods = {row["name"]: row for row in json.loads(result.stdout)}
    config = {
        name: {key: row[key] for key in ("type", "default")}
        for name, row in methods["maml"]["config"].items()
    }
    assert config["inner_lr"] == {"type": "float", "default": 0.4}
    assert config["train_queries"] == {"type": "int", "default": 1}  # paper: = shots
    assert methods["protonet"]["config"]["train_ways"]["default"] == 60
    assert list(methods["pixels-nn"]["config"]) == ["metric"]
    assert methods["maml"]["presets"]["quick"]["config"]["meta_lr"] == 0.003
    for row in methods.values():
        assert row["config"] and all(
            {"type", "default", "help", "rule"} <= set(v) for v in row["config"].values()
        )
