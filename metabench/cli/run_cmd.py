"""`metabench run`: train and test one method, with a rich progress bar, plain lines, JSON or silence."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from metabench.cli.common import DbOption, JsonOption, err_console, fail, one_line_errors, print_json
from metabench.config import EpisodeSpec, RunSpec, parse_overrides
from metabench.errors import MetabenchError

EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT-terminated command
# Off a terminal (a Slurm log, a pipe) a live bar cannot redraw: a plain line at most this often instead.
PLAIN_INTERVAL_S = 30.0


def register(app: typer.Typer) -> None:
    """Attach `run` to the root app."""
    app.command("run")(run_command)


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
        None,
        "--set",
        metavar="KEY=VALUE",
        help="Method config value; `metabench methods METHOD` lists the keys.",
    ),
    events: str = typer.Option(
        "rich",
        "--events",
        help="rich (progress bar on stderr; plain lines when stderr is no terminal), plain, jsonl (stdout) "
        "or none.",
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
    if events not in ("rich", "plain", "jsonl", "none"):
        raise MetabenchError(f"unknown --events {events!r}; choose rich, plain, jsonl or none")
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
    from metabench.runner import FanOutSink, JsonLinesSink, NullSink, run

    if events == "rich" and not err_console.is_terminal:
        events = "plain"
    sink = {"rich": RichProgressSink, "plain": PlainProgressSink, "jsonl": JsonLinesSink, "none": NullSink}[
        events
    ]()
    if not isinstance(sink, (RichProgressSink, PlainProgressSink)):  # which print them themselves
        sink = FanOutSink(sink, WarningsToStderr())
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


class WarningsToStderr:
    """Shows a finished run's warning (its JSON copy could not be written) whatever --events says."""

    def emit(self, event: Any) -> None:
        if getattr(event, "warning", None):
            typer.echo(f"warning: {event.warning}", err=True)


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
            out.print(started_text(event, _bold))
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
            out.print(validation_text(event))
        elif kind == "testing":
            if "test" not in self.tasks:
                self.tasks["test"] = self.progress.add_task("test ", total=event.episodes, stats="")
            stats = "" if event.accuracy is None else f"acc {event.accuracy:6.2%}"
            self.progress.update(self.tasks["test"], completed=event.episodes_done, stats=stats)
        elif kind == "finished":
            self.close()
            out.print(finished_text(event, _bold))
            if event.warning:
                out.print(f"warning: {event.warning}", highlight=False, markup=False)
        elif kind in ("failed", "interrupted"):
            self.close()

    def close(self) -> None:
        if self.live:  # stopping a display that never started would print blank lines
            self.progress.stop()
            self.live = False


class PlainProgressSink:
    """Renders events on stderr as plain lines, for a log: where training and testing stand at most
    every PLAIN_INTERVAL_S (at the next event after it), each validation, and the result."""

    def __init__(
        self, interval: float = PLAIN_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.last: float | None = None  # when the last progress line was written; None: none yet

    def emit(self, event: Any) -> None:
        kind = event.kind
        if kind == "started":
            self._write(started_text(event))
        elif kind == "validation":
            self._write(validation_text(event))
        elif kind == "progress" and self._due():
            self._write(progress_text(event))
        elif kind == "testing" and (event.episodes_done == 0 or self._due()):
            done = "" if event.accuracy is None else f", accuracy so far {event.accuracy:.2%}"
            self._write(f"testing: {event.episodes_done}/{event.episodes} episodes{done}")
        elif kind == "finished":
            self._write(finished_text(event))
            if event.warning:
                self._write(f"warning: {event.warning}")

    def _due(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return False
        self.last = now
        return True

    def _write(self, line: str) -> None:
        typer.echo(line, err=True)


def _bold(text: str) -> str:
    return f"[bold]{text}[/]"


def _plain(text: str) -> str:
    return text


def started_text(event: Any, bold: Callable[[str], str] = _plain) -> str:
    """The line that opens a run: what it is, its budget and where it runs."""
    how = "resuming" if event.resumed else "run"
    return (
        f"{how} {bold(event.run_id)}: {event.method} on {event.protocol} {event.setting} "
        f"({event.preset}, {event.total_steps} steps, {event.eval_episodes} test episodes) on {event.device}"
    )


def validation_text(event: Any) -> str:
    return f"step {event.step}: validation accuracy {event.accuracy:.2%} ({event.episodes} episodes)"


def progress_text(event: Any) -> str:
    """Where training stands, e.g. 'step 120/1500 (8%): loss 0.412  acc 87.0%  12.5 steps/s  eta 1m50s'."""
    share = f" ({event.step / event.total_steps:.0%})" if event.total_steps else ""
    text = f"step {event.step}/{event.total_steps}{share}: loss {event.loss:.3f}  acc {event.accuracy:.1%}"
    if event.steps_per_s:
        text += f"  {event.steps_per_s:.1f} steps/s"
    if event.eta_s is not None:
        text += f"  eta {duration_text(event.eta_s)}"
    return text


def finished_text(event: Any, bold: Callable[[str], str] = _plain) -> str:
    ci = "" if event.ci95 is None else f" ± {100 * event.ci95:.2f}"
    mark = " (transductive evaluation)" if event.transductive else ""
    return (
        f"{bold(f'accuracy {100 * event.accuracy:.2f}%{ci}')} over {event.episodes} test episodes{mark}; "
        f"trained in {event.train_time_s:.1f}s"
    )


def duration_text(seconds: float) -> str:
    """A duration as '45s', '1m50s' or '2h05m'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
