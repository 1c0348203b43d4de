"""Shared CLI plumbing: the one-line error decorator, consoles, common options and number formats."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

from metabench.errors import MetabenchError

F = TypeVar("F", bound=Callable[..., Any])

# Off a terminal (a pipe, a file, CI) rich would wrap tables at 80 columns; COLUMNS still wins.
_PIPE_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True)

DbOption = typer.Option(
    None, "--db", help="SQLite database file (default: METABENCH_DB or the user data dir)."
)
JsonOption = typer.Option(False, "--json", help="Print stable, machine-readable JSON instead of tables.")


def one_line_errors(func: F) -> F:
    """Turn a MetabenchError, or a SQLite error (read-only, full disk, locked...), into `error: ...`
    on stderr and exit code 1, with no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MetabenchError as exc:
            fail(str(exc))
        except sqlite3.Error as exc:
            from metabench.db import database_error

            # Typer passes every option by name; a command's --db is always `db`.
            fail(str(database_error(exc, kwargs.get("db"))))

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error and exit non-zero."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """Write JSON to stdout, sorted and indented, so scripts and diffs see a stable shape."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def opened_database(db: str | None) -> Iterator[Any]:
    """The database for one command, closed afterwards."""
    from metabench.db import open_database

    database = open_database(db)
    try:
        yield database
    finally:
        database.conn.close()


def core_call(call: Callable[[], Any]) -> Any:
    """Core functions raise ValueError for bad arguments; the CLI shows them as one-line errors."""
    try:
        return call()
    except ValueError as exc:
        raise MetabenchError(str(exc)) from None


def accuracy_text(value: float | None, ci: float | None) -> str:
    """A fraction and its CI as percent, e.g. '97.12 ± 0.31'; '-' when there is none."""
    return percent_ci_text(None if value is None else 100 * value, None if ci is None else 100 * ci)


def percent_ci_text(percent: float | None, ci: float | None) -> str:
    """A percentage and its CI (both already in percent), e.g. '97.12 ± 0.31'; '-' when there is none."""
    if percent is None:
        return "-"
    return f"{percent:.2f}" + ("" if ci is None else f" ± {ci:.2f}")


def percent_text(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def budget_text(preset: dict[str, int] | None) -> str:
    return "-" if preset is None else f"{preset['meta_steps']} / {preset['eval_episodes']}"
