"""A live run: drives one `metabench run --events jsonl` subprocess and shows its progress and curves."""

from __future__ import annotations

import asyncio
import signal
from collections import deque
from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import var
from textual.widgets import Button, Label, ProgressBar

from metabench.config import RUNNING_WINDOW
from metabench.tui import formatting as fmt
from metabench.tui.run_process import LiveRun, RunSnapshot, child_environment, parse_event, resume_command
from metabench.tui.widgets.curve_plot import CurvePlots

STDERR_LINES = 40  # enough to find the one line that explains a crash
STREAM_LIMIT = 1 << 20  # an event line (a finished run's record) may exceed asyncio's 64 KiB default
PLOT_HEIGHT = 9  # rows per live plot: axes, ticks and a curve's shape, with room left for the history


class RunMonitor(Vertical):
    """One run subprocess and its live view: progress bar, loss and accuracy sparklines, rate and ETA."""

    class Updated(Message, bubble=False):
        """A new state of the run; a newer one replaces any still queued: a fast run cannot flood the UI."""

        def __init__(self, snapshot: RunSnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunMonitor.Updated) and message.snapshot.key == self.snapshot.key

    class Ended(Message):
        """The subprocess has exited (finished, failed or interrupted); tells the screen to refresh."""

        def __init__(self, monitor: RunMonitor, snapshot: RunSnapshot) -> None:
            super().__init__()
            self.monitor = monitor
            self.snapshot = snapshot

    class Dismissed(Message):
        """The Dismiss button was pressed: the screen removes the monitor."""

        def __init__(self, monitor: RunMonitor) -> None:
            super().__init__()
            self.monitor = monitor

    snapshot: var[RunSnapshot | None] = var(None)

    def __init__(self, key: int, title: str, argv: list[str], db_path: Path) -> None:
        super().__init__(id=f"run-{key}", classes="run-monitor")
        self.key = key
        self.title = title
        self.argv = argv
        self.db_path = db_path
        self.live = LiveRun(key=key, title=title)
        self.process: asyncio.subprocess.Process | None = None
        self.cancel_requested = False
        self.set_reactive(RunMonitor.snapshot, self.live.snapshot())

    def compose(self) -> ComposeResult:
        with Horizontal(classes="monitor-head"):
            yield Label(self.title, classes="monitor-title")
            yield Label("starting", classes="monitor-status")
        yield Label("run: starting (loading torch and Omniglot)", classes="monitor-run-id")
        with Horizontal(classes="monitor-progress"):
            yield ProgressBar(total=None, show_eta=False, id=f"bar-{self.key}")
            yield Label("", classes="monitor-rate")
        yield Label("", classes="monitor-values")
        yield Label("", classes="monitor-metrics")
        yield CurvePlots(classes="monitor-plots", plot_height=PLOT_HEIGHT, min_plot_width=36, empty="")
        yield Label("", classes="monitor-error")
        with Horizontal(classes="monitor-buttons"):
            yield Button("Cancel", variant="error", classes="cancel-run", compact=True)
            yield Button("Resume", variant="success", classes="resume-run", compact=True)
            yield Button("Dismiss", classes="dismiss-run", compact=True)

    def on_mount(self) -> None:
        self.watch_snapshot(self.snapshot)
        self.start()

    # --- the subprocess ------------------------------------------------------------------------

    def start(self) -> None:
        """Run self.argv in an async worker (on the app's event loop; no thread needed for pipes)."""
        self.cancel_requested = False
        self.run_worker(self._drive(), name=f"run {self.title}", group="runs", exit_on_error=False)

    async def _drive(self) -> None:
        stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_environment(),
                # Own session: a terminal signal aimed at the TUI must not kill training mid-write.
                start_new_session=True,
                limit=STREAM_LIMIT,
            )
        except OSError as exc:
            self.live.process_exited(-1, [f"cannot start metabench run: {exc}"])
            self._publish(ended=True)
            return
        self.process = process
        assert process.stdout is not None and process.stderr is not None
        drain = asyncio.create_task(_collect_lines(process.stderr, stderr_tail))
        try:
            async for raw in process.stdout:
                event = parse_event(raw)
                if event is not None:
                    if self.cancel_requested and not self.live.events:
                        process.send_signal(signal.SIGTERM)  # a cancel asked for before this first event
                    self.live.apply(event)
                    self._publish()
            returncode = await process.wait()
            await drain
        except asyncio.CancelledError:
            # The widget is going away (or the app is closing): never leave an orphan training. A run
            # already asked to stop is left to finish its step (a second signal would cut it short).
            await _terminate(process, signal_first=not self.cancel_requested)
            drain.cancel()
            raise
        finally:
            _close_pipes(process)
        self.live.process_exited(returncode, list(stderr_tail))
        self._publish(ended=True)

    def _publish(self, ended: bool = False) -> None:
        snapshot = self.live.snapshot()
        self.post_message(self.Updated(snapshot))
        if ended:
            self.post_message(self.Ended(self, snapshot))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def cancel(self) -> bool:
        """Ask the run to stop: SIGTERM makes it finish the current step, checkpoint and record itself
        as interrupted; a second SIGTERM asks it to stop at once (the runner's own convention)."""
        if not self.running:
            return False
        assert self.process is not None
        if self.live.events or self.cancel_requested:
            self.process.send_signal(signal.SIGTERM)
        # else: still importing torch and loading data, before the runner's signal handlers exist, where
        # SIGTERM would kill it outright; the signal goes out with its first event (_drive).
        self.cancel_requested = True
        self.query_one(".monitor-status", Label).update(fmt.status_text("cancelling"))
        return True

    async def wait_stopped(self, timeout: float = 30.0) -> None:
        """Wait until the subprocess has exited (used before the app quits)."""
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()

    def resume(self) -> bool:
        """Continue an interrupted run from its checkpoint, in this same monitor."""
        snapshot = self.snapshot
        if snapshot is None or not snapshot.resumable or not snapshot.exited:
            return False
        assert snapshot.run_id is not None
        self.argv = resume_command(snapshot.run_id, self.db_path)
        # A fresh state: the old step, status and "cancelling" would show until the first event,
        # and the resumed run's "started" event says where training continues.
        self.live = LiveRun(key=self.key, title=self.title, run_id=snapshot.run_id, phase="resuming")
        self.cancel_requested = False
        self.process = None
        self.snapshot = self.live.snapshot()
        self.start()
        return True

    # --- the view -------------------------------------------------------------------------------

    def on_run_monitor_updated(self, message: RunMonitor.Updated) -> None:
        self.snapshot = message.snapshot

    def watch_snapshot(self, snapshot: RunSnapshot | None) -> None:
        if snapshot is None:
            return
        status = snapshot.phase if snapshot.status in ("running", "starting") else snapshot.status
        if self.cancel_requested and not snapshot.done:
            status = "cancelling"
        self.query_one(".monitor-title", Label).update(snapshot.title)
        if snapshot.run_id:
            self.query_one(".monitor-run-id", Label).update(f"run: {snapshot.run_id}")
        elif snapshot.exited:
            self.query_one(".monitor-run-id", Label).update("run: none (refused before it was created)")
        self.query_one(".monitor-status", Label).update(fmt.status_text(status))
        bar = self.query_one(ProgressBar)
        if snapshot.phase == "testing" and snapshot.test_total:
            bar.update(total=snapshot.test_total, progress=snapshot.test_done)
        elif snapshot.total_steps:
            bar.update(total=snapshot.total_steps, progress=snapshot.step)
        elif snapshot.status == "finished":
            bar.update(total=1, progress=1)  # nothing to train (pixels-nn): a full bar, not a pulse
        elif snapshot.exited:
            bar.update(total=1, progress=0)  # refused or crashed before training: stop the pulse
        self.query_one(".monitor-rate", Label).update(self._rate_text(snapshot))
        values = self.query_one(".monitor-values", Label)
        values.update(self._values_text(snapshot))
        values.display = snapshot.loss is not None or snapshot.val_accuracy is not None
        # A method without meta-training (pixels-nn) has no curves to draw.
        plots = self.query_one(CurvePlots)
        plots.display = bool(snapshot.losses)
        if snapshot.losses:
            from metabench.leaderboard.figures import live_curves  # loaded by the history's first read

            curves = (snapshot.losses, snapshot.accuracies, snapshot.val_accuracies)
            plots.show(live_curves(snapshot.title, curves))
        metrics = self.query_one(".monitor-metrics", Label)
        metrics.update(
            "  ".join(f"[dim]{escape(name)}[/dim] {value:.4g}" for name, value in snapshot.metrics)
        )
        metrics.display = bool(snapshot.metrics)
        error = self.query_one(".monitor-error", Label)
        error.update(f"error: {snapshot.error}" if snapshot.error else "")
        error.display = bool(snapshot.error)
        focused_here = self.screen.focused in self.query(Button)
        self.query_one(".cancel-run", Button).display = not snapshot.exited
        self.query_one(".resume-run", Button).display = snapshot.resumable and snapshot.exited
        self.query_one(".dismiss-run", Button).display = snapshot.exited
        if focused_here and not self.screen.focused.display:  # type: ignore[union-attr]
            # The button in focus was hidden (Cancel when the run ended): focus the next one shown.
            self.focus_first_button()
        self.set_class(snapshot.done, "-done")
        self.set_class(snapshot.status == "failed", "-failed")

    @staticmethod
    def _rate_text(snapshot: RunSnapshot) -> str:
        if snapshot.phase == "resuming":
            return "resuming from the last checkpoint…"
        steps = f"step {snapshot.step}" + (f"/{snapshot.total_steps}" if snapshot.total_steps else "")
        if snapshot.status == "finished":
            episodes = f" on {snapshot.episodes} episodes" if snapshot.episodes else ""
            return f"{steps}  test {fmt.fraction_ci(snapshot.final_accuracy, snapshot.final_ci95)}%{episodes}"
        if snapshot.done:
            return f"{steps}, {snapshot.status}"
        if snapshot.phase == "testing":
            accuracy = snapshot.test_accuracy
            running = "" if accuracy is None else f", running accuracy {fmt.fraction(accuracy, 1)}%"
            return f"testing: {snapshot.test_done}/{snapshot.test_total or '?'} episodes{running}"
        return f"{steps}  {fmt.rate(snapshot.steps_per_s)}/s  ETA {fmt.duration(snapshot.eta_s)}"

    @staticmethod
    def _values_text(snapshot: RunSnapshot) -> str:
        """The latest numbers, saying what they are: the progress events' running means, unlike the
        stored curve's per-interval means, so the two may end at different numbers."""
        parts = []
        if snapshot.loss is not None:
            parts.append(f"loss [b]{snapshot.loss:.3f}[/b]")
        if snapshot.accuracy is not None:
            parts.append(f"train acc [b]{fmt.fraction(snapshot.accuracy, 1)}%[/b]")
        if parts:
            parts.append(f"[dim](means of the last {RUNNING_WINDOW} steps)[/dim]")
        if snapshot.val_accuracy is not None:
            where = f" at step {snapshot.val_accuracies[-1][0]}" if snapshot.val_accuracies else ""
            parts.append(f"val acc [b]{fmt.fraction(snapshot.val_accuracy, 1)}%[/b]{where}")
        return "  ".join(parts)

    def focus_first_button(self) -> bool:
        """Focus this monitor's first visible button; False when none is shown."""
        shown = [button for button in self.query(Button) if button.display]
        if shown:
            shown[0].focus()
        return bool(shown)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.has_class("cancel-run"):
            self.cancel()
        elif event.button.has_class("resume-run"):
            self.resume()
        elif event.button.has_class("dismiss-run"):
            # The screen removes it, so that the focus first moves to a widget that stays.
            self.post_message(self.Dismissed(self))


async def _collect_lines(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    # Drain stderr continuously (a full pipe would block the child) and keep its last lines.
    async for raw in stream:
        tail.append(raw.decode("utf-8", "replace").rstrip())


def _close_pipes(process: asyncio.subprocess.Process) -> None:
    # asyncio closes a finished child's transport only when it is garbage collected, which may be
    # after the event loop has gone (tests, app exit): close it now.
    transport = getattr(process, "_transport", None)
    if transport is not None and process.returncode is not None:
        transport.close()


async def _terminate(process: asyncio.subprocess.Process, signal_first: bool = True) -> None:
    if process.returncode is None:
        if signal_first:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
