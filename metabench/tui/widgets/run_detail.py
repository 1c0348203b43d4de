"""A stored run's record, its learning curves as plots and the method's own metrics as sparklines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.widgets import Label, Sparkline, Static

from metabench.tui import formatting as fmt
from metabench.tui.widgets.curve_plot import CurvePlots

if TYPE_CHECKING:
    from metabench.leaderboard import LeaderboardRow, PublishedReference
    from metabench.leaderboard.records import RunRecord


def points(count: int) -> str:
    """'1 point', '12 points'."""
    return f"{count} point{'' if count == 1 else 's'}"


def curve_summary(record: RunRecord) -> str:
    """How long the stored curve is and its last values, as content markup."""
    curve = record.curve
    if not curve:
        return "[dim]curve[/dim]     none recorded"
    last = []
    for name, field in (("loss", "loss"), ("train", "train_accuracy"), ("val", "val_accuracy")):
        values = [getattr(point, field) for point in curve if getattr(point, field) is not None]
        if values:
            last.append(
                f"{name} {values[-1]:.3f}" if field == "loss" else f"{name} {fmt.fraction(values[-1], 1)} %"
            )
    return f"[dim]curve[/dim]     {points(len(curve))} to step {curve[-1].step}" + (
        f"; last {', '.join(last)}" if last else ""
    )


def record_markup(record: RunRecord) -> str:
    """The record's facts as content markup, most useful first."""
    episode = record.episode
    status = fmt.STATUS_STYLES.get(record.status, "")
    state = f"[{status}]{record.status}[/]" if status else record.status
    lines = [
        f"[b]{escape(record.method)}[/b]  [dim]family {escape(record.family)}[/dim]  {state}",
        f"[dim]run[/dim]       {escape(record.run_id)}",
        f"[dim]setting[/dim]   {escape(record.protocol)} {episode.ways}-way {episode.shots}-shot, "
        f"{episode.queries} queries per class",
        f"[dim]accuracy[/dim]  [b]{fmt.fraction_ci(record.accuracy, record.ci95)}[/b] %"
        + (f" on {record.eval_episodes} test episodes" if record.eval_episodes else ""),
        f"[dim]budget[/dim]    {escape(record.preset)}: {record.steps_done}/{record.meta_steps} meta-steps, "
        f"seed {record.seed}",
        f"[dim]device[/dim]    {escape(record.device_name)} ({escape(record.device_type)})",
        f"[dim]time[/dim]      train {fmt.duration(record.train_time_s)}, "
        f"test {fmt.duration(record.eval_time_s)}, wall {fmt.duration(record.wall_time_s)}",
        f"[dim]started[/dim]   {fmt.when(record.created_at)}"
        + (f"  finished {fmt.when(record.finished_at)}" if record.finished_at else ""),
        curve_summary(record),
    ]
    if record.transductive:
        lines.append("[b yellow]† transductive evaluation[/] [dim](test-batch BatchNorm statistics)[/dim]")
    if record.tasks_per_s:
        lines.append(f"[dim]speed[/dim]     {record.tasks_per_s:.1f} tasks/s")
    if record.error:
        lines.append(f"[b red]error[/]     {escape(record.error)}")
    if record.resumable and record.status == "interrupted":
        lines.append(
            "[yellow]interrupted: resumable from its last checkpoint (press u on the runs screen)[/]"
        )
    return "\n".join(lines)


def seeds_markup(row: LeaderboardRow) -> str:
    """What a board row adds to its first seed's record, as content markup: the seeds' mean and spread,
    each seed's accuracy and the other seeds' runs; and how its test against the row above paired seeds.
    Empty for a row of one run paired plainly."""
    lines = []
    if len(row.seeds) > 1:
        pairs = zip(row.seeds, row.seed_accuracies, strict=True)
        per_seed = ", ".join(f"{seed}: {fmt.percent(accuracy)}" for seed, accuracy in pairs)
        lines += [
            f"[b]{len(row.seeds)} seeds[/b]   mean [b]{fmt.percent_ci(row.accuracy, row.ci95)}[/b] % "
            f"(95% CI over the test episodes), sd {fmt.percent(row.seed_sd)} over the seeds",
            f"[dim]per seed[/dim]  {per_seed} %",
            f"[dim]runs[/dim]      seed {row.seeds[0]}'s record below; the others: "
            + ", ".join(escape(run_id) for run_id in row.run_ids[1:]),
        ]
    if row.versus_note:
        lines.append(f"[dim]vs above[/dim]  {escape(row.versus_note)}")
    return "\n".join(lines)


class RunDetail(VerticalScroll):
    """Shows one RunRecord (its facts, then its learning curves); empty until show() is called."""

    def compose(self) -> ComposeResult:
        yield Static("[dim]Select a run to see its record and learning curve.[/dim]", classes="record")
        yield CurvePlots(classes="detail-plots", empty="")

    def on_mount(self) -> None:
        self.query_one(CurvePlots).display = False

    def show(self, record: RunRecord | None, row: LeaderboardRow | None = None) -> None:
        """Display `record` (None: the run was deleted meanwhile), under what its board `row` adds to it
        when the record stands for a row of several seeds."""
        from metabench.leaderboard.figures import learning_curves

        self.record = record
        static = self.query_one(".record", Static)
        plots = self.query_one(CurvePlots)
        if record is None:
            static.update("[dim]This run is no longer in the database.[/dim]")
            plots.display = False
            self.query(".metric-curve").remove()
            return
        group = seeds_markup(row) if row is not None and row.run_id == record.run_id else ""
        static.update(f"{group}\n\n{record_markup(record)}" if group else record_markup(record))
        plots.show(learning_curves([record]))
        plots.display = bool(record.curve)
        self._show_metrics(record)

    def _show_metrics(self, record: RunRecord) -> None:
        """One row per named scalar the method reported (a gradient norm, a learned step size)."""
        self.query(".metric-curve").remove()
        names = sorted({name for point in record.curve for name in point.metrics})
        rows = []
        for name in names:
            values = [point.metrics[name] for point in record.curve if name in point.metrics]
            rows.append(
                Horizontal(
                    Label(name, classes="curve-label"),
                    Sparkline(values, summary_function=max, classes="curve"),
                    Label(f"{values[-1]:.4g}  {points(len(values))}", classes="curve-value"),
                    classes="detail-curve metric-curve",
                )
            )
        if rows:
            self.mount_all(rows)

    def show_reference(self, reference: PublishedReference) -> None:
        """A published reference's source and figure: it is not a run, so it has no record or curve."""
        self.record = None
        lines = [
            f"[b]{escape(reference.name)}[/b]  [dim]published reference, not a run[/dim]",
            f"[dim]setting[/dim]   {escape(reference.protocol)} {reference.ways}-way {reference.shots}-shot",
            f"[dim]accuracy[/dim]  [b]{reference.accuracy:.1f}[/b] % ({reference.error:.1f} % error)",
            f"[dim]source[/dim]    {escape(reference.paper)}, {escape(reference.table)}",
        ]
        if reference.note:
            lines.append(f"[dim]note[/dim]      {escape(reference.note)}")
        self.query_one(".record", Static).update("\n".join(lines))
        self.query_one(CurvePlots).display = False
        self.query(".metric-curve").remove()
