"""`metabench plot curves|board`: learning curves and leaderboards as SVG or PNG files for papers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from metabench.cli.common import DbOption, core_call, one_line_errors, opened_database
from metabench.config import PROTOCOLS
from metabench.errors import MetabenchError

if TYPE_CHECKING:
    from metabench.leaderboard import Leaderboard, RunRecord

app = typer.Typer(
    help="Charts as SVG or PNG files for papers: runs' learning curves and a setting's leaderboard "
    "(needs the plot extra: pip install 'metabench\\[plot]').",
    no_args_is_help=True,
)

OutOption = typer.Option(
    ...,
    "--out",
    metavar="FILE",
    help="Write the chart to FILE (atomically); its suffix, .svg or .png, picks the format.",
)
ForceOption = typer.Option(False, "--force", help="Replace FILE when it exists (refused otherwise).")


@app.command("curves")
@one_line_errors
def curves_command(
    run_ids: list[str] = typer.Argument(..., metavar="RUN_ID", help="Runs whose curves share the axes."),
    out: Path = OutOption,
    force: bool = ForceOption,
    db: str | None = DbOption,
) -> None:
    """Overlay the learning curves of runs: training loss, training and validation accuracy."""
    from metabench.leaderboard import get_run
    from metabench.leaderboard.figures import learning_curves
    from metabench.plots.render import curves_figure

    _check_target(out, force)
    repeated = [run_id for run_id in run_ids if run_ids.count(run_id) > 1]
    if repeated:
        raise MetabenchError(f"run {repeated[0]!r} is named twice; name each run once")
    records: list[RunRecord] = []
    with opened_database(db) as database:
        for run_id in run_ids:
            record = core_call(lambda run_id=run_id: get_run(database, run_id))
            if record is None:
                raise MetabenchError(f"no run {run_id!r}; see `metabench runs list`")
            records.append(record)
    for record in records:
        if not learning_curves([record]):
            raise MetabenchError(
                f"run {record.run_id!r} has no learning curve (its method trains nothing, or it stopped "
                "before its first point); leave it out"
            )
    _write(lambda: curves_figure(learning_curves(records)), out)


@app.command("board")
@one_line_errors
def board_command(
    protocol: str = typer.Option(..., "--protocol", help=f"The board's protocol: {', '.join(PROTOCOLS)}."),
    ways: int = typer.Option(..., "--ways", metavar="N", min=1, help="The board's N (N-way)."),
    shots: int = typer.Option(..., "--shots", metavar="K", min=1, help="The board's K (K-shot)."),
    queries: int | None = typer.Option(
        None, "--queries", metavar="Q", min=1, help="Queries per class, when boards differ in it."
    ),
    episodes: int | None = typer.Option(
        None, "--episodes", metavar="E", min=1, help="Test episodes, when boards differ in them."
    ),
    all_runs: bool = typer.Option(False, "--all-runs", help="Every finished run, not one per method."),
    out: Path = OutOption,
    force: bool = ForceOption,
    db: str | None = DbOption,
) -> None:
    """Chart one setting's leaderboard: each run's accuracy and 95% CI beside the published number."""
    from metabench.leaderboard import build_leaderboards
    from metabench.leaderboard.figures import board_chart
    from metabench.plots.render import board_figure

    if protocol not in PROTOCOLS:
        raise MetabenchError(f"unknown --protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    for flag, value in (("--ways", ways), ("--shots", shots)):
        # SQLite integers are 64-bit: a larger filter would end in an OverflowError traceback.
        if value >= 2**63:
            raise MetabenchError(f"{flag} must be a positive whole number below 2**63, got {value}")
    _check_target(out, force)
    asked = f"{protocol} {ways}-way {shots}-shot"
    asked += "".join(
        f", {value} {name}" for name, value in (("queries", queries), ("test episodes", episodes)) if value
    )
    with opened_database(db) as database:
        boards = core_call(lambda: build_leaderboards(database, protocol, ways, shots, all_runs=all_runs))
        boards = [
            board
            for board in boards
            if queries in (None, board.setting.queries) and episodes in (None, board.setting.eval_episodes)
        ]
        if not boards:
            existing = core_call(lambda: build_leaderboards(database))
            raise MetabenchError(_no_board(asked, existing))
    if len(boards) > 1:
        settings = "; ".join(_setting_text(board) for board in boards)
        raise MetabenchError(
            f"{len(boards)} boards match {asked} ({settings}); pick one with --queries and --episodes"
        )
    _write(lambda: board_figure(board_chart(boards[0])), out)


def _setting_text(board: Leaderboard, seed: bool = True) -> str:
    """What tells apart boards of one protocol and episode shape."""
    setting = board.setting
    text = f"{setting.queries} {'query' if setting.queries == 1 else 'queries'} per class, "
    text += f"{setting.eval_episodes} test episodes"
    return text + (f", eval seed {setting.eval_seed}" if seed else "")


def _no_board(asked: str, existing: list[Leaderboard]) -> str:
    """What was asked for, and the boards there are instead."""
    if not existing:
        return f"no board for {asked}: no finished runs yet; start one with `metabench run METHOD`"
    there = dict.fromkeys(
        f"{board.setting.protocol} {board.setting.label} ({_setting_text(board, seed=False)})"
        for board in existing
    )
    return f"no board for {asked}; there are: {'; '.join(there)} (see `metabench leaderboard`)"


def _check_target(out: Path, force: bool) -> None:
    """Refuse, before any work, an --out that cannot be written or that would replace a file unasked."""
    from metabench.plots.render import output_format

    core_call(lambda: output_format(out))
    folder = out.parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise MetabenchError(
            f"cannot write {out}: the folder {folder} {problem}; create it or choose another --out"
        )
    if out.exists() and not out.is_file():
        raise MetabenchError(f"cannot write {out}: it is not a regular file; choose another --out")
    if out.exists() and not force:
        raise MetabenchError(f"{out} exists; pass --force to replace it, or choose another --out")


def _write(figure: Callable[[], Any], out: Path) -> None:
    """Draw the figure and write it atomically: a failure leaves no file, and any old one as it was."""
    from metabench.plots.render import save_figure

    drawn = core_call(figure)
    try:
        save_figure(drawn, out)
    except OSError as exc:
        raise MetabenchError(f"cannot write {out}: {exc.strerror or exc}; choose another --out") from None
    typer.echo(f"wrote {out}", err=True)
