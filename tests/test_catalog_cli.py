"""`metabench catalog ...` through Typer's CliRunner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metabench.catalog.source import SOURCE_FILES, bundled_source_dir
from metabench.cli.app import app
from metabench.cli.common import console

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def runner() -> Iterator[CliRunner]:
    # The shared rich console sized itself (80 columns) at import; widen it so table cells do not
    # wrap mid-phrase in the captured output.
    saved = console._width
    console.width = 250
    try:
        yield CliRunner()
    finally:
        console._width = saved


@pytest.fixture()
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


def invoke(runner: CliRunner, db_path: str, *args: str):
    return runner.invoke(app, ["catalog", *args, "--db", db_path])


def dump(db_path: str) -> str:
    """The database's content (not its bytes: a WAL checkpoint may rewrite the file unchanged)."""
    connection = sqlite3.connect(db_path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def broken_catalog(tmp_path: Path) -> Path:
    """A copy of the catalog whose cells.csv line 3 has an unknown family."""
    copy = tmp_path / "broken"
    copy.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(bundled_source_dir() / name, copy / name)
    cells = copy / "cells.csv"
    lines = cells.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(",B,,", ",X,,")
    cells.write_text("".join(lines), encoding="utf-8")
    return copy


def test_list_family_c_json_is_exactly_the_twelve_c_cells(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "list", "--family", "C", "--json")
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)
    assert len(cells) == 12
    assert {cell["family"] for cell in cells} == {"C"}
    assert set(cells[0]) == {
        "application",
        "family",
        "subfamily",
        "cite_key",
        "short_cite",
        "title",
        "year",
        "venue",
    }
    assert cells[0]["subfamily"] == "Network architecture search"


def test_list_filters_and_rich_table(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "list", "--application", "Knowledge Graph", "--family", "B", "--json")
    assert [cell["cite_key"] for cell in json.loads(result.stdout)] == [
        "ye2019multi",
        "chen2019a",
        "xiong2018one",
        "gao2019hybrid",
    ]
    result = invoke(runner, db_path, "list", "--year", "2018", "--venue", "EMNLP")
    assert result.exit_code == 0
    assert "3 table cells" in result.stdout and "Gu et al., 2018" in result.stdout


def test_list_unknown_family_is_a_one_line_error(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "list", "--family", "Z")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unknown family 'Z'; choose A, B or C"
    assert result.stdout == ""


def test_search_json_and_hostile_text(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "search", "prototypical", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["cite_key"] == "snell2017prototypical"
    for query in ['"', "NEAR(", "OR NOT", "(*", "'"]:
        result = invoke(runner, db_path, "search", query)
        assert result.exit_code == 0, (query, result.output)
    result = invoke(runner, db_path, "search", "keyword spotting", "--limit", "2", "--json")
    assert len(json.loads(result.stdout)) == 2


def test_show_full_record(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "show", "shi2020few")
    assert result.exit_code == 0
    for text in (
        "Few-shot acoustic event detection",
        "Bowen Shi",
        "ICASSP 2020",
        "2002.09143",
        "Sound Event",
    ):
        assert text in result.stdout
    record = json.loads(invoke(runner, db_path, "show", "finn2017model", "--json").stdout)
    assert record["paper"]["arxiv"] == "1703.03400"
    assert record["techniques"] == [
        {
            "cite_key": "finn2017model",
            "learnable_component": "initialization",
            "family": "A",
            "benchmark_method": "maml",
        }
    ]


def test_show_unknown_key_suggests_search(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "show", "fin2017model")
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert "\n" not in message
    assert message.startswith("error: no paper with cite key 'fin2017model'; did you mean finn2017model?")
    assert "metabench catalog search" in message


def test_table_text_and_markdown(runner: CliRunner, db_path: str) -> None:
    result = invoke(runner, db_path, "table")
    assert result.exit_code == 0
    assert "(A) Learning" in result.stdout and "Dialogue / Chatbot" in result.stdout
    markdown = invoke(runner, db_path, "table", "--format", "markdown").stdout
    assert markdown.splitlines()[0].startswith("| Application | (A) Learning to initialize")
    assert len(markdown.splitlines()) == 2 + 12


def test_facets(runner: CliRunner, db_path: str) -> None:
    facets = json.loads(invoke(runner, db_path, "facets", "--json").stdout)
    assert [(f["value"], f["cells"]) for f in facets["families"]] == [("A", 21), ("B", 17), ("C", 12)]
    assert facets["totals"] == {"cells": 50, "table_papers": 49, "papers": 76}
    text = invoke(runner, db_path, "facets").stdout
    assert "By venue" in text and "ICASSP" in text


def test_export_every_format_to_stdout_and_file(runner: CliRunner, db_path: str, tmp_path: Path) -> None:
    for fmt, marker in (
        ("markdown", "## References"),
        ("csv", "cite_key,short_cite"),
        ("bibtex", "@inproceedings{"),
    ):
        result = invoke(runner, db_path, "export", "--format", fmt)
        assert result.exit_code == 0 and marker in result.stdout
    out = tmp_path / "catalog.json"
    result = invoke(runner, db_path, "export", "--format", "json", "--out", str(out))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert len(json.loads(out.read_text(encoding="utf-8"))["papers"]) == 76


def test_export_to_a_missing_folder_fails_cleanly(runner: CliRunner, db_path: str, tmp_path: Path) -> None:
    result = invoke(
        runner, db_path, "export", "--format", "bibtex", "--out", str(tmp_path / "no" / "refs.bib")
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write ")
    assert not (tmp_path / "no").exists()


def test_ingest_reports_and_is_idempotent(runner: CliRunner, db_path: str) -> None:
    first = json.loads(invoke(runner, db_path, "ingest", "--json").stdout)
    assert (first["applications"], first["cells"], first["papers"], first["techniques"]) == (12, 50, 76, 27)
    assert first["inserted"] == 165
    second = json.loads(invoke(runner, db_path, "ingest", "--json").stdout)
    assert (second["inserted"], second["updated"], second["deleted"]) == (0, 0, 0)
    assert "0 inserted, 0 updated, 0 deleted" in invoke(runner, db_path, "ingest").stdout


def test_ingest_broken_dir_is_one_line_and_changes_nothing(
    runner: CliRunner, db_path: str, tmp_path: Path
) -> None:
    invoke(runner, db_path, "ingest")
    before = dump(db_path)
    broken = broken_catalog(tmp_path)
    result = invoke(runner, db_path, "ingest", str(broken))
    assert result.exit_code == 1
    assert result.stderr == f"error: {broken / 'cells.csv'}:3: unknown family 'X' (expected A, B or C)\n"
    assert dump(db_path) == before


def test_a_file_that_is_not_a_database_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    bogus = tmp_path / "not.db"
    bogus.write_bytes(b"this is not sqlite at all" * 100)
    result = invoke(runner, str(bogus), "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_real_subprocess_table_and_broken_ingest(tmp_path: Path) -> None:
    """The installed entry point, from an unrelated cwd, with METABENCH_HOME from the test session."""
    # Prepended, not replaced: the dependencies may themselves come from PYTHONPATH (a device machine).
    python_path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(python_path))
    assert "METABENCH_HOME" in env
    command = [sys.executable, "-m", "metabench", "catalog"]
    table = subprocess.run(
        [*command, "table", "--format", "markdown"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 14 and "Multi-model" in lines[-1]
    broken = broken_catalog(tmp_path)
    failed = subprocess.run(
        [*command, "ingest", str(broken)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"error: {broken / 'cells.csv'}:3: unknown family 'X' (expected A, B or C)"
    ]
