"""`metabench bench tui`: real launches in a pseudo-terminal, reported (never asserted) as times."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from metabench.bench.tui_startup import parse_size, time_to_first_frame
from metabench.cli.app import app


def test_bench_tui_times_both_programs_and_leaves_them_closed() -> None:
    result = CliRunner().invoke(app, ["bench", "tui", "--repeat", "1", "--size", "80x24", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["program"] for row in rows] == ["metabench tui", "Textual baseline"]
    for row in rows:
        assert len(row["seconds"]) == 1 and 0 < row["median"] == row["seconds"][0]


def test_a_program_that_never_draws_the_marker_is_reported_not_waited_on_forever() -> None:
    with pytest.raises(RuntimeError, match="exited before drawing 'never'.*hello"):
        time_to_first_frame([sys.executable, "-c", "print('hello')"], "never")
    with pytest.raises(TimeoutError, match="drew no 'never' within 1 s"):
        # A program that never draws but leaves on `q`, as a TUI does (so the test need not wait out
        # the kill's grace period).
        waits = "import sys, tty; tty.setraw(0); sys.stdin.read(1)"
        time_to_first_frame([sys.executable, "-c", waits], "never", timeout=1)


@pytest.mark.parametrize("text", ["80", "80x", "axb", "10x5", ""])
def test_bad_sizes_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="COLUMNSxLINES"):
        parse_size(text)
    result = CliRunner().invoke(app, ["bench", "tui", "--size", text or "x"])
    assert result.exit_code == 1 and "COLUMNSxLINES" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sizes_parse() -> None:
    assert parse_size("120x40") == (120, 40) and parse_size(" 80x24 ") == (80, 24)
