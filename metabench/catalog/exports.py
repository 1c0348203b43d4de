"""Export the catalog as markdown (the survey table and references), CSV, JSON or BibTeX."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import sqlite_utils

from metabench import atomic
from metabench.catalog.bibtex import render_bibtex
from metabench.catalog.model import FAMILIES, FAMILY_LABELS, Cell, Paper, SurveyTable, family_heading
from metabench.catalog.queries import all_papers, all_techniques, list_cells, survey_table
from metabench.errors import MetabenchError

FORMATS = ("markdown", "csv", "json", "bibtex")
SUFFIXES = {"markdown": ".md", "csv": ".csv", "json": ".json", "bibtex": ".bib"}

CSV_COLUMNS = (
    "cite_key",
    "short_cite",
    "title",
    "authors",
    "venue",
    "year",
    "arxiv",
    "url",
    "note",
    "cells",
    "techniques",
)


def cell_lines(cells: Sequence[Cell]) -> list[str]:
    """A table cell as the lecture prints it: A and B citations on one line; C citations grouped
    by subfamily, one line per subfamily, e.g. "Network architecture search: Chen et al., 2020b"."""
    groups: dict[str | None, list[str]] = {}
    for cell in cells:
        groups.setdefault(cell.subfamily, []).append(cell.short_cite)
    return [
        f"{subfamily}: {'; '.join(cites)}" if subfamily else "; ".join(cites)
        for subfamily, cites in groups.items()
    ]


def _md(text: str) -> str:
    """Escape what markdown would read as markup or as a table column break; line breaks (which
    would end a table row or a list item) become spaces."""
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.splitlines())


def _code(text: str) -> str:
    """A code span that stays in its table cell (GitHub reads \\| as a bar inside code spans too)."""
    return "`" + " ".join(text.splitlines()).replace("|", "\\|") + "`"


def _csv_cell(value: object) -> object:
    """A text cell a spreadsheet cannot run: a leading =, +, -, @, tab or carriage return makes
    Excel and LibreOffice read a formula (OWASP "CSV injection"), so it gets a leading quote.
    Numbers (the year) are written as they are: no column holds text that is a number."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def survey_table_markdown(table: SurveyTable) -> str:
    """The survey table as a GitHub markdown table (groups inside a cell separated by <br>)."""
    headings = ["Application", *(family_heading(family) for family in FAMILIES)]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for row in table.rows:
        cells = ["<br>".join(_md(line) for line in cell_lines(row.cells(family))) for family in FAMILIES]
        lines.append("| " + " | ".join([_md(row.application), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _reference_markdown(paper: Paper) -> str:
    year = "" if str(paper.year) in paper.venue else f", {paper.year}"
    parts = [
        f"- **{_md(paper.short_cite)}** (`{paper.cite_key}`). {_md(', '.join(paper.authors))}. "
        f"*{_md(paper.title)}*. {_md(paper.venue)}{year}."
    ]
    arxiv_url = f"https://arxiv.org/abs/{paper.arxiv}" if paper.arxiv else None
    if arxiv_url:
        parts.append(f"[arXiv:{paper.arxiv}]({arxiv_url}).")
    if paper.url and paper.url != arxiv_url:
        parts.append(f"<{paper.url}>")
    if paper.note:
        parts.append(f"Note: {_md(paper.note)}")
    return " ".join(parts)


def export_markdown(db: sqlite_utils.Database) -> str:
    """A document: the survey table, the method papers' techniques and the full reference list."""
    papers = all_papers(db)
    short = {paper.cite_key: paper.short_cite for paper in papers}
    lines = [
        "# Meta-learning for speech and NLP: the survey catalog",
        "",
        "Families: " + "; ".join(f"({f}) {FAMILY_LABELS[f]}" for f in FAMILIES) + ".",
        "",
        survey_table_markdown(survey_table(db)),
        "## Techniques: what each method paper makes learnable",
        "",
        "| Paper | Family | Learnable component | Benchmark method |",
        "|---|---|---|---|",
    ]
    for technique in all_techniques(db):
        method = _code(technique.benchmark_method) if technique.benchmark_method else ""
        lines.append(
            f"| {_md(short[technique.cite_key])} | {_md(technique.family or '')} | "
            f"{_md(technique.learnable_component)} | {method} |"
        )
    lines += ["", "## References", ""]
    lines += [_reference_markdown(paper) for paper in papers]
    return "\n".join(lines) + "\n"


def export_csv(db: sqlite_utils.Database) -> str:
    """One row per paper, with the table cells and techniques that refer to it in two columns; text
    that a spreadsheet would run as a formula is quoted (see _csv_cell)."""
    cells: dict[str, list[str]] = {}
    for cell in list_cells(db):
        where = f"{cell.application} ({cell.family}{': ' + cell.subfamily if cell.subfamily else ''})"
        cells.setdefault(cell.cite_key, []).append(where)
    techniques: dict[str, list[str]] = {}
    for technique in all_techniques(db):
        method = f" [{technique.benchmark_method}]" if technique.benchmark_method else ""
        techniques.setdefault(technique.cite_key, []).append(technique.learnable_component + method)
    out = io.StringIO()
    # CRLF row ends, as RFC 4180 has them: the csv module quotes a cell holding a character of the
    # row end only, and an unquoted carriage return ends the row in every reader.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for paper in all_papers(db):
        record = paper.to_dict()
        record["authors"] = "; ".join(paper.authors)
        record["cells"] = "; ".join(cells.get(paper.cite_key, []))
        record["techniques"] = "; ".join(techniques.get(paper.cite_key, []))
        writer.writerow(
            ["" if record[column] is None else _csv_cell(record[column]) for column in CSV_COLUMNS]
        )
    return out.getvalue()


def export_json(db: sqlite_utils.Database) -> str:
    """Everything, as stable JSON: families, applications (in order), cells, papers, techniques."""
    table = survey_table(db)
    document = {
        "families": {family: FAMILY_LABELS[family] for family in FAMILIES},
        "applications": [row.application for row in table.rows],
        "cells": [cell.to_dict() for cell in list_cells(db)],
        "papers": [paper.to_dict() for paper in all_papers(db)],
        "techniques": [technique.to_dict() for technique in all_techniques(db)],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(db: sqlite_utils.Database, fmt: str) -> str:
    """The catalog in `fmt`: markdown, csv, json or bibtex."""
    renderers = {
        "markdown": export_markdown,
        "csv": export_csv,
        "json": export_json,
        "bibtex": lambda db: render_bibtex(all_papers(db)),
    }
    if fmt not in renderers:
        raise MetabenchError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    return renderers[fmt](db)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename, so a
    reader never sees half a file and a failure leaves any previous file as it was."""
    try:
        atomic.write_text(Path(path), text, make_parents=False)
    except OSError as exc:
        raise MetabenchError(f"cannot write {path} ({exc.strerror or exc}); choose another --out") from exc


def write_export(db: sqlite_utils.Database, fmt: str, out: Path) -> Path:
    """Render the catalog in `fmt` (before touching the disk) and write it atomically to `out`."""
    text = export(db, fmt)
    write_atomically(out, text)
    return Path(out)
