"""The `metabench` command: a thin Typer veneer over the core; each group lives in its own module."""

from __future__ import annotations

import sys

import typer

from metabench import __version__
from metabench.cli import (
    bench_cmd,
    catalog_cmd,
    data_cmd,
    leaderboard_cmd,
    methods_cmd,
    plot_cmd,
    run_cmd,
    runs_cmd,
    sweep_cmd,
    tui_cmd,
)

app = typer.Typer(
    name="metabench",
    help="A terminal workbench for meta-learning: the speech/NLP survey catalog, Omniglot few-shot "
    "benchmarks of the three method families, and leaderboards beside the published numbers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(catalog_cmd.app, name="catalog")
app.add_typer(data_cmd.app, name="data")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(plot_cmd.app, name="plot")
run_cmd.register(app)
runs_cmd.register(app)
methods_cmd.register(app)
leaderboard_cmd.register(app)
sweep_cmd.register(app)
tui_cmd.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"metabench {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """metabench: learn to learn, measured."""


# Newer typer vendors its own click: take the exception class from typer itself, whichever it is.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(args: list[str] | None = None) -> None:
    """The console script. Usage errors (a bad option value, a missing argument) read as one line,
    like every other error, instead of click's usage block and framed panel."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="metabench", standalone_mode=False)
    except _CLICK_EXCEPTION as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # `metabench` alone, or a group without a subcommand: the help is the answer
        else:
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {message}{where}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
