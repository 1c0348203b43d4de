"""Ctrl-C, SIGTERM and SIGHUP as a polite stop request, honoured between steps so checkpoints stay whole."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StopRequest:
    """Set by a signal; the training loop checks it at every step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def check(self) -> None:
        """Raise KeyboardInterrupt at a safe point once a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt(self.signal_name or "stop requested")


# SIGHUP's default would kill the process between two writes and leave the run "running" forever.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT, SIGTERM (what the TUI sends to cancel) and SIGHUP (a closed terminal or SSH session)
    to a StopRequest while the block runs.

    A step interrupted half-way would leave the model between two states, so the first signal only
    asks the loop to stop after the current step; a second one interrupts at once (and the run
    falls back to its previous checkpoint). Signal handlers exist only in the main thread; elsewhere
    the request simply never fires and KeyboardInterrupt keeps its usual meaning.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        stop.requested = True
        stop.signal_name = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
