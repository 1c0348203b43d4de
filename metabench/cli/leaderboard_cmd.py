"""`metabench leaderboard` and `metabench export`: ranked results per setting beside the published numbers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from metabench.cli.common import (
    DbOption,
    JsonOption,
    console,
    core_call,
    one_line_errors,
    opened_database,
    percent_ci_text,
    print_json,
)
from metabench.config import TRANSDUCTIVE_MARK
from metabench.errors import MetabenchError

if TYPE_CHECKING:
    from metabench.leaderboard import Leaderboard


AllRunsOption = typer.Option(
    False, "--all", help="Every finished run, not one row per method (seeds still share a row)."
)


def register(app: typer.Typer) -> None:
    """Attach `leaderboard` and `export` to the root app."""
    app.command("leaderboard")(leaderboard_command)
    app.command("export")(export_command)


@one_line_errors
def leaderboard_command(
    protocol: str | None = typer.Option(None, "--protocol", help="Only this protocol."),
    ways: int | None = typer.Option(None, "--ways", help="Only N-way boards."),
    shots: int | None = typer.Option(None, "--shots", help="Only K-shot boards."),
    all_runs: bool = AllRunsOption,
    json_output: bool = JsonOption,
    db: str | None = DbOption,
) -> None:
    """Rank finished runs per setting, beside the published numbers."""
    from metabench.config import PROTOCOLS
    from metabench.leaderboard import build_leaderboards

    if protocol is not None and protocol not in PROTOCOLS:
        raise MetabenchError(f"unknown --protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    for flag, value in (("--ways", ways), ("--shots", shots)):
        # SQLite integers are 64-bit: a larger filter would end in an OverflowError traceback.
        if value is not None and not 1 <= value < 2**63:
            raise MetabenchError(f"{flag} must be a positive whole number below 2**63, got {value}")
    with opened_database(db) as database:
        boards = core_call(lambda: build_leaderboards(database, protocol, ways, shots, all_runs=all_runs))
    if json_output:
        print_json([board.to_dict() for board in boards])
        return
    if not boards:
        console.print("no finished runs match; start one with `metabench run METHOD`")
    for board in boards:
        console.print(_board_table(board))
    if boards:
        console.print(
            f"{TRANSDUCTIVE_MARK} transductive evaluation; seeds: runs that differ only by seed share a row "
            "(mean accuracy, ± 95% CI over the test episodes, sd over the seeds); vs above: paired t-test "
            "over the same test episodes, averaged over the seeds both rows have"
        )
    if any(board.references for board in boards):
        console.print("ref: a published reference, not a run (sources: `metabench export`)")


def _board_table(board: Leaderboard) -> Table:
    """One setting as a rich table: its runs, and its published references marked as such."""
    from metabench.leaderboard import PublishedReference
    from metabench.leaderboard.markdown import format_duration

    error_rate = board.setting.reports_error_rate
    table = Table("#", title=board.setting.title, title_justify="left")
    table.add_column("method", no_wrap=True)  # names are what the reader scans for: never cut them
    columns = ("accuracy %", *(["error %"] if error_rate else []), "seeds", "published %", "diff", "vs above")
    for column in columns:
        table.add_column(column)
    table.add_column("budget")
    table.add_column("device", overflow="fold")
    table.add_column("train", no_wrap=True)
    for entry in board.entries():
        if isinstance(entry, PublishedReference):
            cells = [
                "ref",
                entry.name,
                f"{entry.accuracy:.1f}",
                *([f"{entry.error:.1f}"] if error_rate else []),
            ]
            cells += ["", "reference", "", "", "", "", ""]
            table.add_row(*(Text(cell) for cell in cells), style="italic dim")
            continue
        row = entry
        versus = "-" if row.p_value_vs_above is None else (
            f"{'significant' if row.significant_vs_above else 'n.s.'} p={row.p_value_vs_above:.3f}"
            + (f" ({row.versus_note})" if row.versus_note else "")
        )  # fmt: skip
        table.add_row(
            str(row.rank),
            row.method + (f" {TRANSDUCTIVE_MARK}" if row.transductive else ""),
            percent_ci_text(row.accuracy, row.ci95),
            *([f"{100.0 - row.accuracy:.2f}"] if error_rate else []),
            row.seeds_text,
            "none published"
            if row.published is None and row.published_paper
            else percent_ci_text(row.published, row.published_ci),
            "-" if row.difference is None else f"{row.difference:+.2f}",
            versus,
            Text(row.budget),  # Text, not markup: a record's strings are data, never styling
            Text(row.device),
            format_duration(row.train_time_s),
        )
    return table


@one_line_errors
def export_command(
    fmt: str = typer.Option("markdown", "--format", help="Output format: markdown."),
    out: Path | None = typer.Option(None, "--out", help="Write to FILE (atomically) instead of stdout."),
    all_runs: bool = AllRunsOption,
    db: str | None = DbOption,
) -> None:
    """Export every leaderboard as one markdown document."""
    from metabench import atomic
    from metabench.leaderboard import build_leaderboards, render_markdown

    if fmt != "markdown":
        raise MetabenchError(f"unknown --format {fmt!r}; the only format is markdown")
    with opened_database(db) as database:
        document = render_markdown(core_call(lambda: build_leaderboards(database, all_runs=all_runs)))
    if out is None:
        typer.echo(document, nl=False)
        return
    try:
        atomic.write_text(out, document)
    except OSError as exc:
        raise MetabenchError(f"cannot write {out}: {exc.strerror}; choose another --out") from None
    typer.echo(f"wrote {out}", err=True)
