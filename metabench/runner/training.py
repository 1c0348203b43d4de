"""Bookkeeping of the training loop: the checkpointable state, the learning curve and throttled progress."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from metabench.config import RUNNING_WINDOW
from metabench.leaderboard.records import CurvePoint
from metabench.methods.base import StepStats
from metabench.runner.events import Progress

CURVE_POINTS = 100  # about this many learning-curve points per run
PROGRESS_INTERVAL_S = 0.1  # at most ~10 progress events per second


@dataclass
class TrainingState:
    """Everything about the loop itself that a checkpoint must carry for an exact resume."""

    step: int = 0
    curve: list[CurvePoint] = field(default_factory=list)
    window_loss: float = 0.0
    window_accuracy: float = 0.0
    window_steps: int = 0
    window_metrics: dict[str, float] = field(default_factory=dict)  # sums of the method's own scalars
    train_time_s: float = 0.0
    tasks: int = 0

    def add_step(self, step: int, stats: StepStats, seconds: float) -> None:
        self.step = step
        self.window_loss += stats.loss
        self.window_accuracy += stats.accuracy
        for name, value in stats.metrics.items():
            self.window_metrics[name] = self.window_metrics.get(name, 0.0) + value
        self.window_steps += 1
        self.train_time_s += seconds

    def close_point(self) -> None:
        """Add a curve point with the means over the steps since the previous point."""
        if self.window_steps == 0:
            return
        steps = self.window_steps
        metrics = {name: total / steps for name, total in self.window_metrics.items()}
        self.curve.append(
            CurvePoint(self.step, self.window_loss / steps, self.window_accuracy / steps, None, metrics)
        )
        self.window_loss = self.window_accuracy = 0.0
        self.window_steps = 0
        self.window_metrics = {}

    def set_validation(self, accuracy: float) -> None:
        """Attach a validation accuracy to the point of the current step (creating it if needed)."""
        if not self.curve or self.curve[-1].step != self.step:
            self.curve.append(CurvePoint(self.step, None, None))
        self.curve[-1] = replace(self.curve[-1], val_accuracy=accuracy)

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "curve": [point.to_dict() for point in self.curve],
            "window": [self.window_loss, self.window_accuracy, self.window_steps],
            "window_metrics": dict(self.window_metrics),
            "train_time_s": self.train_time_s,
            "tasks": self.tasks,
        }

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> TrainingState:
        loss, accuracy, steps = data["window"]
        return cls(
            step=int(data["step"]),
            curve=[CurvePoint.from_dict(point) for point in data["curve"]],
            window_loss=float(loss),
            window_accuracy=float(accuracy),
            window_steps=int(steps),
            window_metrics={str(k): float(v) for k, v in data.get("window_metrics", {}).items()},
            train_time_s=float(data["train_time_s"]),
            tasks=int(data["tasks"]),
        )


def curve_interval(total_steps: int) -> int:
    return max(1, total_steps // CURVE_POINTS)


class ProgressMeter:
    """Turns steps into Progress events: running means, steps/s, ETA, and at most ~10 events a second."""

    def __init__(self, run_id: str, start_step: int, total_steps: int) -> None:
        self.run_id = run_id
        self.start_step = start_step
        self.total_steps = total_steps
        self.started = time.perf_counter()
        self.last_emit: float | None = None
        self.losses: deque[float] = deque(maxlen=RUNNING_WINDOW)
        self.accuracies: deque[float] = deque(maxlen=RUNNING_WINDOW)
        self.metrics: dict[str, deque[float]] = {}

    def update(self, step: int, stats: StepStats) -> Progress | None:
        """Record a step; return an event when one is due (the first, the last, then every 0.1 s)."""
        self.losses.append(stats.loss)
        self.accuracies.append(stats.accuracy)
        for name, value in stats.metrics.items():
            self.metrics.setdefault(name, deque(maxlen=RUNNING_WINDOW)).append(value)
        now = time.perf_counter()
        due = (
            self.last_emit is None or step == self.total_steps or now - self.last_emit >= PROGRESS_INTERVAL_S
        )
        if not due:
            return None
        self.last_emit = now
        rate = self.steps_per_s(step, now)
        return Progress(
            run_id=self.run_id,
            step=step,
            total_steps=self.total_steps,
            loss=sum(self.losses) / len(self.losses),
            accuracy=sum(self.accuracies) / len(self.accuracies),
            metrics={name: sum(values) / len(values) for name, values in self.metrics.items()},
            steps_per_s=rate,
            eta_s=(self.total_steps - step) / rate if rate else None,
        )

    def steps_per_s(self, step: int, now: float | None = None) -> float | None:
        elapsed = (now if now is not None else time.perf_counter()) - self.started
        done = step - self.start_step
        return done / elapsed if done > 0 and elapsed > 0 else None


class CountingSampler:
    """Wraps an EpisodeSampler to count the tasks a method draws (for tasks/s), delegating the rest."""

    def __init__(self, sampler: Any, state: TrainingState) -> None:
        self._sampler = sampler
        self._state = state

    def sample(self, batch_size: int, *args: Any, **kwargs: Any) -> Any:
        self._state.tasks += batch_size
        return self._sampler.sample(batch_size, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sampler, name)
