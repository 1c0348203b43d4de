"""The TUI's import contract, in fresh interpreters: it never loads torch; the CLI loads textual lazily."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Starts the real app headless, visits every main screen (each reads the database in its workers),
# opens the help and the run form, and reports which heavy modules ended up imported.
START_APP = textwrap.dedent(
    """
    import asyncio, json, sys, time
    started = time.perf_counter()
    from metabench.tui.app import create_app
    imported = time.perf_counter() - started
    core_at_import = "sqlite_utils" in sys.modules

    async def main():
        app = create_app(sys.argv[1])
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            first_paint = time.perf_counter() - started
            for key in ("2", "3", "1", "f1", "escape"):
                await pilot.press(key)
                await app.workers.wait_for_complete()
                await pilot.pause()
            screens = [type(app.get_screen(name)).__name__ for name in ("catalog", "runs", "leaderboard")]
        return first_paint, screens

    first_paint, screens = asyncio.run(main())
    print(json.dumps({
        "torch": "torch" in sys.modules,
        "cli": any(name.startswith("metabench.cli") for name in sys.modules),
        "core_at_import": core_at_import,
        "import_s": imported,
        "first_paint_s": first_paint,
        "screens": screens,
    }))
    """
)


def test_starting_the_app_and_visiting_every_screen_never_imports_torch(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", START_APP, str(tmp_path / "imports.db")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["screens"] == ["CatalogScreen", "RunsScreen", "LeaderboardScreen"]
    assert report["torch"] is False
    assert report["cli"] is False
    # The core (sqlite-utils pulls in numpy) loads in the workers, after the first paint.
    assert report["core_at_import"] is False
    # Timings are printed (pytest -s), never asserted: this machine is shared.
    print(f"import {report['import_s']:.2f}s, first paint {report['first_paint_s']:.2f}s")


def test_the_cli_registers_tui_without_importing_textual():
    code = (
        "import sys; from metabench.cli.app import app; "
        "import typer.main; names = [c.name for c in typer.main.get_command(app).commands.values()]; "
        "print('tui' in names, 'textual' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_metabench_tui_help_names_the_db_option():
    done = subprocess.run(
        [sys.executable, "-m", "metabench", "tui", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--db" in done.stdout and "catalog" in done.stdout.lower()


def test_metabench_tui_refuses_a_file_that_is_not_a_database(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("not a database\n")
    done = subprocess.run(
        [sys.executable, "-m", "metabench", "tui", "--db", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "not a metabench database" in done.stderr
    assert "Traceback" not in done.stderr and bad.read_text() == "not a database\n"
