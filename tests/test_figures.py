"""What the charts show (metabench.leaderboard.figures), checked against the committed run records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from metabench.config import TRANSDUCTIVE_MARK
from metabench.db import open_database
from metabench.leaderboard import (
    Leaderboard,
    PublishedReference,
    RunRecord,
    build_leaderboards,
    ingest_directory,
    read_record_file,
)
from metabench.leaderboard.figures import (
    CURVE_QUANTITIES,
    board_chart,
    learning_curves,
    run_label,
)

RUNS = Path(__file__).resolve().parent.parent / "results" / "runs"
PROTONET = "protonet-vinyals-5w1s-20261126T095555-e961"
PROTONET_PAPER = "protonet-vinyals-5w1s-20261126T110138-eec4"  # the same method and setting, seed 0 too
MAML = "maml-vinyals-5w1s-20261126T090037-a251"
PIXELS_NN = "pixels-nn-vinyals-5w1s-20261126T072815-f751"  # trains nothing, so it has no curve


def record(run_id: str) -> RunRecord:
    return read_record_file(RUNS / f"{run_id}.json")


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> list[Leaderboard]:
    database = open_database(tmp_path_factory.mktemp("figures") / "runs.db")
    outcome = ingest_directory(database, RUNS)
    assert not outcome.warnings and len(outcome.loaded) == len(list(RUNS.glob("*.json")))
    return build_leaderboards(database)


def board_of(boards: list[Leaderboard], protocol: str, ways: int) -> Leaderboard:
    [board] = [b for b in boards if (b.setting.protocol, b.setting.ways) == (protocol, ways)]
    return board


def test_each_series_is_the_stored_curve_scaled_and_points_without_a_value_are_skipped() -> None:
    runs = [record(PROTONET), record(MAML)]
    panels = learning_curves(runs)
    assert [panel.quantity for panel in panels] == list(CURVE_QUANTITIES)
    for panel in panels:
        field, scale = panel.quantity.field, panel.quantity.scale
        assert [series.label for series in panel.series] == [run_label(run, runs) for run in runs]
        for series, run in zip(panel.series, runs, strict=True):
            kept = [point for point in run.curve if getattr(point, field) is not None]
            assert series.steps == tuple(point.step for point in kept)
            assert series.values == tuple(getattr(point, field) * scale for point in kept)
    validation = panels[2].series[0]
    # Validation runs every few hundred steps: most points have none, and they are left out.
    assert 0 < len(validation.steps) < len(runs[0].curve)
    assert panels[1].quantity.unit == "%" and max(panels[1].series[0].values) > 1.0


def test_a_run_without_a_curve_adds_no_series_and_alone_no_panel() -> None:
    assert learning_curves([record(PIXELS_NN)]) == ()
    panels = learning_curves([record(PIXELS_NN), record(PROTONET)])
    assert len(panels) == 3 and all(len(panel.series) == 1 for panel in panels)


def test_labels_tell_runs_apart_by_seed_then_by_run_id() -> None:
    protonet, paper, maml = record(PROTONET), record(PROTONET_PAPER), record(MAML)
    assert run_label(protonet) == "protonet vinyals 5w1s"
    # Another method in the same setting needs nothing more.
    assert run_label(protonet, [protonet, maml]) == "protonet vinyals 5w1s"
    seed_one = replace(protonet, run_id=PROTONET[:-4] + "5eed", spec=replace(protonet.spec, seed=1))
    assert run_label(seed_one, [protonet, seed_one]) == "protonet vinyals 5w1s seed 1"
    assert run_label(protonet, [protonet, seed_one]) == "protonet vinyals 5w1s seed 0"
    # Same method, setting and seed: only the run id tells them apart.
    assert run_label(paper, [protonet, paper]) == f"protonet vinyals 5w1s seed 0 ({PROTONET_PAPER})"
    labels = {series.label for panel in learning_curves([protonet, paper]) for series in panel.series}
    assert labels == {f"protonet vinyals 5w1s seed 0 ({run_id})" for run_id in (PROTONET, PROTONET_PAPER)}


def test_the_board_chart_is_the_board_in_its_order_with_transductive_marks(boards: list[Leaderboard]) -> None:
    board = board_of(boards, "vinyals", 5)
    chart = board_chart(board)
    assert chart.title == board.setting.title
    entries = board.entries()
    assert len(chart.bars) == len(entries) == len(board.rows)
    for bar, row in zip(chart.bars, entries, strict=True):
        assert not isinstance(row, PublishedReference)
        assert (bar.accuracy, bar.ci95, bar.published, bar.published_ci) == (
            row.accuracy,
            row.ci95,
            row.published,
            row.published_ci,
        )
        assert bar.transductive == row.transductive and not bar.reference
        label = row.method + (f" {TRANSDUCTIVE_MARK}" if row.transductive else "")
        assert bar.label == label + (f" ({len(row.seeds)} seeds)" if len(row.seeds) > 1 else "")
        assert (bar.low, bar.high) == (row.accuracy - row.ci95, row.accuracy + row.ci95)
    assert "maml †" in [bar.label for bar in chart.bars]
    assert [bar.accuracy for bar in chart.bars] == sorted((bar.accuracy for bar in chart.bars), reverse=True)


def test_references_are_flagged_and_have_no_interval(boards: list[Leaderboard]) -> None:
    board = board_of(boards, "lake-runs", 20)
    chart = board_chart(board)
    assert board.references
    assert [bar.label for bar in chart.bars if bar.reference] == [
        entry.name for entry in board.entries() if isinstance(entry, PublishedReference)
    ]
    for bar, entry in zip(chart.bars, board.entries(), strict=True):
        assert bar.accuracy == entry.accuracy
        if bar.reference:
            assert "people" in {ref.name for ref in board.references}
            assert (bar.ci95, bar.published, bar.transductive) == (None, None, False)
            assert bar.low == bar.high == bar.accuracy
