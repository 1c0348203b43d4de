"""Exports never replace a FIFO or device, keep markdown tables whole and carry no spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from pathlib import Path

import pytest
import sqlite_utils
from typer.testing import CliRunner

from metabench import atomic, catalog
from metabench.cli.app import app
from metabench.config import PROTOCOLS
from metabench.db import open_database
from metabench.leaderboard import Leaderboard, LeaderboardRow, Setting, render_markdown

UNESCAPED_BAR = re.compile(r"(?<!\\)\|")


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def assert_still_a_fifo(path: Path) -> None:
    assert stat.S_ISFIFO(path.stat().st_mode)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left


@pytest.mark.parametrize("kind", ["fifo", "symlink to a fifo", "folder"])
def test_atomic_writes_refuse_a_target_that_is_not_a_regular_file(fifo: Path, kind: str) -> None:
    target = fifo if kind == "fifo" else fifo.with_name("other")
    if kind == "symlink to a fifo":
        target.symlink_to(fifo)
    if kind == "folder":
        target.mkdir()
    with pytest.raises(atomic.NotARegularFileError, match="it exists and is not a regular file"):
        atomic.write_text(target, "replaced")
    assert_still_a_fifo(fifo)
    assert target.is_dir() if kind == "folder" else stat.S_ISFIFO(target.stat().st_mode)


@pytest.mark.parametrize("command", [["export"], ["catalog", "export", "--format", "csv"]])
@pytest.mark.parametrize("through_symlink", [False, True], ids=["fifo", "symlink to a fifo"])
def test_export_onto_a_fifo_is_refused_in_one_line(
    tmp_path: Path, fifo: Path, command: list[str], through_symlink: bool
) -> None:
    target = fifo
    if through_symlink:
        target = tmp_path / "link"
        target.symlink_to(fifo)
    result = CliRunner().invoke(app, [*command, "--out", str(target), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: cannot write {target}") and result.stderr.count("\n") == 1
    assert "it exists and is not a regular file" in result.stderr and "choose another --out" in result.stderr
    assert_still_a_fifo(fifo)
    assert target.is_symlink() == through_symlink


def hostile_row() -> LeaderboardRow:
    return LeaderboardRow(
        rank=1,
        method="evil|method\nsecond line",
        family="B",
        accuracy=97.5,
        ci95=0.3,
        seeds=(0,),
        seed_accuracies=(97.5,),
        seed_sd=None,
        episodes=100,
        published=98.1,
        published_ci=None,
        published_paper="Paper | with a bar\nand a break",
        published_note=None,
        difference=-0.6,
        p_value_vs_above=None,
        significant_vs_above=None,
        versus_note="matched | on\nseed 0",
        preset="quick",
        meta_steps=1000,
        budget="quick, 1000 steps",
        device="GPU | one\r\nline",
        train_time_s=12.0,
        transductive=False,
        run_id="run|id\nx",
        run_ids=("run|id\nx",),
        finished_at=None,
    )


def test_leaderboard_markdown_escapes_every_cell() -> None:
    document = render_markdown([Leaderboard(Setting("vinyals", 5, 1, 15, 100, 1234), (hostile_row(),))])
    lines = document.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| # |"))
    table = lines[start : lines.index("", start)]
    assert len(table) == 3  # header, separator, the one row: no line break split the row
    assert {len(UNESCAPED_BAR.findall(line)) for line in table} == {13}  # 12 columns everywhere
    row = table[2]
    assert "evil\\|method second line" in row and "`run\\|id x`" in row and "GPU \\| one line" in row
    assert "1. evil|method second line: Paper | with a bar and a break" in document.splitlines()


@pytest.fixture()
def catalog_db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_database(tmp_path / "catalog.db")
    catalog.ensure_catalog(database)
    yield database
    database.conn.close()


def test_catalog_markdown_tables_survive_bars_and_line_breaks(catalog_db: sqlite_utils.Database) -> None:
    def table_lines(document: str) -> list[str]:
        """Every line with a column break; a row cut in two leaves one that does not start with a bar."""
        return [line for line in document.splitlines() if UNESCAPED_BAR.search(line)]

    clean = table_lines(catalog.export(catalog_db, "markdown"))
    # finn2017model sits in table cells and has a technique implemented here (maml).
    for table, column, value in [
        ("papers", "short_cite", "Finn |\net al."),
        ("techniques", "benchmark_method", "ma|ml\nx"),
    ]:
        catalog_db.execute(
            f"UPDATE catalog_{table} SET {column} = ? WHERE cite_key = 'finn2017model'", [value]
        )
    catalog_db.conn.commit()
    hostile = table_lines(catalog.export(catalog_db, "markdown"))
    assert len(hostile) == len(clean)
    assert all(line.startswith("|") for line in hostile)
    assert {len(UNESCAPED_BAR.findall(line)) for line in hostile} == {5}  # both tables have 4 columns
    assert any("Finn \\| et al." in line for line in hostile)
    assert any("`ma\\|ml x`" in line for line in hostile)


FORMULAS = {
    "title": '=HYPERLINK("http://example.com","click")',
    "venue": "+1+cmd|' /C calc'!A0",
    "note": "@SUM(A1:A9)",
    "url": "-2+3",
    "arxiv": "\t=1+1",
    "short_cite": "\r=1+1",
}


def test_catalog_csv_neutralizes_spreadsheet_formulas(catalog_db: sqlite_utils.Database) -> None:
    assignments = ", ".join(f"{column} = ?" for column in FORMULAS)
    catalog_db.execute(
        f"UPDATE catalog_papers SET {assignments} WHERE cite_key = 'finn2017model'", list(FORMULAS.values())
    )
    catalog_db.conn.commit()
    rows = {row["cite_key"]: row for row in csv.DictReader(io.StringIO(catalog.export(catalog_db, "csv")))}
    finn = rows["finn2017model"]
    assert {column: finn[column] for column in FORMULAS} == {
        column: "'" + value for column, value in FORMULAS.items()
    }
    # Numbers are numbers: the year is written as it is; ordinary text is untouched.
    assert finn["year"] == "2017"
    assert rows["nichol2018first"]["title"] == "On First-Order Meta-Learning Algorithms"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "bogus"], "unknown --protocol 'bogus'; choose one of: " + ", ".join(PROTOCOLS)),
        (["--ways", "0"], "--ways must be a positive whole number below 2**63, got 0"),
        (["--shots", "-1"], "--shots must be a positive whole number below 2**63, got -1"),
        (["--ways", str(2**63)], f"--ways must be a positive whole number below 2**63, got {2**63}"),
    ],
    ids=["unknown protocol", "zero ways", "negative shots", "ways past 64 bits"],
)
def test_leaderboard_filters_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["leaderboard", *args, "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {message}\n"
