"""What the charts show, whoever draws them: runs' learning curves and a board's accuracies beside the
published numbers. The TUI's plots and `metabench plot`'s files read these, so they always agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from metabench.config import RUNNING_WINDOW, TRANSDUCTIVE_MARK
from metabench.leaderboard.published import PublishedReference
from metabench.leaderboard.ranking import Leaderboard, LeaderboardRow
from metabench.leaderboard.records import CurvePoint, RunRecord


@dataclass(frozen=True)
class Quantity:
    """A quantity a learning curve can show: where a curve point keeps it, and how to print it."""

    field: str  # the CurvePoint attribute
    title: str
    unit: str  # "%" for accuracies, which points keep as fractions
    scale: float  # multiplies a stored value into the unit

    def value(self, point: CurvePoint) -> float | None:
        value = getattr(point, self.field)
        return None if value is None else value * self.scale


# The curve points are means over the steps since the previous point (records.CurvePoint), so the
# training quantities say so: they are not the value at that one step.
CURVE_QUANTITIES = (
    Quantity("loss", "Training loss (mean per interval)", "", 1.0),
    Quantity("train_accuracy", "Training accuracy % (mean per interval)", "%", 100.0),
    Quantity("val_accuracy", "Validation accuracy %", "%", 100.0),
)


# What a live run's progress events carry: the loss and accuracy as running means of the last
# RUNNING_WINDOW steps (not the stored curve's per-interval means, so the two end at different numbers).
LIVE_QUANTITIES = (
    Quantity("loss", f"Training loss (mean of the last {RUNNING_WINDOW} steps)", "", 1.0),
    Quantity("train_accuracy", f"Training accuracy % (mean of the last {RUNNING_WINDOW} steps)", "%", 100.0),
    CURVE_QUANTITIES[2],
)


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label for the legend and (step, value) points in step order."""

    label: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class CurvePanel:
    """One quantity against meta-training steps, one series per run."""

    quantity: Quantity
    series: tuple[Series, ...]


def run_label(record: RunRecord, others: Sequence[RunRecord] = ()) -> str:
    """A run's legend label: its method and setting, plus what tells it apart from the `others`."""
    label = _setting_label(record)
    same = [other for other in others if other.run_id != record.run_id]
    if any(_setting_label(other) == label for other in same):
        label += f" seed {record.seed}"
        if any(o.method == record.method and o.seed == record.seed for o in same):
            label += f" ({record.run_id})"
    return label


def _setting_label(record: RunRecord) -> str:
    return f"{record.method} {record.protocol} {record.episode.label}"


def curve_series(record: RunRecord, quantity: Quantity, label: str) -> Series | None:
    """The points of `quantity` in `record`'s stored curve; None when the run has none."""
    points = [(point.step, quantity.value(point)) for point in record.curve]
    kept = [(step, value) for step, value in points if value is not None]
    if not kept:
        return None
    return Series(label, tuple(step for step, _ in kept), tuple(value for _, value in kept))


def learning_curves(records: Sequence[RunRecord]) -> tuple[CurvePanel, ...]:
    """One panel per quantity that at least one of the runs recorded, each run one series in it."""
    panels = []
    for quantity in CURVE_QUANTITIES:
        series = [curve_series(record, quantity, run_label(record, records)) for record in records]
        present = tuple(s for s in series if s is not None)
        if present:
            panels.append(CurvePanel(quantity, present))
    return tuple(panels)


def live_curves(
    label: str,
    curves: Sequence[Sequence[tuple[int, float]]],
    quantities: Sequence[Quantity] = LIVE_QUANTITIES,
) -> tuple[CurvePanel, ...]:
    """Panels of one live run from its (step, stored value) curves, one per quantity, in that order."""
    panels = []
    for quantity, points in zip(quantities, curves, strict=True):
        if points:
            values = tuple(value * quantity.scale for _, value in points)
            panels.append(CurvePanel(quantity, (Series(label, tuple(step for step, _ in points), values),)))
    return tuple(panels)


@dataclass(frozen=True)
class Bar:
    """One entry of a board chart, in percent: a run with its interval and the paper's number, or a
    published reference (people, BPL) that has neither interval nor run.

    A row of several seeds is one entry: its mean over the seeds with the 95% interval over the test
    episodes, as the board shows it; `seed_sd` is the seeds' spread, for a chart that draws it too.
    """

    label: str
    accuracy: float
    ci95: float | None
    published: float | None
    published_ci: float | None
    transductive: bool
    reference: bool
    seeds: int = 1
    seed_sd: float | None = None

    @property
    def low(self) -> float:
        return self.accuracy - (self.ci95 or 0.0)

    @property
    def high(self) -> float:
        return self.accuracy + (self.ci95 or 0.0)


@dataclass(frozen=True)
class BoardChart:
    """A board's accuracies, best first, with what the chart's title and axis must say."""

    title: str
    bars: tuple[Bar, ...]
    axis: str = "Test accuracy % (95% CI)"


def _bar(entry: LeaderboardRow | PublishedReference) -> Bar:
    if isinstance(entry, PublishedReference):
        return Bar(entry.name, entry.accuracy, None, None, None, False, True)
    label = entry.method + (f" {TRANSDUCTIVE_MARK}" if entry.transductive else "")
    # A mean over seeds says so where it is read, beside its name.
    label += f" ({len(entry.seeds)} seeds)" if len(entry.seeds) > 1 else ""
    return Bar(
        label,
        entry.accuracy,
        entry.ci95,
        entry.published,
        entry.published_ci,
        entry.transductive,
        False,
        len(entry.seeds),
        entry.seed_sd,
    )


def board_chart(board: Leaderboard) -> BoardChart:
    """The chart of one board: every run and reference, best first, as the board ranks them."""
    return BoardChart(board.setting.title, tuple(_bar(entry) for entry in board.entries()))
