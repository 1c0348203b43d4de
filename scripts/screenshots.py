"""Save SVG screenshots of the TUI's screens for the README (docs/screenshots/*.svg).

Everything shown is real: the catalog from the repository's source files, and runs trained and
tested on the real Omniglot by `metabench run` subprocesses. By default the script works in a fresh
temporary database and first records two quick real runs (protonet smoke with a few meta-steps, and
pixels-nn), so the leaderboard has something to rank; the runs screenshot is taken while a protonet
run trains live in the TUI, which is then cancelled.

    python scripts/screenshots.py                 # fresh database, real runs (a minute or two on a CPU)
    python scripts/screenshots.py --db my.db      # your own database as it is (no runs are added)
    python scripts/screenshots.py --ingest results/runs   # fresh database with these run records
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textual.worker import WorkerCancelled  # noqa: E402

from metabench.tui.app import MetabenchApp, create_app  # noqa: E402
from metabench.tui.run_process import RunRequest  # noqa: E402
from metabench.tui.screens.paper import PaperScreen  # noqa: E402
from metabench.tui.widgets.run_monitor import RunMonitor  # noqa: E402

SIZE = (140, 44)
LIVE_STEPS = 60  # how far the live protonet run trains before its screenshot (its plots need points)


def record_runs(db_path: Path, results: Path) -> None:
    """Two real runs on the same test episodes, so they share a leaderboard."""
    common = ["--preset", "smoke", "--eval-episodes", "100", "--device", "cpu", "--events", "none",
              "--db", str(db_path), "--results", str(results)]  # fmt: skip
    for args in (["protonet", "--meta-steps", "5"], ["pixels-nn"]):
        print(f"recording a real run: metabench run {' '.join(args)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "metabench", "run", *args, *common], check=True, cwd=REPO)


async def settle(app: MetabenchApp, pilot) -> None:
    """Wait for the database reads (not for a live run) and let their results be drawn."""
    for _ in range(3):
        for worker in [w for w in app.workers if w.group != "runs" and not w.is_finished]:
            try:
                await worker.wait()
            except WorkerCancelled:
                pass  # superseded by a newer read
        await pilot.pause(0.3)


async def take(db_path: Path, out: Path, live: bool) -> None:
    app = create_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.save_screenshot("catalog.svg", str(out))
        await pilot.press("slash", *"speech recognition")
        await settle(app, pilot)
        app.save_screenshot("papers.svg", str(out))
        app.push_screen(PaperScreen("finn2017model"))
        await settle(app, pilot)
        app.save_screenshot("paper.svg", str(out))
        await pilot.press("escape")

        await app.run_action("show('leaderboard')")  # (keys 1-3 would go into the search box)
        await settle(app, pilot)
        app.save_screenshot("leaderboard.svg", str(out))
        # The Vinyals 5-way 1-shot board (the third, when the committed records are loaded): its chart
        # against the published numbers, then its runs' learning curves overlaid.
        boards = app.screen.tables()  # type: ignore[attr-defined]
        boards[min(2, len(boards) - 1)].focus()
        await pilot.press("g")
        await settle(app, pilot)
        app.save_screenshot("board-chart.svg", str(out))
        await pilot.press("g", "c")
        await settle(app, pilot)
        app.save_screenshot("compare.svg", str(out))
        await pilot.press("escape")

        if live:
            await app.launch_run(RunRequest("protonet", preset="quick", device="cpu"))
            monitor = app.screen.query_one(RunMonitor)
            while monitor.snapshot.step < LIVE_STEPS and not monitor.snapshot.exited:
                await pilot.pause(0.5)
            await pilot.pause(2.5)  # one history poll
            app.save_screenshot("runs.svg", str(out))
            monitor.cancel()
            while not monitor.snapshot.exited:
                await pilot.pause(0.5)
        else:
            await app.run_action("show('runs')")
            await settle(app, pilot)
            app.save_screenshot("runs.svg", str(out))
    for name in ("catalog", "papers", "paper", "leaderboard", "board-chart", "compare", "runs"):
        print(f"wrote {out / (name + '.svg')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", type=Path, help="use this database as it is (default: a fresh one with real runs)"
    )
    parser.add_argument(
        "--ingest", type=Path, help="load these run records into the fresh database instead of recording runs"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.db is not None:
        asyncio.run(take(args.db, args.out, live=False))
        return
    with tempfile.TemporaryDirectory(prefix="metabench-screenshots-") as folder:
        db_path = Path(folder) / "metabench.db"
        if args.ingest is not None:
            subprocess.run(
                [sys.executable, "-m", "metabench", "runs", "ingest", str(args.ingest), "--db", str(db_path)],
                check=True,
                cwd=REPO,
            )
        else:
            record_runs(db_path, Path(folder) / "results")
        asyncio.run(take(db_path, args.out, live=True))


if __name__ == "__main__":
    main()
