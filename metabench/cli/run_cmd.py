"""`metabench run`, `runs`, `methods`, `leaderboard`, `export`: placeholder until built."""

import typer


def register(app: typer.Typer) -> None:
    """Attach the benchmark commands to the root app."""
