"""The `metabench` command: a thin Typer veneer over the core; each group lives in its own module."""

from __future__ import annotations

import typer

from metabench import __version__
from metabench.cli import bench_cmd, catalog_cmd, data_cmd, leaderboard_cmd, run_cmd, runs_cmd, tui_cmd

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
run_cmd.register(app)
runs_cmd.register(app)
leaderboard_cmd.register(app)
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


def main() -> None:
    app()
