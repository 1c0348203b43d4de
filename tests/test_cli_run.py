"""`metabench run/runs/methods/leaderboard/export` through Typer's CliRunner and real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metabench.cli.app import app
from metabench.config import EpisodeSpec, RunSpec
from metabench.db import open_database
from metabench.leaderboard import (
    RunRecord,
    build_leaderboards,
    list_runs,
    render_markdown,
    save_record,
    write_record_file,
)
from metabench.leaderboard.stats import mean_ci95

REPO = Path(__file__).resolve().parent.parent
COMMON_KEYS = {"event", "run_id", "step", "total_steps", "loss", "accuracy", "steps_per_s", "eta_s"}


def metabench(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "metabench", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **kwargs,
    )


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_jsonl_events_stream_through_a_real_subprocess(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    process = metabench(
        "run", "pixels-nn", "--preset", "smoke", "--eval-episodes", "30", "--events", "jsonl",
        "--device", "cpu", "--db", str(db), "--results", str(tmp_path / "results"),
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    events = events_of(stdout)  # every stdout line is one JSON object
    assert events[0]["event"] == "started" and events[-1]["event"] == "finished"
    assert all(COMMON_KEYS <= set(event) for event in events)
    assert {event["run_id"] for event in events} == {events[0]["run_id"]}
    finished = events[-1]
    assert finished["episodes"] == 30 and 0 < finished["accuracy"] <= 1 and finished["ci95"] > 0
    testing = [event for event in events if event["event"] == "testing"]
    assert testing[-1]["episodes_done"] == 30
    [summary] = list_runs(open_database(db))
    assert (summary.run_id, summary.status) == (finished["run_id"], "finished")
    assert (tmp_path / "results" / "runs" / f"{summary.run_id}.json").exists()


@pytest.mark.slow
def test_sigterm_interrupts_with_exit_130_and_resume_finishes(tmp_path: Path) -> None:
    db, results = str(tmp_path / "runs.db"), str(tmp_path / "results")
    process = metabench(
        "run", "protonet", "--preset", "smoke", "--meta-steps", "6", "--eval-episodes", "8",
        "--device", "cpu",
        "--events", "jsonl", "--db", db, "--results", results,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    for line in process.stdout:  # wait until training is under way, then cancel as the TUI does
        lines.append(line)
        if json.loads(line)["event"] in ("progress", "validation"):
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=300)
    events = events_of("".join(lines) + stdout)
    assert process.returncode == 130, stderr
    assert events[-1]["event"] == "interrupted" and events[-1]["resumable"] is True
    run_id = events[-1]["run_id"]
    assert f"metabench run --resume {run_id}" in stderr
    [summary] = list_runs(open_database(db))
    assert summary.status == "interrupted" and summary.resumable

    resumed = metabench("run", "--resume", run_id, "--events", "jsonl", "--db", db, "--results", results)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    events = events_of(stdout)
    assert events[0]["event"] == "started" and events[0]["resumed"] is True and events[0]["step"] >= 1
    assert events[-1]["event"] == "finished" and events[-1]["run_id"] == run_id
    assert list_runs(open_database(db))[0].status == "finished"


BAD_ARGS = [
    (["run", "no-such-method"], "unknown method"),
    (["run", "protonet", "--set", "bogus=1"], "unknown key 'bogus'"),
    (["run", "protonet", "--set", "lr=fast"], "expected a value of type float"),
    (["run", "protonet", "--set", "lr"], "--set expects key=value"),
    (["run", "protonet", "--ways", "abc"], "--ways expects a whole number"),
    (["run", "protonet", "--shots", "10", "--queries", "15"], "shots + queries"),
    (["run", "protonet", "--ways", "1"], "at least 2"),
    (["run", "protonet", "--preset", "huge"], "unknown preset"),
    (["run", "protonet", "--protocol", "imagenet"], "unknown protocol"),
    (["run", "protonet", "--events", "xml"], "unknown --events"),
    (["run", "protonet", "--json", "--events", "jsonl"], "choose one"),
    (["run"], "name a method"),
    (["run", "--resume", "nope"], "--resume: 'nope' is not a run id"),
    (["run", "--resume", "protonet-vinyals-5w1s-20260101T000000-abcd"], "no run 'protonet-vinyals"),
    (["run", "protonet", "--resume", "nope"], "drop the method name"),
    (["run", "protonet", "--data", "/nonexistent/omniglot"], "no Omniglot data in /nonexistent/omniglot"),
    (["runs", "show", "nope"], "'nope' is not a run id"),
    (["runs", "rm", "nope"], "'nope' is not a run id"),
    (["runs", "rm", "protonet-vinyals-5w1s-20260101T000000-abcd"], "no run 'protonet-vinyals"),
    (["runs", "list", "--status", "done"], "unknown status"),
    (["export", "--format", "html"], "unknown --format"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_input_is_one_line_exit_1_and_no_run_row(args: list[str], message: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    result = CliRunner().invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert list_runs(open_database(db)) == []


def test_bad_input_in_a_subprocess(tmp_path: Path) -> None:
    """As the TUI sees it: one line on stderr, exit 1, a `failed` event on stdout, and no run row."""
    db = tmp_path / "runs.db"
    # CUDA asked for but absent where there is no GPU; an unknown method where there is one.
    first, message = ("pixels-nn", "error: --device cuda was asked for") if not _cuda_available() else (
        "no-such-method", "error: unknown method"
    )  # fmt: skip
    process = metabench("run", first, "--device", "cuda", "--events", "jsonl", "--db", str(db))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.count("\n") == 1 and stderr.startswith(message) and "Traceback" not in stderr
    [event] = events_of(stdout)
    assert event["event"] == "failed" and event["run_id"] is None and event["error"] in stderr
    assert list_runs(open_database(db)) == []


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def handmade_record(run_id: str, method: str, accuracies: list[float], family: str = "B") -> RunRecord:
    spec = RunSpec(method, episode=EpisodeSpec(5, 1, 15), preset="quick", meta_steps=100, eval_episodes=4)
    return RunRecord(
        run_id=run_id,
        status="finished",
        spec=spec,
        spec_hash=spec.spec_hash(),
        family=family,
        transductive=False,
        eval_seed=7,
        eval_batch_size=25,
        created_at="2026-01-01T00:00:00Z",
        steps_done=100,
        finished_at="2026-01-01T00:10:00Z",
        device_name="CPU",
        accuracy=mean_ci95(accuracies)[0],
        ci95=mean_ci95(accuracies)[1],
        episode_accuracies=tuple(accuracies),
    )


RUN_A = "protonet-vinyals-5w1s-20260101T000000-000a"
RUN_B = "maml-vinyals-5w1s-20260101T000000-000b"


def test_runs_ingest_list_show_rm_and_leaderboard_export(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    results = tmp_path / "results"
    write_record_file(handmade_record(RUN_A, "protonet", [0.9, 0.95, 1.0, 0.85]), results)
    write_record_file(handmade_record(RUN_B, "maml", [0.8, 0.9, 0.85, 0.8], "A"), results)
    (results / "runs" / "junk.json").write_text("[1, 2")
    runner = CliRunner()

    ingest = runner.invoke(app, ["runs", "ingest", str(results), "--db", db])
    assert ingest.exit_code == 1 and "ingested 2 run records" in ingest.stdout  # 1: junk.json refused
    assert ingest.stderr.count("warning: skipping") == 1 and "junk.json" in ingest.stderr

    listed = json.loads(runner.invoke(app, ["runs", "list", "--json", "--db", db]).stdout)
    assert {row["run_id"] for row in listed} == {RUN_A, RUN_B}
    shown = json.loads(runner.invoke(app, ["runs", "show", RUN_A, "--json", "--db", db]).stdout)
    assert shown["episode_accuracies"] == [0.9, 0.95, 1.0, 0.85] and shown["spec"]["method"] == "protonet"
    assert "protonet" in runner.invoke(app, ["runs", "show", RUN_A, "--db", db]).stdout

    boards = json.loads(runner.invoke(app, ["leaderboard", "--json", "--db", db]).stdout)
    assert [row["method"] for row in boards[0]["rows"]] == ["protonet", "maml"]
    assert boards[0]["rows"][0]["published"] == 98.8
    assert "protonet" in runner.invoke(app, ["leaderboard", "--db", db]).stdout

    out = tmp_path / "LEADERBOARD.md"
    exported = runner.invoke(app, ["export", "--out", str(out), "--db", db])
    assert exported.exit_code == 0
    assert out.read_text() == render_markdown(build_leaderboards(open_database(db)))
    assert runner.invoke(app, ["export", "--db", db]).stdout == out.read_text()

    assert runner.invoke(app, ["runs", "rm", RUN_B, "--db", db]).exit_code == 0
    assert [run.run_id for run in list_runs(open_database(db))] == [RUN_A]


def test_methods_lists_every_method_with_its_budgets() -> None:
    result = CliRunner().invoke(app, ["methods", "--json"])
    assert result.exit_code == 0
    methods = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"maml", "fomaml", "protonet", "pretrain", "pixels-nn"} <= set(methods)
    assert set(methods["protonet"]["presets"]) == {"smoke", "quick", "paper"}
    assert methods["maml"]["transductive"] is True and methods["pixels-nn"]["needs_training"] is False
    assert methods["protonet"]["presets"]["quick"]["meta_steps"] > 0
    # MAML's 20-way budget is its own (a 20-way inner step costs four 5-way ones); ProtoNet's is not.
    assert methods["maml"]["presets_20_way"]["quick"] != methods["maml"]["presets"]["quick"]
    assert methods["protonet"]["presets_20_way"] == methods["protonet"]["presets"]
    assert "protonet" in CliRunner().invoke(app, ["methods"]).stdout


def test_run_with_json_prints_the_record(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    args = ["run", "pixels-nn", "--preset", "smoke", "--eval-episodes", "6", "--events", "none", "--json"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--db", str(db), "--results", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    record = RunRecord.from_dict(json.loads(result.stdout))
    assert record.status == "finished" and len(record.episode_accuracies) == 6
    save_record(open_database(db), record)  # idempotent upsert of the same run
    assert len(list_runs(open_database(db))) == 1
