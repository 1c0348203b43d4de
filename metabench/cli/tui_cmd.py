"""`metabench tui`: open the Textual interface (imported lazily so the other commands never load textual)."""

from __future__ import annotations

from pathlib import Path

import typer

from metabench.cli.common import DbOption, one_line_errors


def register(app: typer.Typer) -> None:
    """Attach the tui command to the root app."""

    @app.command("tui")
    @one_line_errors
    def tui(db: Path | None = DbOption) -> None:
        """Browse the survey catalog, launch and watch runs, and explore the leaderboards."""
        from metabench.db import check_database

        # A database that is not SQLite, or not writable, is a one-line error here rather than a
        # notification inside a screen that then shows nothing.
        check_database(db)
        # Lazy: `metabench run` must never import textual, and the TUI never imports torch.
        from metabench.tui.app import run

        run(db)
