"""Exports: BibTeX that parses back, markdown with the whole table, CSV and JSON round-trips, atomic --out."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
import sqlite_utils

from metabench import catalog
from metabench.catalog.bibtex import latex_escape
from metabench.catalog.exports import write_atomically
from metabench.db import open_database
from metabench.errors import MetabenchError


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> sqlite_utils.Database:
    database = open_database(tmp_path_factory.mktemp("exports") / "catalog.db")
    catalog.ensure_catalog(database)
    return database


def parse_bibtex(text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """A minimal BibTeX reader: `@type{key, name = {value}, ...}` with balanced braces.

    Returns key -> (type, fields); fails on unbalanced braces, a duplicate key or field, or text
    outside entries other than whitespace.
    """
    entries: dict[str, tuple[str, dict[str, str]]] = {}
    pos = 0
    while True:
        gap_end = text.find("@", pos)
        gap = text[pos:] if gap_end == -1 else text[pos:gap_end]
        assert gap.strip() == "", f"stray text between entries: {gap.strip()[:60]!r}"
        if gap_end == -1:
            return entries
        head = re.compile(r"@(\w+)\{([^,\s{}]+),").match(text, gap_end)
        assert head, f"bad entry header at {text[gap_end : gap_end + 40]!r}"
        kind, key = head.group(1).lower(), head.group(2)
        pos, fields = head.end(), {}
        while True:
            pos = _skip_space(text, pos)
            if text[pos] == "}":
                pos += 1
                break
            name_match = re.compile(r"(\w+)\s*=\s*").match(text, pos)
            assert name_match, f"bad field in {key} at {text[pos : pos + 40]!r}"
            name = name_match.group(1).lower()
            pos = name_match.end()
            assert text[pos] == "{", f"{key}.{name} is not braced"
            value, pos = _braced(text, pos)
            assert name not in fields, f"duplicate field {name} in {key}"
            fields[name] = value
            pos = _skip_space(text, pos)
            if text[pos] == ",":
                pos += 1
        assert key not in entries, f"duplicate key {key}"
        entries[key] = (kind, fields)


def _skip_space(text: str, pos: int) -> int:
    while text[pos].isspace():
        pos += 1
    return pos


def _braced(text: str, pos: int) -> tuple[str, int]:
    """The content of the brace group opening at `pos` (escaped braces do not count)."""
    depth, start = 0, pos + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            pos += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:pos], pos + 1
        pos += 1
    raise AssertionError("unbalanced braces")


def test_bibtex_parses_back_with_one_entry_per_paper(db: sqlite_utils.Database) -> None:
    papers = {paper.cite_key: paper for paper in catalog.search_papers(db, "")}
    entries = parse_bibtex(catalog.export(db, "bibtex"))
    assert len(entries) == 76
    assert set(entries) == set(papers)
    for key, (kind, fields) in entries.items():
        paper = papers[key]
        assert kind in {"inproceedings", "article", "misc"}
        assert {"author", "title", "year"} <= set(fields)
        assert fields["year"] == str(paper.year)
        assert fields["author"].count(" and ") == len(paper.authors) - 1
        assert fields.get("eprint") == paper.arxiv
        assert ("archiveprefix" in fields) == (paper.arxiv is not None)
        assert fields.get("url") == paper.url
        assert fields["title"] == "{" + latex_escape(paper.title) + "}"


def test_bibtex_entry_details(db: sqlite_utils.Database) -> None:
    entries = parse_bibtex(catalog.export(db, "bibtex"))
    kind, finn = entries["finn2017model"]
    assert kind == "inproceedings"
    assert finn["booktitle"] == "ICML 2017 (PMLR 70)"
    assert finn["pages"] == "1126--1135"
    assert finn["eprint"] == "1703.03400" and finn["archiveprefix"] == "arXiv"
    assert entries["nichol2018first"][0] == "misc"
    assert entries["nichol2018first"][1]["howpublished"] == "arXiv preprint arXiv:1803.02999"
    assert entries["lake2015human"][0] == "article"
    assert entries["lake2015human"][1]["doi"] == "10.1126/science.aab3050"
    assert "eprint" not in entries["chien2019meta"][1] and "url" not in entries["chien2019meta"][1]
    # Special characters are escaped, accents become LaTeX commands.
    assert r"Scientific \& Engineering" in entries["baruwa2019leveraging"][1]["journal"]
    assert r"Serr{\`a}" in entries["serra2019blow"][1]["author"]
    assert r"Ond{\v{r}}ej Klejch" in entries["klejch2018learning"][1]["author"]
    assert entries["shimada2020b"][1]["note"].startswith("The lecture cites")


def test_latex_escape_handles_every_special_character() -> None:
    assert latex_escape("50% & $5 #1 a_b {x} ~ ^ \\") == (
        r"50\% \& \$5 \#1 a\_b \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{}"
    )
    assert latex_escape("Gómez Surís Mané Aäron ß") == r"G{\'o}mez Sur{\'i}s Man{\'e} A{\"a}ron {\ss}"
    assert latex_escape("日本") == "日本"


def markdown_rows(markdown: str) -> dict[str, list[str]]:
    """Application -> its [A, B, C] cells, from the markdown survey table."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Application"):
            application, *cells = [part.strip() for part in line.strip("|").split(" | ")]
            rows[application] = cells
    return rows


def test_markdown_table_has_every_application_and_citation_in_its_column(db: sqlite_utils.Database) -> None:
    markdown = catalog.survey_table_markdown(catalog.survey_table(db))
    header = markdown.splitlines()[0]
    assert header == "| Application | (A) Learning to initialize | (B) Learning to compare | (C) Other |"
    rows = markdown_rows(markdown)
    assert list(rows) == catalog.application_names(db)
    assert len(rows) == 12
    found = 0
    for cell in catalog.list_cells(db):
        text = rows[cell.application]["ABC".index(cell.family)]
        assert cell.short_cite in text
        if cell.subfamily:
            assert f"{cell.subfamily}: " in text
        found += 1
    assert found == 50
    speech_c = rows["Speech Recognition"][2]
    assert speech_c == (
        "Learning to optimize: Klejch et al., 2018<br>"
        "Network architecture search: Chen et al., 2020b; Baruwa et al., 2019"
    )


def test_markdown_export_has_table_techniques_and_references(db: sqlite_utils.Database) -> None:
    markdown = catalog.export(db, "markdown")
    assert catalog.survey_table_markdown(catalog.survey_table(db)) in markdown
    assert "## Techniques" in markdown and "`lstm-optimizer`" in markdown
    references = [line for line in markdown.splitlines() if line.startswith("- **")]
    assert len(references) == 76
    assert any("(`finn2017model`)" in line and "arXiv:1703.03400" in line for line in references)


def test_csv_export_round_trips(db: sqlite_utils.Database) -> None:
    rows = list(csv.DictReader(io.StringIO(catalog.export(db, "csv"))))
    assert len(rows) == 76
    by_key = {row["cite_key"]: row for row in rows}
    assert by_key["shi2020few"]["cells"] == "Sound Event Detection (A); Sound Event Detection (B)"
    assert by_key["li2017meta"]["techniques"].endswith("[meta-sgd]")
    assert by_key["serra2019blow"]["authors"].startswith("Joan Serrà; ")
    assert by_key["chien2019meta"]["url"] == ""
    assert by_key["mo2020neural"]["cells"] == "Keyword Spotting (C: Network architecture search)"


def test_json_export_is_complete_and_stable(db: sqlite_utils.Database) -> None:
    text = catalog.export(db, "json")
    assert text == catalog.export(db, "json")
    document = json.loads(text)
    assert len(document["applications"]) == 12
    assert len(document["cells"]) == 50
    assert len(document["papers"]) == 76
    assert len(document["techniques"]) == 27
    assert document["families"] == {"A": "Learning to initialize", "B": "Learning to compare", "C": "Other"}
    assert sum(cell["family"] == "C" for cell in document["cells"]) == 12


def test_unknown_format_is_a_clean_error(db: sqlite_utils.Database) -> None:
    with pytest.raises(MetabenchError, match="unknown export format 'docx'; choose one of: markdown"):
        catalog.export(db, "docx")


def test_write_export_replaces_atomically(db: sqlite_utils.Database, tmp_path: Path) -> None:
    out = tmp_path / "refs.bib"
    out.write_text("old content", encoding="utf-8")
    catalog.write_export(db, "bibtex", out)
    assert len(parse_bibtex(out.read_text(encoding="utf-8"))) == 76
    assert [path.name for path in tmp_path.iterdir()] == ["refs.bib"]  # no temporary left behind


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    (target / "inside").write_text("keep", encoding="utf-8")
    with pytest.raises(MetabenchError, match="cannot write"):
        write_atomically(target, "text")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-directory"]
    with pytest.raises(MetabenchError, match="cannot write"):
        write_atomically(tmp_path / "missing" / "x.md", "text")


def test_written_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    write_atomically(out, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
