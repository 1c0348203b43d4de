"""`metabench bench methods`: real measurements rendered as JSON rows, bad input as one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from metabench.cli.app import app


def test_bench_methods_reports_both_implementations_as_json() -> None:
    result = CliRunner().invoke(
        app, ["bench", "methods", "maml", "--rounds", "1", "--meta-batch", "2", "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["method"] for row in rows] == ["maml"]
    assert rows[0]["vectorized_tasks_per_s"] > 0 and rows[0]["loop_tasks_per_s"] > 0
    assert rows[0]["tasks_per_step"] == 2
    assert rows[0]["auto"] == "vectorized"  # 5-way 1-shot tasks of 1 query per class on the CPU


def test_bench_methods_says_auto_loops_over_large_tasks_on_the_cpu() -> None:
    args = ["bench", "methods", "maml", "--rounds", "1", "--meta-batch", "2", "--train-queries", "15"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["auto"] == "loop"  # 5 x (1 + 15) = 80 images a task


def test_bench_methods_unknown_method_is_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "methods", "reptil", "--device", "cpu"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "unknown method 'reptil'" in result.stderr
