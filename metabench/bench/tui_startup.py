"""Benchmark `metabench tui`'s start-up: seconds from launch to its first frame, in a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The first frame of `metabench tui` is the catalog screen; its first tab reads "Survey table".
TUI_MARKER = "Survey table"
# The floor: the smallest Textual app, started the same way, so a slow machine shows as a ratio.
BASELINE_MARKER = "textual-baseline-frame"
BASELINE_CODE = f"""
from textual.app import App
from textual.widgets import Static

class Baseline(App):
    def compose(self):
        yield Static("{BASELINE_MARKER}")

Baseline().run()
"""
# Terminal control sequences: CSI (colours, cursor), OSC (titles, clipboard), charset and short ones.
_ESCAPES = re.compile(
    rb"\x1b(\[[0-9;?<=>$ ]*[A-Za-z~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMNOc])"
)
QUIT_GRACE_S = 5.0


@dataclass(frozen=True)
class StartupResult:
    """Launch-to-first-frame times of one program, in seconds."""

    program: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": list(self.seconds), "median": self.median}


def parse_size(text: str) -> tuple[int, int]:
    """'120x40' -> (120, 40); a ValueError that says the expected form otherwise."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 20 or int(match[2]) < 10:
        raise ValueError(f"bad terminal size {text!r}; write COLUMNSxLINES, at least 20x10, e.g. 120x40")
    return int(match[1]), int(match[2])


def time_to_first_frame(
    argv: list[str], marker: str, size: tuple[int, int] = (120, 40), timeout: float = 60.0
) -> float:
    """Seconds from starting `argv` on a fresh pseudo-terminal until `marker` is drawn; then quit it."""
    columns, lines = size
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(lines)}
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
    )
    os.close(slave)
    screen = b""
    try:
        while True:
            remaining = started + timeout - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{' '.join(argv)} drew no {marker!r} within {timeout:.0f} s")
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the program exited and closed the terminal
                chunk = b""
            if not chunk:
                raise RuntimeError(f"{' '.join(argv)} exited before drawing {marker!r}: {_tail(screen)}")
            screen += chunk
            # Styles may split a line into pieces but never a word of one label.
            if marker.encode() in _ESCAPES.sub(b"", screen):
                return time.perf_counter() - started
    finally:
        _quit(process, master)


def _quit(process: subprocess.Popen[bytes], master: int) -> None:
    """Press q, as a user would; kill the program if it does not leave."""
    try:
        if process.poll() is None:
            os.write(master, b"q")
            deadline = time.perf_counter() + QUIT_GRACE_S
            while process.poll() is None and time.perf_counter() < deadline:
                # Keep reading: a program blocked on a full terminal buffer cannot exit.
                if select.select([master], [], [], 0.05)[0]:
                    try:
                        os.read(master, 65536)
                    except OSError:
                        break
        if process.poll() is None:
            process.kill()
        process.wait()
    finally:
        os.close(master)


def _tail(screen: bytes) -> str:
    text = _ESCAPES.sub(b"", screen).decode(errors="replace").strip()
    return " ".join(text.split())[-300:] or "no output"


def measure_startup(repeat: int = 5, size: tuple[int, int] = (120, 40)) -> list[StartupResult]:
    """`metabench tui` and the Textual baseline, alternately, `repeat` times each."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="metabench-bench-tui-") as scratch:
        # A database of its own: the benchmark never touches the user's.
        tui = [sys.executable, "-m", "metabench", "tui", "--db", str(Path(scratch) / "bench.db")]
        baseline = [sys.executable, "-c", BASELINE_CODE]
        times: dict[str, list[float]] = {"metabench tui": [], "Textual baseline": []}
        for _ in range(repeat):
            times["metabench tui"].append(time_to_first_frame(tui, TUI_MARKER, size))
            times["Textual baseline"].append(time_to_first_frame(baseline, BASELINE_MARKER, size))
    return [StartupResult(program, tuple(seconds)) for program, seconds in times.items()]
