"""`metabench catalog`: ingest, list, search, show, table, facets and export the survey catalog."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from metabench.cli.common import DbOption, JsonOption, console, err_console, one_line_errors, print_json
from metabench.errors import MetabenchError

if TYPE_CHECKING:
    import sqlite_utils

    from metabench.catalog import Cell

# The catalog core (and sqlite-utils, which pulls in numpy) is imported inside each command, so
# that `metabench tui`, `metabench run` and `--help` do not pay for it at start-up.

app = typer.Typer(
    help="The survey catalog of meta-learning in speech and NLP: 12 applications x the three "
    "families ([bold](A)[/] learning to initialize, [bold](B)[/] learning to compare, [bold](C)[/] "
    "other), the papers behind every cell, and the method papers the benchmark implements. "
    "The first command on a new database loads the bundled catalog by itself.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

# Typer's rich help keeps the line breaks of every paragraph but the first, so each command's
# docstring is one paragraph and its one-line summary for the command list is short_help.


class TableFormat(StrEnum):
    text = "text"
    markdown = "markdown"


class ExportFormat(StrEnum):
    markdown = "markdown"
    csv = "csv"
    json = "json"
    bibtex = "bibtex"


def _catalog_db(db_path: Path | None) -> sqlite_utils.Database:
    """Open the database and make sure the catalog is loaded (first use ingests the bundled one)."""
    from metabench import catalog
    from metabench.db import open_database

    db = open_database(db_path)
    catalog.ensure_catalog(db)
    return db


def _cells_table(cells: list[Cell]) -> Table:
    table = Table(title=f"{len(cells)} table cell{'s' if len(cells) != 1 else ''}", title_justify="left")
    for heading in ("Application", "Family", "Subfamily", "Citation", "Title", "Year", "Venue", "Key"):
        table.add_column(heading, overflow="fold")
    for cell in cells:
        table.add_row(
            *map(escape, (cell.application, cell.family, cell.subfamily or "", cell.short_cite, cell.title)),
            str(cell.year),
            escape(cell.venue),
            escape(cell.cite_key),
        )
    return table


@app.command("ingest", short_help="Check the catalog files and load them into the database.")
@one_line_errors
def ingest_command(
    source: Path | None = typer.Argument(
        None,
        help="Folder holding applications.csv, cells.csv, papers.csv and techniques.csv "
        "(default: the catalog bundled with metabench).",
        show_default=False,
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Check the catalog source files and load them into the database in one transaction.
    Re-running changes nothing; rows gone from the files are removed. A problem in a file is
    reported as [bold]FILE:LINE: problem[/] and leaves the database as it was.
    """
    from metabench import catalog
    from metabench.db import open_database

    report = catalog.ingest(open_database(db), source)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"Catalog from [bold]{escape(str(report.source))}[/]: {report.applications} applications, "
        f"{report.cells} cells, {report.papers} papers, {report.techniques} techniques; "
        f"{report.inserted} inserted, {report.updated} updated, {report.deleted} deleted."
    )


@app.command("list", short_help="List the survey table's cells, filtered.")
@one_line_errors
def list_command(
    application: str | None = typer.Option(
        None, "--application", "-a", help="Only this application (a row of the table, any case)."
    ),
    family: str | None = typer.Option(None, "--family", "-f", help="Only this family: A, B or C."),
    year: int | None = typer.Option(
        None, "--year", "-y", min=1, max=9999, help="Only papers published in this year."
    ),
    venue: str | None = typer.Option(None, "--venue", help="Only papers whose venue contains this text."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List the survey table's cells (one citation per line) in table order, filtered by
    application, family, year or venue. Example: [bold]metabench catalog list --family C --json[/]
    """
    from metabench import catalog

    cells = catalog.list_cells(
        _catalog_db(db), application=application, family=family, year=year, venue=venue
    )
    if as_json:
        print_json([cell.to_dict() for cell in cells])
    else:
        console.print(_cells_table(cells))


@app.command("search", short_help="Full-text search over the papers, best match first.")
@one_line_errors
def search_command(
    query: str = typer.Argument(..., help="Words to find in titles, authors, venues, applications, notes."),
    limit: int = typer.Option(
        50, "--limit", "-n", min=1, max=1_000_000, help="Show at most this many papers."
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Full-text search over the papers (titles, authors, venues, applications, notes,
    techniques), best match first (bm25). Every word must match, as a word or the start of one
    ("proto" finds Prototypical); accents are optional ("Serra" finds Serrà). Quotes and
    operators are searched as plain text.
    """
    from metabench import catalog

    papers = catalog.search_papers(_catalog_db(db), query, limit=limit)
    if as_json:
        print_json([paper.to_dict() for paper in papers])
        return
    table = Table(title=f"{len(papers)} paper{'s' if len(papers) != 1 else ''}", title_justify="left")
    for heading in ("#", "Citation", "Title", "Year", "Venue", "Key"):
        table.add_column(heading, overflow="fold")
    for rank, paper in enumerate(papers, start=1):
        table.add_row(
            str(rank),
            escape(paper.short_cite),
            escape(paper.title),
            str(paper.year),
            escape(paper.venue),
            escape(paper.cite_key),
        )
    console.print(table)


@app.command("show", short_help="Show one paper, its table cells and techniques.")
@one_line_errors
def show_command(
    cite_key: str = typer.Argument(..., help="The paper's cite key, e.g. finn2017model."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one paper: its full record, the table cells it appears in and its techniques."""
    from metabench import catalog

    database = _catalog_db(db)
    record = catalog.get_paper(database, cite_key)
    if record is None:
        close = catalog.closest_cite_key(database, cite_key)
        hint = f"did you mean {close}? " if close else ""
        raise MetabenchError(
            f"no paper with cite key '{cite_key}'; {hint}find keys with `metabench catalog search WORDS`"
        )
    if as_json:
        print_json(record.to_dict())
        return
    paper = record.paper
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column(overflow="fold")
    for label, value in (
        ("Title", paper.title),
        ("Authors", ", ".join(paper.authors)),
        ("Venue", paper.venue),
        ("Year", str(paper.year)),
        ("Citation", paper.short_cite),
        ("arXiv", paper.arxiv or ""),
        ("URL", paper.url or ""),
        ("Note", paper.note or ""),
    ):
        if value:
            details.add_row(label, escape(value))
    console.print(f"[bold]{escape(paper.cite_key)}[/]")
    console.print(details)
    if record.cells:
        console.print(_cells_table(list(record.cells)))
    if record.techniques:
        techniques = Table(title="Techniques", title_justify="left")
        for heading in ("Learnable component", "Family", "Benchmark method"):
            techniques.add_column(heading)
        for technique in record.techniques:
            techniques.add_row(
                escape(technique.learnable_component),
                technique.family or "",
                escape(technique.benchmark_method or "-"),
            )
        console.print(techniques)


@app.command("table", short_help="The survey table: applications x families (A), (B), (C).")
@one_line_errors
def table_command(
    fmt: TableFormat = typer.Option(
        TableFormat.text, "--format", help="text: a table for the terminal; markdown: to paste anywhere."
    ),
    db: Path | None = DbOption,
) -> None:
    """The survey table itself, citations as the lecture prints them. Rows are the 12
    applications; columns (A) learning to initialize, (B) learning to compare and
    (C) other, where each (C) citation follows what is learned, e.g. "Network architecture search:
    Chen et al., 2020b".
    """
    from metabench import catalog
    from metabench.catalog.exports import cell_lines

    survey = catalog.survey_table(_catalog_db(db))
    if fmt is TableFormat.markdown:
        sys.stdout.write(catalog.survey_table_markdown(survey))
        return
    table = Table(title="Meta-learning for speech and NLP", show_lines=True, title_justify="left")
    table.add_column("Application", style="bold", overflow="fold")
    for family in catalog.FAMILIES:
        table.add_column(catalog.family_heading(family), overflow="fold")
    for row in survey.rows:
        table.add_row(
            escape(row.application),
            *("\n".join(escape(line) for line in cell_lines(row.cells(f))) for f in catalog.FAMILIES),
        )
    console.print(table)


@app.command("facets", short_help="Counts by family, application, year and venue.")
@one_line_errors
def facets_command(db: Path | None = DbOption, as_json: bool = JsonOption) -> None:
    """Count the table's cells (and distinct papers) by family, application, year and venue."""
    from metabench import catalog

    counts = catalog.facets(_catalog_db(db))
    if as_json:
        print_json(counts.to_dict())
        return
    console.print(
        f"{counts.total_cells} cells citing {counts.total_table_papers} papers; "
        f"{counts.total_papers} papers in the catalog."
    )
    for title, items in (
        ("Family", counts.families),
        ("Application", counts.applications),
        ("Year", counts.years),
        ("Venue", counts.venues),
    ):
        table = Table(title=f"By {title.lower()}", title_justify="left")
        table.add_column(title)
        table.add_column("Cells", justify="right")
        table.add_column("Papers", justify="right")
        for item in items:
            label = catalog.family_heading(item.value) if title == "Family" else item.value
            table.add_row(escape(label), str(item.cells), str(item.papers))
        console.print(table)


@app.command("export", short_help="Export as markdown, CSV, JSON or BibTeX.")
@one_line_errors
def export_command(
    fmt: ExportFormat = typer.Option(
        ExportFormat.markdown,
        "--format",
        help="markdown (table, techniques, references), csv (one row "
        "per paper), json (everything) or bibtex (one entry per paper).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Write to this file (atomically) instead of standard output.",
        dir_okay=False,
    ),
    db: Path | None = DbOption,
) -> None:
    """Export the whole catalog: markdown (table, techniques, references), csv (one row per
    paper), json (everything) or bibtex (one entry per paper). Example:
    [bold]metabench catalog export --format bibtex --out refs.bib[/]
    """
    from metabench import catalog

    database = _catalog_db(db)
    if out is None:
        sys.stdout.write(catalog.export(database, fmt.value))
        return
    path = catalog.write_export(database, fmt.value, out)
    err_console.print(f"wrote {fmt.value} to {escape(str(path))}")
