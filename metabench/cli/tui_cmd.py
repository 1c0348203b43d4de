"""`metabench tui`: placeholder until built."""

import typer


def register(app: typer.Typer) -> None:
    """Attach the tui command to the root app."""
