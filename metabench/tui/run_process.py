"""A training run as the TUI sees it: the request, its command line, the state folded from its events."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metabench.config import DEVICES, EpisodeSpec, RunSpec, parse_overrides
from metabench.spec_rules import spec_problems

if TYPE_CHECKING:
    from metabench.methods.card import MethodCard

TERMINAL_EVENTS = ("finished", "failed", "interrupted")
CURVE_POINTS = 400  # a plot is at most a few hundred cells wide; older points are thinned


@dataclass(frozen=True)
class RunRequest:
    """What the "new run" form asks `metabench run` to do."""

    method: str
    protocol: str = "vinyals"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    preset: str = "smoke"
    device: str = "auto"
    seed: int = 0
    options: tuple[tuple[str, str], ...] = ()  # the method's own config keys, as `--set key=value`

    @property
    def setting(self) -> str:
        """Short human name of the setting, e.g. 'vinyals 5w1s'."""
        return f"{self.protocol} {self.ways}w{self.shots}s"


def run_command(request: RunRequest, db_path: Path) -> list[str]:
    """The argv that trains `request` and streams JSON events on stdout."""
    return [
        sys.executable, "-m", "metabench", "run", request.method,
        "--protocol", request.protocol,
        "--ways", str(request.ways),
        "--shots", str(request.shots),
        "--queries", str(request.queries),
        "--preset", request.preset,
        "--device", request.device,
        "--seed", str(request.seed),
        *(item for key, value in request.options for item in ("--set", f"{key}={value}")),
        "--events", "jsonl",
        "--db", str(db_path),
    ]  # fmt: skip


def resume_command(run_id: str, db_path: Path) -> list[str]:
    """The argv that resumes an interrupted run from its last checkpoint."""
    return [
        sys.executable,
        "-m",
        "metabench",
        "run",
        "--resume",
        run_id,
        "--events",
        "jsonl",
        "--db",
        str(db_path),
    ]


def child_environment() -> dict[str, str]:
    """The environment of a run subprocess: ours, unbuffered so every event arrives when it happens."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- the form's validation -------------------------------------------------------------------

NUMBER_FIELDS = ("ways", "shots", "queries", "seed")


def validate_form(values: Mapping[str, str], cards: Mapping[str, MethodCard] | None = None) -> dict[str, str]:
    """Check the raw text of the form; return {field: one-line problem} (empty when valid).

    The text is parsed here; what it means is checked by the same rules `metabench run` applies
    (metabench.spec_rules), so the form never accepts what the run would refuse. `cards` are the
    methods' cards by name, or None while the list is still loading.
    """
    errors: dict[str, str] = {}
    method = values.get("method", "").strip()
    if not method:
        errors["method"] = "choose a method"
    elif cards is not None and method not in cards:
        errors["method"] = f"unknown method {method!r}"
    if values.get("device", "") not in DEVICES:
        errors["device"] = f"choose one of {', '.join(DEVICES)}"
    numbers: dict[str, int] = {}
    for name in NUMBER_FIELDS:
        text = values.get(name, "").strip()
        if text.isdigit():
            numbers[name] = int(text)
        else:
            errors[name] = f"{name} must be a whole number"
    try:
        options = parse_overrides(values.get("options", "").split())
    except ValueError as exc:
        errors["options"] = str(exc)
        options = ()
    if len(numbers) == len(NUMBER_FIELDS):
        spec = _spec(values, numbers, options)
        card = None if cards is None or "method" in errors else cards[method]
        errors |= {k: v for k, v in spec_problems(spec, card).items() if k not in errors}
    return errors


def _spec(
    values: Mapping[str, str], numbers: Mapping[str, int], options: tuple[tuple[str, str], ...]
) -> RunSpec:
    return RunSpec(
        method=values.get("method", "").strip(),
        protocol=values.get("protocol", ""),
        episode=EpisodeSpec(numbers["ways"], numbers["shots"], numbers["queries"]),
        preset=values.get("preset", ""),
        seed=numbers["seed"],
        device=values.get("device", ""),
        overrides=options,
    )


def request_from_form(values: Mapping[str, str]) -> RunRequest:
    """Build the request from form text already accepted by validate_form."""
    return RunRequest(
        method=values["method"].strip(),
        protocol=values["protocol"],
        ways=int(values["ways"]),
        shots=int(values["shots"]),
        queries=int(values["queries"]),
        preset=values["preset"],
        device=values["device"],
        seed=int(values["seed"]),
        options=parse_overrides(values.get("options", "").split()),
    )


# --- events ------------------------------------------------------------------------------------


def parse_event(line: bytes | str) -> dict[str, Any] | None:
    """One stdout line as an event dict, or None when it is not a JSON object with an "event" key."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("event"), str) else None


@dataclass
class Curve:
    """A learning curve of (step, value) points with bounded length: when full, it halves its resolution
    and keeps an even stride, so a long run's plot costs the same as a short one's."""

    points: list[tuple[int, float]] = field(default_factory=list)
    stride: int = 1
    _seen: int = 0

    def append(self, step: int, value: float) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.points.append((step, value))
        if len(self.points) > CURVE_POINTS:
            del self.points[1::2]
            self.stride *= 2


@dataclass(frozen=True)
class RunSnapshot:
    """An immutable view of a live run, safe to hand to the UI thread in a message."""

    key: int
    title: str
    run_id: str | None
    events: int
    status: str
    phase: str
    step: int
    total_steps: int | None
    loss: float | None
    accuracy: float | None
    val_accuracy: float | None
    test_done: int
    test_total: int | None
    test_accuracy: float | None
    steps_per_s: float | None
    eta_s: float | None
    # (step, value): the running means of the progress events, and each validation's accuracy.
    losses: tuple[tuple[int, float], ...]
    accuracies: tuple[tuple[int, float], ...]
    val_accuracies: tuple[tuple[int, float], ...]
    metrics: tuple[tuple[str, float], ...]  # the method's own scalars, latest running means
    final_accuracy: float | None
    final_ci95: float | None
    episodes: int | None
    error: str | None
    resumable: bool
    exited: bool  # the process has ended (a terminal event comes a moment before the exit)

    @property
    def done(self) -> bool:
        """The run has reached its end state (finished, failed or interrupted)."""
        return self.status in TERMINAL_EVENTS

    @property
    def fraction(self) -> float | None:
        """Progress through meta-training in [0, 1], None when the total is not known yet."""
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


@dataclass
class LiveRun:
    """The state of one run subprocess, folded from its events (mutated only by its worker)."""

    key: int
    title: str
    run_id: str | None = None
    events: int = 0  # how many events arrived (each one may not reach the screen: they coalesce)
    status: str = "starting"
    phase: str = "starting"
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    test_done: int = 0
    test_total: int | None = None
    test_accuracy: float | None = None
    steps_per_s: float | None = None
    eta_s: float | None = None
    losses: Curve = field(default_factory=Curve)
    accuracies: Curve = field(default_factory=Curve)
    val_accuracies: Curve = field(default_factory=Curve)
    metrics: dict[str, float] = field(default_factory=dict)
    final_accuracy: float | None = None
    final_ci95: float | None = None
    episodes: int | None = None
    error: str | None = None
    can_resume: bool = True  # what the runner's "interrupted" event says
    exited: bool = False

    def apply(self, event: Mapping[str, Any]) -> None:
        """Fold one event into the state; unknown keys and kinds are ignored (the runner may grow)."""
        kind = event.get("event")
        self.events += 1
        if event.get("run_id"):
            self.run_id = str(event["run_id"])
        self.step = _int(event.get("step"), self.step)
        self.total_steps = _int(event.get("total_steps"), self.total_steps)
        self.steps_per_s = _float(event.get("steps_per_s"), self.steps_per_s)
        self.eta_s = _float(event.get("eta_s"), self.eta_s)
        if kind in ("started", "progress", "validation", "testing"):
            self.status = "running"
            self.phase = "training" if kind in ("started", "progress") else kind
        if kind == "progress":
            self.loss = _float(event.get("loss"), None)
            self.accuracy = _float(event.get("accuracy"), None)
            if self.loss is not None:
                self.losses.append(self.step, self.loss)
            if self.accuracy is not None:
                self.accuracies.append(self.step, self.accuracy)
            metrics = event.get("metrics")
            if isinstance(metrics, Mapping):
                values = {str(name): _float(value, None) for name, value in metrics.items()}
                self.metrics = {name: value for name, value in values.items() if value is not None}
        elif kind == "validation":
            self.val_accuracy = _float(event.get("accuracy"), self.val_accuracy)
            if self.val_accuracy is not None:
                self.val_accuracies.append(self.step, self.val_accuracy)
        elif kind == "testing":
            self.test_done = _int(event.get("episodes_done"), self.test_done)
            self.test_total = _int(event.get("episodes"), self.test_total)
            self.test_accuracy = _float(event.get("accuracy"), self.test_accuracy)
        elif kind == "finished":
            self.status = self.phase = "finished"
            self.final_accuracy = _float(event.get("accuracy"), None)
            self.final_ci95 = _float(event.get("ci95"), None)
            self.episodes = _int(event.get("episodes"), None)
            self.eta_s = 0.0
        elif kind == "failed":
            self.status = self.phase = "failed"
            self.error = one_line(str(event.get("error") or "the run failed without a message"))
        elif kind == "interrupted":
            self.status = self.phase = "interrupted"
            self.can_resume = bool(event.get("resumable", True))

    def process_exited(self, returncode: int, stderr_tail: list[str]) -> None:
        """Account for the process ending; a run that died without a final event has failed."""
        self.exited = True
        if self.status in TERMINAL_EVENTS:
            return
        self.status = self.phase = "failed"
        message = meaningful_line(stderr_tail)
        self.error = one_line(message or f"metabench run exited with code {returncode} and no message")

    def snapshot(self) -> RunSnapshot:
        return RunSnapshot(
            key=self.key,
            title=self.title,
            run_id=self.run_id,
            events=self.events,
            status=self.status,
            phase=self.phase,
            step=self.step,
            total_steps=self.total_steps,
            loss=self.loss,
            accuracy=self.accuracy,
            val_accuracy=self.val_accuracy,
            test_done=self.test_done,
            test_total=self.test_total,
            test_accuracy=self.test_accuracy,
            steps_per_s=self.steps_per_s,
            eta_s=self.eta_s,
            losses=tuple(self.losses.points),
            accuracies=tuple(self.accuracies.points),
            val_accuracies=tuple(self.val_accuracies.points),
            metrics=tuple(sorted(self.metrics.items())),
            final_accuracy=self.final_accuracy,
            final_ci95=self.final_ci95,
            episodes=self.episodes,
            error=self.error,
            resumable=self.status == "interrupted" and self.run_id is not None and self.can_resume,
            exited=self.exited,
        )


BOX_DRAWING = "".join(chr(code) for code in range(0x2500, 0x2580))


def meaningful_line(lines: list[str]) -> str:
    """The last line that says something: tracebacks end with the useful line, and rich error
    panels (Typer's) wrap it in box-drawing characters, which are stripped."""
    for line in reversed(lines):
        text = line.strip().strip(BOX_DRAWING).strip()
        if any(ch.isalnum() for ch in text):
            return text
    return ""


def one_line(message: str, limit: int = 300) -> str:
    """A message reduced to its one meaningful line, trimmed to `limit` characters."""
    text = meaningful_line(message.splitlines()) or message.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int(value: Any, default: int | None) -> Any:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float | None) -> Any:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default
