"""Ctrl-C, SIGTERM and SIGHUP as a polite stop request, for a run (between steps) and a sweep (no new job).

No torch: the sweep's executors import it too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

# SIGHUP's default would kill the process between two writes and leave the run "running" forever.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextmanager
def on_stop_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Call `on_signal(signum)` for every SIGINT, SIGTERM and SIGHUP while the block runs.

    The handler runs in the main thread between two bytecodes: `on_signal` should only note the
    request (a flag, a counter) for a loop to act on. Signal handlers exist only in the main thread;
    elsewhere none is installed and the signals keep their usual meaning.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class StopRequest:
    """Set by a signal; the training loop checks it at every step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def check(self) -> None:
        """Raise KeyboardInterrupt at a safe point once a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt(self.signal_name or "stop requested")


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT, SIGTERM (what the TUI sends to cancel) and SIGHUP (a closed terminal or SSH session)
    to a StopRequest while the block runs.

    A step interrupted half-way would leave the model between two states, so the first signal only
    asks the loop to stop after the current step; a second one interrupts at once (and the run
    falls back to its previous checkpoint). Outside the main thread the request never fires and
    KeyboardInterrupt keeps its usual meaning.
    """
    stop = StopRequest()

    def request(signum: int) -> None:
        if stop.requested:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        stop.requested = True
        stop.signal_name = signal.Signals(signum).name

    with on_stop_signals(request):
        yield stop
