"""`metabench run`, `runs`, `methods`, `leaderboard`, `export`: thin commands over runner and leaderboard."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from metabench import paths
from metabench.cli.common import DbOption, JsonOption, console, err_console, fail, one_line_errors, print_json
from metabench.config import EpisodeSpec, RunSpec, parse_overrides
from metabench.errors import MetabenchError

EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT-terminated command

SHOWN_FIELDS = (
    "run_id", "status", "method", "family", "protocol", "preset", "meta_steps", "steps_done",
    "eval_episodes", "seed", "spec_hash", "device_name", "data_digest", "created_at", "finished_at",
    "train_time_s", "wall_time_s", "tasks_per_s", "peak_rss_mb", "peak_cuda_mb", "error",
)  # fmt: skip

runs_app = typer.Typer(help="List, show, delete and ingest benchmark runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the benchmark commands to the root app."""
    app.command("run")(run_command)
    app.add_typer(runs_app, name="runs")
    app.command("methods")(methods_command)
    app.command("leaderboard")(leaderboard_command)
    app.command("export")(export_command)


# --- run ---------------------------------------------------------------------------------------


@one_line_errors
def run_command(
    method: str | None = typer.Argument(None, help="Method to benchmark (see `metabench methods`)."),
    protocol: str = typer.Option(
        "vinyals", "--protocol", help="Omniglot protocol: vinyals, lake, lake-within or lake-runs."
    ),
    ways: str = typer.Option("5", "--ways", metavar="N", help="Classes per task."),
    shots: str = typer.Option("1", "--shots", metavar="K", help="Support examples per class."),
    queries: str = typer.Option("15", "--queries", metavar="Q", help="Query examples per class."),
    preset: str = typer.Option("quick", "--preset", help="Budget: smoke, quick or paper."),
    meta_steps: str | None = typer.Option(
        None, "--meta-steps", metavar="S", help="Override the preset's steps."
    ),
    eval_episodes: str | None = typer.Option(None, "--eval-episodes", metavar="E", help="Test episodes."),
    seed: str = typer.Option("0", "--seed", metavar="SEED", help="Seed of the training run."),
    device: str | None = typer.Option(None, "--device", help="auto (default), cpu or cuda."),
    overrides: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="Method config value."
    ),
    events: str = typer.Option(
        "rich", "--events", help="rich (progress bar on stderr), jsonl (stdout) or none."
    ),
    json_output: bool = JsonOption,
    resume: str | None = typer.Option(
        None, "--resume", metavar="RUN_ID", help="Continue an interrupted run."
    ),
    db: str | None = DbOption,
    results: str | None = typer.Option(None, "--results", metavar="DIR", help="Where run records go."),
    data: str | None = typer.Option(None, "--data", metavar="DIR", help="Folder of the Omniglot zips."),
) -> None:
    """Train and test METHOD on Omniglot episodes; record the run in the database and as JSON."""
    if events not in ("rich", "jsonl", "none"):
        raise MetabenchError(f"unknown --events {events!r}; choose rich, jsonl or none")
    if events == "jsonl" and json_output:
        raise MetabenchError("--json and --events jsonl both write to stdout; choose one")
    spec = None
    if resume is not None:
        if method is not None:
            raise MetabenchError(f"--resume {resume} continues the stored run; drop the method name")
    elif method is None:
        raise MetabenchError("name a method to run (see `metabench methods`), or pass --resume RUN_ID")
    else:
        try:
            spec = RunSpec(
                method=method,
                protocol=protocol,
                episode=EpisodeSpec(
                    _integer("--ways", ways), _integer("--shots", shots), _integer("--queries", queries)
                ),
                preset=preset,
                meta_steps=None if meta_steps is None else _integer("--meta-steps", meta_steps),
                eval_episodes=None if eval_episodes is None else _integer("--eval-episodes", eval_episodes),
                seed=_integer("--seed", seed),
                device=device or "auto",
                overrides=parse_overrides(overrides or []),
            )
        except ValueError as exc:
            raise MetabenchError(str(exc)) from None

    # Imported here: torch loads only for the commands that train.
    from metabench.runner import JsonLinesSink, NullSink, run

    sink = {"rich": lambda: RichProgressSink(), "jsonl": JsonLinesSink, "none": NullSink}[events]()
    try:
        record = run(spec, sink, db_path=db, results_dir=results, resume=resume, data_dir=data, device=device)
    except KeyboardInterrupt:  # before the run existed (e.g. while loading data): nothing to resume
        typer.echo("interrupted before the run started; nothing was recorded", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if isinstance(sink, RichProgressSink):
            sink.close()
    if json_output:
        print_json(record.to_dict())
    if record.status == "failed":
        fail(record.error or "the run failed")
    if record.status == "interrupted":
        typer.echo(
            f"interrupted at step {record.steps_done}; continue with: metabench run --resume {record.run_id}",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)


def _integer(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MetabenchError(f"{option} expects a whole number, got {text!r}") from None


class RichProgressSink:
    """Renders events on stderr: a bar with loss, running accuracy and steps/s, then the result."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.tasks: dict[str, Any] = {}
        self.live = False

    def emit(self, event: Any) -> None:
        kind, out = event.kind, self.progress.console
        if kind == "started":
            how = "resuming" if event.resumed else "run"
            out.print(
                f"{how} [bold]{event.run_id}[/]: {event.method} on {event.protocol} {event.setting} "
                f"({event.preset}, {event.total_steps} steps, {event.eval_episodes} test episodes) "
                f"on {event.device}"
            )
            self.progress.start()
            self.live = True
            if event.total_steps:
                self.tasks["train"] = self.progress.add_task(
                    "train", total=event.total_steps, completed=event.step, stats=""
                )
        elif kind == "progress":
            stats = f"loss {event.loss:.3f}  acc {event.accuracy:6.1%}"
            if event.steps_per_s:
                stats += f"  {event.steps_per_s:.1f} steps/s"
            self.progress.update(self.tasks["train"], completed=event.step, stats=stats)
        elif kind == "validation":
            out.print(
                f"step {event.step}: validation accuracy {event.accuracy:.2%} ({event.episodes} episodes)"
            )
        elif kind == "testing":
            if "test" not in self.tasks:
                self.tasks["test"] = self.progress.add_task("test ", total=event.episodes, stats="")
            stats = "" if event.accuracy is None else f"acc {event.accuracy:6.2%}"
            self.progress.update(self.tasks["test"], completed=event.episodes_done, stats=stats)
        elif kind == "finished":
            self.close()
            ci = "" if event.ci95 is None else f" ± {100 * event.ci95:.2f}"
            mark = " (transductive evaluation)" if event.transductive else ""
            out.print(
                f"[bold]accuracy {100 * event.accuracy:.2f}%{ci}[/] over {event.episodes} test "
                f"episodes{mark}; trained in {event.train_time_s:.1f}s"
            )
        elif kind in ("failed", "interrupted"):
            self.close()

    def close(self) -> None:
        if self.live:  # stopping a display that never started would print blank lines
            self.progress.stop()
            self.live = False


# --- runs --------------------------------------------------------------------------------------


@runs_app.command("list")
@one_line_errors
def runs_list(
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many runs."),
    json_output: bool = JsonOption,
    db: str | None = DbOption,
) -> None:
    """List runs, newest first."""
    from dataclasses import asdict

    from metabench.leaderboard import list_runs

    with _database(db) as database:
        runs = _core(lambda: list_runs(database, limit=limit, status=status))
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
            _accuracy(run.accuracy, run.ci95)
            + (" †" if run.transductive and run.accuracy is not None else ""),
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

    with _database(db) as database:
        record = get_run(database, run_id)
    if record is None:
        raise MetabenchError(f"no run {run_id!r}; see `metabench runs list`")
    if json_output:
        print_json(record.to_dict())
        return
    data = record.to_dict()
    for key in SHOWN_FIELDS:
        if data[key] is not None:
            console.print(f"[bold]{key:>14}[/] {data[key]}", highlight=False)
    console.print(f"[bold]{'setting':>14}[/] {record.episode.label}, {record.episode.queries} queries")
    console.print(f"[bold]{'overrides':>14}[/] {dict(record.spec.overrides) or '-'}")
    console.print(f"[bold]{'versions':>14}[/] {dict(record.versions)}", highlight=False)
    if record.accuracy is not None:
        mark = " (transductive)" if record.transductive else ""
        console.print(f"[bold]{'accuracy':>14}[/] {_accuracy(record.accuracy, record.ci95)} %{mark}")
    if record.curve:
        table = Table("step", "loss", "train acc %", "val acc %", title="learning curve")
        for point in record.curve:
            table.add_row(
                str(point.step),
                "-" if point.loss is None else f"{point.loss:.4f}",
                _percent(point.train_accuracy),
                _percent(point.val_accuracy),
            )
        console.print(table)


@runs_app.command("rm")
@one_line_errors
def runs_rm(run_id: str = typer.Argument(...), db: str | None = DbOption) -> None:
    """Delete a run from the database with its checkpoints (JSON records under results/ stay)."""
    from metabench.leaderboard import delete_run

    with _database(db) as database:
        if not delete_run(database, run_id):
            raise MetabenchError(f"no run {run_id!r}; see `metabench runs list`")
    shutil.rmtree(paths.checkpoints_dir() / run_id, ignore_errors=True)
    console.print(f"deleted {run_id}")


@runs_app.command("ingest")
@one_line_errors
def runs_ingest(
    directory: Path = typer.Argument(..., help="Folder of run records, e.g. results/."),
    db: str | None = DbOption,
) -> None:
    """Load run records (*.json, searched recursively) into the database, replacing same run ids."""
    from metabench.leaderboard import ingest_directory

    with _database(db) as database:
        outcome = _core(lambda: ingest_directory(database, directory))
    for warning in outcome.warnings:
        typer.echo(f"warning: {warning}", err=True)
    console.print(f"ingested {len(outcome.loaded)} run records from {directory}", highlight=False)


# --- methods, leaderboard, export --------------------------------------------------------------


@one_line_errors
def methods_command(json_output: bool = JsonOption) -> None:
    """List the benchmark methods with their family, paper and preset budgets."""
    from metabench.methods.base import FAMILY_NAMES
    from metabench.methods.registry import all_methods

    rows = [
        {
            "name": m.name,
            "family": m.family,
            "family_name": FAMILY_NAMES[m.family],
            "paper": m.paper,
            "needs_training": m.needs_training,
            "transductive": m.transductive,
            "presets": {
                name: {"meta_steps": p.meta_steps, "eval_episodes": p.eval_episodes}
                for name, p in m.presets.items()
            },
        }
        for m in all_methods()
    ]
    if json_output:
        print_json(rows)
        return
    table = Table("method", "family", "paper", "smoke", "quick", "paper budget")
    for row in rows:
        budgets = [_budget(row["presets"].get(name)) for name in ("smoke", "quick", "paper")]
        name = row["name"] + (" †" if row["transductive"] else "")
        table.add_row(name, f"{row['family']} {row['family_name']}", row["paper"], *budgets)
    console.print(table)
    console.print("budgets: meta-training steps / test episodes; † transductive evaluation")


@one_line_errors
def leaderboard_command(
    protocol: str | None = typer.Option(None, "--protocol", help="Only this protocol."),
    ways: int | None = typer.Option(None, "--ways", help="Only N-way boards."),
    shots: int | None = typer.Option(None, "--shots", help="Only K-shot boards."),
    all_runs: bool = typer.Option(False, "--all", help="Every finished run, not one per method."),
    json_output: bool = JsonOption,
    db: str | None = DbOption,
) -> None:
    """Rank finished runs per setting, beside the published numbers."""
    from metabench.leaderboard import build_leaderboards
    from metabench.leaderboard.markdown import format_duration

    with _database(db) as database:
        boards = _core(lambda: build_leaderboards(database, protocol, ways, shots, all_runs=all_runs))
    if json_output:
        print_json([board.to_dict() for board in boards])
        return
    if not boards:
        console.print("no finished runs match; start one with `metabench run METHOD`")
    for board in boards:
        table = Table("#", title=board.setting.title, title_justify="left")
        table.add_column("method", no_wrap=True)  # names are what the reader scans for: never cut them
        for column in ("accuracy %", "published %", "diff", "vs above", "budget"):
            table.add_column(column)
        table.add_column("device", overflow="fold")
        table.add_column("train", no_wrap=True)
        for row in board.rows:
            published = (
                "-" if row.published is None else _accuracy(row.published / 100, _scaled(row.published_ci))
            )
            versus = "-" if row.p_value_vs_above is None else (
                f"{'significant' if row.significant_vs_above else 'n.s.'} p={row.p_value_vs_above:.3f}"
            )  # fmt: skip
            table.add_row(
                str(row.rank),
                row.method + (" †" if row.transductive else ""),
                _accuracy(row.accuracy / 100, _scaled(row.ci95)),
                published,
                "-" if row.difference is None else f"{row.difference:+.2f}",
                versus,
                f"{row.preset}, {row.meta_steps} steps",
                row.device,
                format_duration(row.train_time_s),
            )
        console.print(table)
    if boards:
        console.print("† transductive evaluation; vs above: paired t-test over the same test episodes")


@one_line_errors
def export_command(
    fmt: str = typer.Option("markdown", "--format", help="Output format: markdown."),
    out: Path | None = typer.Option(None, "--out", help="Write to FILE (atomically) instead of stdout."),
    db: str | None = DbOption,
) -> None:
    """Export every leaderboard as one markdown document."""
    from metabench import atomic
    from metabench.leaderboard import build_leaderboards, render_markdown

    if fmt != "markdown":
        raise MetabenchError(f"unknown --format {fmt!r}; the only format is markdown")
    with _database(db) as database:
        document = render_markdown(_core(lambda: build_leaderboards(database)))
    if out is None:
        typer.echo(document, nl=False)
        return
    try:
        atomic.write_text(out, document)
    except OSError as exc:
        raise MetabenchError(f"cannot write {out}: {exc.strerror}; choose another --out") from None
    typer.echo(f"wrote {out}", err=True)


# --- helpers -----------------------------------------------------------------------------------


class _database:
    """Open the database for one command and close it afterwards."""

    def __init__(self, db: str | None) -> None:
        from metabench.db import open_database

        self.db = open_database(db)

    def __enter__(self) -> Any:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.conn.close()


def _core(call: Any) -> Any:
    """Core functions raise ValueError for bad arguments; the CLI shows them as one-line errors."""
    try:
        return call()
    except ValueError as exc:
        raise MetabenchError(str(exc)) from None


def _accuracy(value: float | None, ci: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" + ("" if ci is None else f" ± {100 * ci:.2f}")


def _scaled(percent: float | None) -> float | None:
    return None if percent is None else percent / 100


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _budget(preset: dict[str, int] | None) -> str:
    return "-" if preset is None else f"{preset['meta_steps']} / {preset['eval_episodes']}"
