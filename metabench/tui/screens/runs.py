"""The runs screen: live runs launched from here, and the history of every run, polled every two seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Label
from textual.worker import get_current_worker

from metabench.tui import formatting as fmt
from metabench.tui import store
from metabench.tui.run_process import RunRequest, resume_command, run_command
from metabench.tui.screens.base import MainScreen
from metabench.tui.screens.run_record import RunRecordScreen
from metabench.tui.widgets.run_monitor import RunMonitor

if TYPE_CHECKING:
    from metabench.leaderboard.records import RunSummary

POLL_S = 2.0
HISTORY_LIMIT = 500

HISTORY_COLUMNS = (
    ("status", "Status"),
    ("method", "Method"),
    ("setting", "Setting"),
    ("accuracy", "Accuracy %"),
    ("budget", "Budget"),
    ("time", "Time"),
    ("device", "Device"),
    ("started", "Started"),
    ("run_id", "Run"),
    ("error", "Error"),
)


MARK = "✓ "  # before the method of a run marked for comparison


def history_cells(run: RunSummary, live_step: int | None = None, marked: bool = False) -> tuple[Text, ...]:
    """One history row: what a researcher scans for first, left to right.

    `live_step` is the step a live monitor of this run has seen: the database learns of steps only at
    checkpoints, so the row would lag behind the panel above it.
    """
    setting = f"{run.protocol} {run.ways}w{run.shots}s" + (f" q{run.queries}" if run.queries != 15 else "")
    step = run.steps_done if live_step is None or run.status != "running" else max(live_step, run.steps_done)
    steps = f"{run.preset} {step}/{run.meta_steps}"
    return (
        fmt.status_text(run.status + (" ↻" if run.resumable and run.status == "interrupted" else "")),
        Text.assemble((MARK, "bold green") if marked else "", (run.method, "bold")),
        Text(setting),
        Text(fmt.fraction_ci(run.accuracy, run.ci95), justify="right"),
        Text(steps),
        Text(fmt.duration(run.train_time_s), justify="right"),
        Text(run.device_name),
        Text(fmt.when(run.created_at)),
        Text(run.run_id, style="dim"),
        Text(run.error or "", style="red"),
    )


class RunsScreen(MainScreen):
    """Live monitors on top, the run history below; training happens in `metabench run` subprocesses."""

    MODE = "runs"
    TITLE = "Runs"
    HELP = (
        'Launch a run with n (or from a paper\'s "benchmark this"). It trains in a separate '
        "`metabench run` process: its progress, loss and accuracy curves, speed and ETA update live. "
        "Cancel (x) interrupts it cleanly, and it stays resumable (u). The history lists every run in "
        "the database, newest first, including runs started from other terminals; enter shows a run's "
        "record and learning curves; space marks runs and c overlays their curves."
    )
    BINDINGS = [
        Binding("x", "cancel_run", "Cancel"),
        Binding("u", "resume_run", "Resume"),
        Binding("d", "dismiss_finished", "Dismiss"),
        Binding("space", "mark_run", "Mark", show=False),  # in help: the footer is full at 80 columns
        Binding("c", "compare_runs", "Compare"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.history: list[RunSummary] = []
        self._shown_steps: dict[str, int] = {}
        self.marked: list[str] = []  # run ids marked for comparison, in marking order
        self._shown_marks: list[str] = []
        self._next_key = 0

    AUTO_FOCUS = "#history"

    def compose_body(self) -> ComposeResult:
        live = VerticalScroll(id="live")
        live.can_focus = False  # its buttons take the focus; a focused scroll shows no highlight
        yield live
        with Vertical(id="history-box"):
            yield Label("History", id="history-title", classes="section-title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="history")

    def on_mount(self) -> None:
        table = self.query_one("#history", DataTable)
        for key, label in HISTORY_COLUMNS:
            table.add_column(label, key=key)
        table.loading = True
        self.query_one("#live").display = False
        self.refresh_history()
        self.set_interval(POLL_S, self._poll)

    def on_screen_resume(self) -> None:
        self.refresh_history()

    # --- the history (polled) -------------------------------------------------------------------

    def _poll(self) -> None:
        # Only the visible screen polls: nobody reads the table while another screen is shown.
        if self.is_current:
            self.refresh_history()

    @work(thread=True, exclusive=True, group="runs-history", exit_on_error=False)
    def refresh_history(self) -> None:
        """Read the newest runs (a fresh connection sees what other processes committed)."""
        try:
            runs = store.recent_runs(self.app.db_path, HISTORY_LIMIT)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a locked or broken database must not kill the UI
            self.app.call_from_thread(self._history_failed, str(exc))
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_history, runs)

    def _history_failed(self, message: str) -> None:
        self.query_one("#history", DataTable).loading = False
        self.query_one("#history-title", Label).update(f"History: cannot read the database ({message})")

    def live_steps(self) -> dict[str, int]:
        """The step each live monitor has reached, by run id."""
        return {m.snapshot.run_id: m.snapshot.step for m in self.monitors() if m.snapshot.run_id}

    def _show_history(self, runs: list[RunSummary]) -> None:
        table = self.query_one("#history", DataTable)
        table.loading = False
        steps = self.live_steps()
        shown = (runs, steps, list(self.marked))
        if shown == (self.history, self._shown_steps, self._shown_marks) and table.row_count == len(runs):
            return
        self.history, self._shown_steps, self._shown_marks = shown
        selected = self.selected_run_id()
        table.clear()
        for run in runs:
            cells = history_cells(run, steps.get(run.run_id), run.run_id in self.marked)
            table.add_row(*cells, key=run.run_id)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        running = sum(run.status == "running" for run in runs)
        suffix = f", {running} running" if running else ""
        noun = "run" if len(runs) == 1 else "runs"
        title = f"History: {len(runs)} {noun}{suffix}  (newest first)"
        if not runs:
            title = "History: no runs yet. Press n to train and test a method (smoke takes seconds)."
        self.query_one("#history-title", Label).update(title)

    def selected_run_id(self) -> str | None:
        table = self.query_one("#history", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected_run(self) -> RunSummary | None:
        run_id = self.selected_run_id()
        return next((run for run in self.history if run.run_id == run_id), None)

    @on(DataTable.RowSelected, "#history")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(RunRecordScreen(event.row_key.value))

    def action_open_run(self) -> None:
        """Show the selected run's record and learning curve."""
        run_id = self.selected_run_id()
        if run_id:
            self.app.push_screen(RunRecordScreen(run_id))

    def action_mark_run(self) -> None:
        """Mark (or unmark) the selected run for comparison, and move to the next row."""
        run_id = self.selected_run_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self._show_history(self.history)
        self.query_one("#history", DataTable).action_cursor_down()

    def action_compare_runs(self) -> None:
        """Overlay the learning curves of the marked runs (or show the selected run's curves)."""
        from metabench.tui.screens.compare import CompareScreen

        run_ids = list(self.marked) or ([self.selected_run_id()] if self.selected_run_id() else [])
        if not run_ids:
            self.notify("No run to compare: mark runs in the history with space", severity="warning")
            return
        self.app.push_screen(CompareScreen(run_ids))

    # --- live runs ------------------------------------------------------------------------------

    def launch(self, request: RunRequest) -> RunMonitor:
        """Start a run subprocess for `request` and monitor it here."""
        title = f"{request.method} · {request.setting} · {request.preset} · seed {request.seed}"
        return self._mount_monitor(title, run_command(request, self.app.db_path))  # type: ignore[attr-defined]

    def resume(self, run_id: str, title: str) -> RunMonitor:
        """Resume an interrupted run (by id) and monitor it here."""
        return self._mount_monitor(f"{title} (resumed)", resume_command(run_id, self.app.db_path))  # type: ignore[attr-defined]

    def _mount_monitor(self, title: str, argv: list[str]) -> RunMonitor:
        self._next_key += 1
        monitor = RunMonitor(self._next_key, title, argv, self.app.db_path)  # type: ignore[attr-defined]
        live = self.query_one("#live", VerticalScroll)
        live.display = True
        live.mount(monitor, before=0)
        live.scroll_home(animate=False)
        self.notify(f"Started {title}", timeout=3)
        return monitor

    def monitors(self) -> list[RunMonitor]:
        return list(self.query(RunMonitor).results(RunMonitor))

    def active_count(self) -> int:
        return sum(monitor.running for monitor in self.monitors())

    @on(RunMonitor.Ended)
    def _run_ended(self, event: RunMonitor.Ended) -> None:
        snapshot = event.snapshot
        if snapshot.status == "finished":
            accuracy = fmt.fraction_ci(snapshot.final_accuracy, snapshot.final_ci95)
            self.notify(f"{snapshot.title}: {accuracy}%", title="Run finished")
        elif snapshot.status == "interrupted":
            self.notify(f"{snapshot.title}: interrupted, resumable with u", title="Run interrupted")
        else:
            self.notify(
                f"{snapshot.title}: {snapshot.error}", title="Run failed", severity="error", timeout=10
            )
        self.refresh_history()

    def _target_monitor(self, running: bool) -> RunMonitor | None:
        # The monitor holding focus, else the newest one in the wanted state.
        focused = self._focused_monitor()
        if focused is not None and focused.running == running:
            return focused
        return next((m for m in self.monitors() if m.running == running), None)

    def action_cancel_run(self) -> None:
        """Interrupt the focused (or newest) live run after its current step; again: at once."""
        monitor = self._target_monitor(running=True)
        if monitor is None:
            self.notify("No run is training", severity="warning")
            return
        again = monitor.cancel_requested
        monitor.cancel()
        message = "Stopping at once" if again else "Cancelling after this step: the run stays resumable"
        self.notify(message, timeout=3)

    async def cancel_all(self) -> None:
        """Interrupt every live run and wait until their processes have exited."""
        live = [monitor for monitor in self.monitors() if monitor.running]
        for monitor in live:
            monitor.cancel()
        await asyncio.gather(*(monitor.wait_stopped() for monitor in live))

    def action_resume_run(self) -> None:
        """Resume an interrupted run: the focused live panel's, the one selected in the focused history,
        or else the newest interrupted live panel's."""
        focused = self._focused_monitor()
        if focused is not None and focused.snapshot.resumable:
            focused.resume()
            return
        run = self.selected_run() if self.query_one("#history", DataTable).has_focus else None
        if run is not None and run.status == "interrupted" and run.resumable:
            self.resume_stored(run)
            return
        monitor = next((m for m in self.monitors() if m.snapshot.resumable), None)
        if monitor is not None:
            monitor.resume()
        elif run is not None:
            self.notify(f"Run {run.run_id} is {run.status}; only interrupted runs resume", severity="warning")
        else:
            self.notify("No interrupted run to resume: select one in the history", severity="warning")

    def resume_stored(self, run: RunSummary) -> None:
        """Resume a run of the history, in its live panel when it has one (never in two at once)."""
        panel = next((m for m in self.monitors() if m.snapshot.run_id == run.run_id), None)
        if panel is not None and panel.snapshot.resumable:
            panel.resume()
            return
        if panel is not None:
            self._remove_monitors([panel])  # an old panel of that run, which must not offer Resume again
        title = f"{run.method} · {run.protocol} {run.ways}w{run.shots}s · {run.preset} · seed {run.seed}"
        self.resume(run.run_id, title)

    def _focused_monitor(self) -> RunMonitor | None:
        focused = self.focused
        while focused is not None and not isinstance(focused, RunMonitor):
            focused = focused.parent  # type: ignore[assignment]
        return focused

    def action_dismiss_finished(self) -> None:
        """Remove the monitors of runs that have ended."""
        self._remove_monitors([m for m in self.monitors() if m.snapshot is not None and m.snapshot.exited])

    @on(RunMonitor.Dismissed)
    def _dismissed(self, event: RunMonitor.Dismissed) -> None:
        self._remove_monitors([event.monitor])

    def _remove_monitors(self, gone: list[RunMonitor]) -> None:
        """Remove monitors, first moving the focus out of them: focus must never stay on a removed widget
        (the footer and every key would stop working)."""
        if not gone:
            return
        if self._focused_monitor() in gone:
            staying = [m for m in self.monitors() if m not in gone]
            if not any(m.focus_first_button() for m in staying):
                self.query_one("#history", DataTable).focus()
        for monitor in gone:
            monitor.remove()
        self.call_after_refresh(self._hide_empty_live)

    def _hide_empty_live(self) -> None:
        self.query_one("#live").display = bool(self.monitors())

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Cancel run", "Interrupt the live run (resumable)", self.action_cancel_run)
        yield SystemCommand("Resume run", "Resume the selected interrupted run", self.action_resume_run)
        yield SystemCommand(
            "Dismiss finished runs", "Clear ended runs from the live panel", self.action_dismiss_finished
        )
        yield SystemCommand(
            "Run details", "Record and learning curve of the selected run", self.action_open_run
        )
        yield SystemCommand("Mark run", "Mark the selected run for comparison", self.action_mark_run)
        yield SystemCommand(
            "Compare runs", "Overlay the marked runs' learning curves", self.action_compare_runs
        )
