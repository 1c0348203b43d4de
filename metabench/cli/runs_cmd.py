"""`metabench runs list|show|rm|ingest` and `metabench methods`: the run history and the method registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.table import Table

from metabench import paths
from metabench.cli.common import (
    DbOption,
    JsonOption,
    accuracy_text,
    console,
    core_call,
    one_line_errors,
    opened_database,
    percent_text,
    print_json,
)
from metabench.config import TRANSDUCTIVE_MARK
from metabench.errors import MetabenchError

SHOWN_FIELDS = (
    "run_id", "status", "method", "family", "protocol", "preset", "meta_steps", "steps_done",
    "eval_episodes", "seed", "spec_hash", "device_name", "torch_threads", "data_digest",
    "test_episodes_digest", "code_version", "created_at", "finished_at", "train_time_s", "wall_time_s",
    "tasks_per_s", "peak_rss_mb", "peak_cuda_mb", "error",
)  # fmt: skip

runs_app = typer.Typer(help="List, show, delete and ingest benchmark runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach `runs` to the root app."""
    app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@one_line_errors
def runs_list(
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int | None = typer.Option(None, "--limit", min=1, max=1_000_000, help="At most this many runs."),
    json_output: bool = JsonOption,
    db: str | None = DbOption,
) -> None:
    """List runs, newest first."""
    from dataclasses import asdict

    from metabench.leaderboard import list_runs

    with opened_database(db) as database:
        runs = core_call(lambda: list_runs(database, limit=limit, status=status))
    if json_output:
        print_json([asdict(run) for run in runs])
        return
    table = Table("run", "status", "method", "setting", "preset", "steps", "accuracy %", "device", "created")
    for run in runs:
        table.add_row(
            run.run_id,
            run.status,
            run.method,
            f"{run.protocol} {run.setting}",
            run.preset,
            f"{run.steps_done}/{run.meta_steps}",
            accuracy_text(run.accuracy, run.ci95)
            + (f" {TRANSDUCTIVE_MARK}" if run.transductive and run.accuracy is not None else ""),
            run.device_name,
            run.created_at,
        )
    console.print(table if runs else "no runs yet: start one with `metabench run METHOD`")


@runs_app.command("show")
@one_line_errors
def runs_show(
    run_id: str = typer.Argument(...), json_output: bool = JsonOption, db: str | None = DbOption
) -> None:
    """Show one run: spec, environment, learning curve and result."""
    from metabench.leaderboard import get_run

    with opened_database(db) as database:
        record = core_call(lambda: get_run(database, run_id))
    if record is None:
        raise MetabenchError(f"no run {run_id!r}; see `metabench runs list`")
    if json_output:
        print_json(record.to_dict())
        return
    data = record.to_dict()
    for key in SHOWN_FIELDS:
        if data[key] not in (None, ""):  # unknown in older records
            console.print(f"[bold]{key:>14}[/] {data[key]}", highlight=False)
    console.print(f"[bold]{'setting':>14}[/] {record.episode.label}, {record.episode.queries} queries")
    console.print(f"[bold]{'overrides':>14}[/] {dict(record.spec.overrides) or '-'}")
    console.print(f"[bold]{'budget':>14}[/] {record.budget}")
    console.print(f"[bold]{'versions':>14}[/] {dict(record.versions)}", highlight=False)
    if record.accuracy is not None:
        mark = " (transductive)" if record.transductive else ""
        console.print(f"[bold]{'accuracy':>14}[/] {accuracy_text(record.accuracy, record.ci95)} %{mark}")
    if record.curve:
        table = Table("step", "loss", "train acc %", "val acc %", title="learning curve")
        for point in record.curve:
            table.add_row(
                str(point.step),
                "-" if point.loss is None else f"{point.loss:.4f}",
                percent_text(point.train_accuracy),
                percent_text(point.val_accuracy),
            )
        console.print(table)


@runs_app.command("rm")
@one_line_errors
def runs_rm(run_id: str = typer.Argument(...), db: str | None = DbOption) -> None:
    """Delete a run from the database with its checkpoints (JSON records under results/ stay).

    A run that a live process is running is refused: stop it first.
    """
    from metabench.leaderboard import delete_run
    from metabench.runid import run_folder

    # Checked before anything is deleted: the id becomes a path, and that path must stay inside.
    checkpoints = core_call(lambda: run_folder(paths.checkpoints_dir(), run_id))
    with opened_database(db) as database:
        if not core_call(lambda: delete_run(database, run_id)):
            raise MetabenchError(f"no run {run_id!r}; see `metabench runs list`")
    shutil.rmtree(checkpoints, ignore_errors=True)
    console.print(f"deleted {run_id}")


@runs_app.command("write")
@one_line_errors
def runs_write(
    run_id: str = typer.Argument(...),
    results: str | None = typer.Option(None, "--results", metavar="DIR", help="Where run records go."),
    db: str | None = DbOption,
) -> None:
    """Write a run's JSON record (<results>/runs/<run_id>.json) again from the database."""
    from metabench.leaderboard import get_run, write_record_file

    with opened_database(db) as database:
        record = core_call(lambda: get_run(database, run_id))
    if record is None:
        raise MetabenchError(f"no run {run_id!r}; see `metabench runs list`")
    try:
        path = write_record_file(record, paths.results_dir(results))
    except OSError as exc:
        raise MetabenchError(f"cannot write the record: {exc.strerror or exc}; pass --results DIR") from None
    console.print(f"wrote {path}", highlight=False)


@runs_app.command("ingest")
@one_line_errors
def runs_ingest(
    directory: Path = typer.Argument(..., help="Folder of run records, e.g. results/."),
    db: str | None = DbOption,
) -> None:
    """Load run records (*.json, searched recursively) into the database, replacing same run ids.

    Each file is checked against the record schema; a refused one is named with its reason, the
    others are loaded, and the exit code is 1 when any was refused.
    """
    from metabench.leaderboard import ingest_directory

    with opened_database(db) as database:
        outcome = core_call(lambda: ingest_directory(database, directory))
    for warning in outcome.warnings:
        typer.echo(f"warning: {warning}", err=True)
    console.print(f"ingested {len(outcome.loaded)} run records from {directory}", highlight=False)
    if outcome.warnings:  # the good records are in; a script still learns that some were refused
        raise typer.Exit(1)
