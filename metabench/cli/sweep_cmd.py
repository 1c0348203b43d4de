"""`metabench sweep FILE`: every run of a sweep file not yet recorded, on a local pool or a cluster."""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from metabench import paths
from metabench.cli.common import (
    DbOption,
    accuracy_text,
    console,
    core_call,
    err_console,
    one_line_errors,
    opened_database,
)
from metabench.cli.run_cmd import EXIT_INTERRUPTED, PLAIN_INTERVAL_S
from metabench.errors import MetabenchError

if TYPE_CHECKING:
    from metabench.sweep.engine import SweepResult
    from metabench.sweep.executor import Job, Outcome, ProgressUpdate
    from metabench.sweep.plan import Plan, PlannedRun

EXECUTORS = ("local", "slurm")
EVENTS = ("rich", "plain", "none")
# What --dry-run says of each planned run.
_PLANNED = {"new": "run", "interrupted": "resume", "done": "done", "running": "running elsewhere"}


def register(app: typer.Typer) -> None:
    """Attach `sweep` to the root app."""
    app.command("sweep")(sweep_command)


@one_line_errors
def sweep_command(
    file: Path = typer.Argument(..., help="The sweep file (TOML; examples in sweeps/)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and what the sweep would do."),
    executor: str = typer.Option("local", "--executor", help="local (this machine) or slurm (a cluster)."),
    workers: int | None = typer.Option(
        None, "--workers", metavar="N", help="Runs at once (local: one per GPU, else cores / 4)."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Run again the runs whose last try failed."
    ),
    db: str | None = DbOption,
    results: str | None = typer.Option(None, "--results", metavar="DIR", help="Where run records go."),
    events: str = typer.Option(
        "rich",
        "--events",
        help="rich (bars on stderr; plain lines when stderr is no terminal), plain or none.",
    ),
) -> None:
    """Run every run of the sweep FILE that is not recorded yet; a failed run does not stop the others."""
    if executor not in EXECUTORS:
        raise MetabenchError(f"unknown --executor {executor!r}; choose {' or '.join(EXECUTORS)}")
    if events not in EVENTS:
        raise MetabenchError(f"unknown --events {events!r}; choose {', '.join(EVENTS)}")
    if workers is not None and workers < 1:
        raise MetabenchError(f"--workers must be at least 1, got {workers}")
    from metabench.sweep.sweep_file import load_sweep

    sweep = core_call(lambda: load_sweep(file))
    factory = _executor_factory(executor)
    from metabench.sweep.engine import SweepResult, run_sweep
    from metabench.sweep.lock import sweep_lock
    from metabench.sweep.plan import plan_sweep

    # A dry run only reads; a sweep plans under the database's lock, so no other sweep starts its runs.
    with opened_database(db) as database, nullcontext() if dry_run else sweep_lock(paths.database_path(db)):
        plan = core_call(lambda: plan_sweep(sweep, database))
        if dry_run:
            _print_plan(plan, retry_failed)
            return
        jobs = plan.jobs(retry_failed)
        if not jobs:  # nothing to start: no executor, no progress
            result = SweepResult((), tuple(plan.skipped(retry_failed)))
        else:
            if executor == "local":
                _require_data()
            results_dir = paths.results_dir(results)
            options = sweep.executor_options.get(executor, {})
            runner = core_call(lambda: factory(paths.database_path(db), results_dir, workers, options))
            how = getattr(runner, "description", None)  # an executor may say how it runs the jobs
            typer.echo(
                f"sweep {sweep.name}: {len(jobs)} of {len(plan.runs)} runs to do"
                + (f", {how}" if how else ""),
                err=True,
            )
            if events == "rich" and not err_console.is_terminal:
                events = "plain"
            display = {"rich": RichSweepProgress, "plain": PlainSweepProgress, "none": NoProgress}[events](
                sweep.name, len(jobs)
            )
            try:
                result = run_sweep(plan, runner, database, results_dir, display.update, retry_failed)
            finally:
                display.close()
    _print_summary(sweep.name, result)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.count("failed"):
        raise typer.Exit(1)


def _executor_factory(name: str) -> Callable[..., Any]:
    """The `make_executor` of metabench.sweep.NAME (metabench.sweep.executor describes it)."""
    module = f"metabench.sweep.{name}"
    if importlib.util.find_spec(module) is None:
        raise MetabenchError(f"the {name} executor is not available yet; use --executor local")
    return importlib.import_module(module).make_executor


def _require_data() -> None:
    """Refuse before anything runs when Omniglot is missing: every run would fail, and be logged as failed."""
    from metabench.data.verify import require_zips

    require_zips(paths.data_dir())


# --- progress --------------------------------------------------------------------------------------


def ended_text(outcome: Outcome) -> str:
    """One line for a run that ended, e.g. 'finished protonet vinyals 5w1s quick seed 1: 97.10% (RUN_ID)'."""
    label = outcome.job.label
    if outcome.status == "finished":
        return f"finished {label}: {accuracy_text(outcome.accuracy, None)}% ({outcome.run_id})"
    if outcome.status == "failed":
        return f"failed {label}: {outcome.error}"
    return f"interrupted {label}" + (f" ({outcome.run_id})" if outcome.run_id else " before it started")


def _where_text(update: ProgressUpdate) -> str:
    if update.phase == "testing" and update.episodes:
        return f"testing {update.episodes_done or 0}/{update.episodes}"
    if update.phase == "training" and update.total_steps:
        return f"step {update.step or 0}/{update.total_steps}"
    return update.phase


class NoProgress:
    """--events none: nothing until the summary."""

    def __init__(self, name: str, total: int) -> None:
        pass

    def update(self, update: ProgressUpdate) -> None:
        pass

    def close(self) -> None:
        pass


class RichSweepProgress:
    """One bar for the sweep and one per active run, on stderr; a line above them as each run ends."""

    def __init__(self, name: str, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err_console,
        )
        self.overall = self.progress.add_task(f"sweep {name}", total=total, detail="")
        self.runs: dict[Job, TaskID] = {}
        self.progress.start()

    def update(self, update: ProgressUpdate) -> None:
        task = self.runs.get(update.job)
        if update.outcome is not None:
            if task is not None:
                self.progress.remove_task(self.runs.pop(update.job))
            self.progress.advance(self.overall)
            self.progress.console.print(ended_text(update.outcome), highlight=False, markup=False)
            return
        if task is None:
            task = self.runs[update.job] = self.progress.add_task(
                f"  {update.job.label}", total=None, detail=""
            )
        if update.phase == "testing" and update.episodes:
            total, completed = update.episodes, update.episodes_done or 0
        elif update.total_steps:
            total, completed = update.total_steps, update.step or 0
        else:
            total, completed = None, 0
        where = f" on {update.where}" if update.where else ""
        self.progress.update(task, total=total, completed=completed, detail=f"{update.phase}{where}")

    def close(self) -> None:
        self.progress.stop()


class PlainSweepProgress:
    """For a log: a line as each run ends, and where the sweep stands at most every PLAIN_INTERVAL_S."""

    def __init__(
        self,
        name: str,
        total: int,
        interval: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.total = total
        self.interval = interval
        self.clock = clock
        self.write = write or (lambda line: typer.echo(line, err=True))
        self.done = 0
        self.active: dict[Job, ProgressUpdate] = {}
        self.last = clock()

    def update(self, update: ProgressUpdate) -> None:
        if update.outcome is not None:
            self.active.pop(update.job, None)
            self.done += 1
            self.write(f"[{self.done}/{self.total}] {ended_text(update.outcome)}")
        else:
            self.active[update.job] = update
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.write(self.status_line())

    def status_line(self) -> str:
        """Where the sweep stands: 'sweep x: 3/9 done; running: maml vinyals 5w1s quick seed 0 step 4/9'."""
        running = "; ".join(f"{u.job.label} {_where_text(u)}" for u in self.active.values()) or "nothing"
        return f"sweep {self.name}: {self.done}/{self.total} done; running: {running}"

    def close(self) -> None:
        pass


# --- reports ---------------------------------------------------------------------------------------


def _table(name: str, *columns: str) -> Table:
    """A table of runs whose last column, the run id, is never cut: it is what the next command takes."""
    table = Table(*columns, title=f"sweep {name}", title_justify="left")
    table.add_column("run id", no_wrap=True)
    return table


def _print_errors(errors: list[tuple[str, str]]) -> None:
    """Errors below the table, one line each and whole (a table column would wrap or cut them)."""
    for label, error in errors:
        console.print(f"failed {label}: {error}", soft_wrap=True, highlight=False, markup=False)


def _print_plan(plan: Plan, retry_failed: bool) -> None:
    table = _table(plan.sweep.name, "#", "run", "state")
    for number, run in enumerate(plan.runs, 1):
        table.add_row(str(number), _label(run), _planned_text(run, retry_failed), run.run_id or "")
    console.print(table)
    _print_errors([(_label(run), run.error or "") for run in plan.runs if run.state == "failed"])
    jobs = plan.jobs(retry_failed)
    resumes = sum(job.resume is not None for job in jobs)
    console.print(
        f"{len(plan.runs)} runs: {len(jobs) - resumes} to run, {resumes} to resume, "
        f"{len(plan.runs) - len(jobs)} skipped" + _skipped_reasons(plan.skipped(retry_failed)),
        highlight=False,
    )


def _planned_text(run: PlannedRun, retry_failed: bool) -> str:
    if run.state == "failed":
        return "retry" if retry_failed else "failed (skipped)"
    return _PLANNED[run.state]


def _label(run: PlannedRun) -> str:
    from metabench.sweep.executor import Job

    return Job(run.spec, None).label


def _skipped_reasons(skipped: Sequence[PlannedRun]) -> str:
    counts = {state: sum(run.state == state for run in skipped) for state in ("done", "failed", "running")}
    words = {"done": "done", "failed": "failed earlier", "running": "running elsewhere"}
    parts = [f"{count} {words[state]}" for state, count in counts.items() if count]
    return f" ({', '.join(parts)})" if parts else ""


def _print_summary(name: str, result: SweepResult) -> None:
    if result.outcomes:
        table = _table(name, "run", "result")
        for outcome in result.outcomes:
            if outcome.status == "finished":
                said = f"{accuracy_text(outcome.accuracy, None)}%"
            else:
                said = (
                    "not started"
                    if outcome.status == "interrupted" and not outcome.run_id
                    else outcome.status
                )
            table.add_row(outcome.job.label, said, outcome.run_id or "-")
        console.print(table)
        _print_errors([(o.job.label, o.error or "") for o in result.outcomes if o.status == "failed"])
    console.print(
        f"finished {result.count('finished')}, failed {result.count('failed')}, "
        f"interrupted {result.count('interrupted')}, "
        f"skipped {len(result.skipped)}{_skipped_reasons(result.skipped)}",
        highlight=False,
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if any(run.state == "failed" for run in result.skipped):
        console.print("runs that failed earlier were skipped: run again with --retry-failed to retry them")
    if result.interrupted:
        console.print("interrupted: run the same command again to resume the sweep where it stopped")
    if result.count("finished"):
        finished = [o.job.spec for o in result.outcomes if o.status == "finished"]
        settings = sorted({(spec.protocol, spec.episode.ways, spec.episode.shots) for spec in finished})
        for protocol, ways, shots in settings:
            console.print(
                f"board: metabench leaderboard --protocol {protocol} --ways {ways} --shots {shots}",
                soft_wrap=True,
                highlight=False,
            )
