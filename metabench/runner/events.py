"""What a run reports while it runs: typed events, their JSON form, and the sinks that receive them."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, TextIO

# Keys present in every JSON event (null where they do not apply), so a reader can fold any line
# into its state without knowing the kind.
COMMON_KEYS = ("run_id", "step", "total_steps", "loss", "accuracy", "steps_per_s", "eta_s")


@dataclass(frozen=True)
class Started:
    kind: ClassVar[str] = "started"
    run_id: str
    method: str
    protocol: str
    setting: str  # e.g. "5w1s"
    queries: int
    preset: str
    seed: int
    device: str
    step: int  # where training begins: 0, or the checkpoint's step when resumed
    total_steps: int
    eval_episodes: int
    transductive: bool
    resumed: bool


@dataclass(frozen=True)
class Progress:
    kind: ClassVar[str] = "progress"
    run_id: str
    step: int
    total_steps: int
    loss: float  # mean training loss over the last few steps
    accuracy: float  # mean training-query accuracy over the last few steps, in [0, 1]
    steps_per_s: float | None
    eta_s: float | None
    metrics: dict[str, float] = field(default_factory=dict)  # the method's own scalars, running means


@dataclass(frozen=True)
class Validation:
    kind: ClassVar[str] = "validation"
    run_id: str
    step: int
    total_steps: int
    accuracy: float  # mean accuracy on the fixed validation episodes
    episodes: int


@dataclass(frozen=True)
class Testing:
    kind: ClassVar[str] = "testing"
    run_id: str
    step: int
    total_steps: int
    episodes_done: int
    episodes: int
    accuracy: float | None  # running mean over the episodes tested so far


@dataclass(frozen=True)
class Finished:
    kind: ClassVar[str] = "finished"
    run_id: str
    step: int
    total_steps: int
    accuracy: float
    ci95: float | None
    episodes: int
    transductive: bool
    train_time_s: float
    wall_time_s: float
    tasks_per_s: float | None
    # Where the portable JSON copy went; None with a one-line `warning` when it could not be written
    # (the result itself is safe in the database).
    record_file: str | None = None
    warning: str | None = None


@dataclass(frozen=True)
class Failed:
    kind: ClassVar[str] = "failed"
    run_id: str | None  # None when the run was refused before it was created (bad input)
    error: str  # one line
    step: int | None = None
    total_steps: int | None = None


@dataclass(frozen=True)
class Interrupted:
    kind: ClassVar[str] = "interrupted"
    run_id: str
    step: int  # steps completed; --resume continues from the checkpoint at checkpoint_step
    total_steps: int
    checkpoint_step: int | None
    resumable: bool


Event = Started | Progress | Validation | Testing | Finished | Failed | Interrupted
TERMINAL_KINDS = ("finished", "failed", "interrupted")


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of an event: "event" (its kind), the common keys, then its own fields."""
    data: dict[str, Any] = {"event": event.kind, **dict.fromkeys(COMMON_KEYS)}
    for item in fields(event):
        data[item.name] = getattr(event, item.name)
    return {key: _json_safe(value) for key, value in data.items()}


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity; a reader must never choke on a line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


class EventSink(Protocol):
    """Anything that receives a run's events; emit may raise KeyboardInterrupt to stop the run."""

    def emit(self, event: Event) -> None: ...


class NullSink:
    """Discards events (headless runs that only want the record)."""

    def emit(self, event: Event) -> None:
        return None


class CollectingSink:
    """Keeps every event in a list (tests, and callers that inspect the history afterwards)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]


class JsonLinesSink:
    """One compact JSON object per line, flushed at once, for a reading process (the TUI)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.closed = False

    def emit(self, event: Event) -> None:
        if self.closed:
            return
        try:
            self.stream.write(json.dumps(event_to_dict(event), separators=(",", ":")) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away; the run itself goes on and is still recorded in the database.
            self.closed = True


class FanOutSink:
    """Delivers each event to several sinks in order."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
