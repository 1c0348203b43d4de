"""A stored run's record and learning curve (loss, train and validation accuracy as sparklines)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.widgets import Label, Sparkline, Static

from metabench.tui import formatting as fmt

if TYPE_CHECKING:
    from metabench.leaderboard import PublishedReference
    from metabench.leaderboard.records import RunRecord

CURVES = (("loss", "loss"), ("train acc", "train_accuracy"), ("val acc", "val_accuracy"))


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


class RunDetail(VerticalScroll):
    """Shows one RunRecord; empty until show() is called."""

    def compose(self) -> ComposeResult:
        yield Static("[dim]Select a run to see its record and learning curve.[/dim]", classes="record")
        for label, field in CURVES:
            with Horizontal(classes="detail-curve", id=f"curve-{field}"):
                yield Label(label, classes="curve-label")
                yield Sparkline([], summary_function=max, classes="curve")
                yield Label("", classes="curve-value")

    def on_mount(self) -> None:
        for _, field in CURVES:
            self.query_one(f"#curve-{field}").display = False

    def show(self, record: RunRecord | None) -> None:
        """Display `record` (None: the run was deleted meanwhile)."""
        self.record = record
        static = self.query_one(".record", Static)
        if record is None:
            static.update("[dim]This run is no longer in the database.[/dim]")
            return
        static.update(record_markup(record))
        for _, field in CURVES:
            values = [getattr(point, field) for point in record.curve if getattr(point, field) is not None]
            row = self.query_one(f"#curve-{field}", Horizontal)
            row.display = bool(values)
            row.query_one(Sparkline).data = values
            if values:
                last = values[-1]
                text = f"{last:.3f}" if field == "loss" else f"{fmt.fraction(last, 1)}%"
                row.query_one(".curve-value", Label).update(f"{text}  ({len(values)} pts)")
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
                    Label(f"{values[-1]:.4g}  ({len(values)} pts)", classes="curve-value"),
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
        for _, field in CURVES:
            self.query_one(f"#curve-{field}", Horizontal).display = False
