"""The run record: one typed, JSON-portable account of a benchmark run (torch-free, so the TUI reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metabench.config import EpisodeSpec, RunSpec
from metabench.leaderboard.checks import (
    count,
    finite,
    fraction,
    listed,
    metric_values,
    optional,
    required,
    shown,
)
from metabench.leaderboard.record_schema import (
    BUDGET_OVERRIDES,
    FIELDS,
    FIELDS_BY_FORMAT,
    RUN_ID_TAIL,
    check_preset_overrides,
    check_spec,
    flat_copies,
    parse_preset_overrides,
    parse_spec,
    parse_versions,
)
from metabench.leaderboard.stats import mean_ci95
from metabench.methods.card import ENSEMBLE_SELECTION, ENSEMBLE_SIZE

# 2 added test_episodes_digest, torch_threads, code_version and preset_overrides; 3 model_selection and
# tested_step.
RECORD_FORMAT = 3
READABLE_FORMATS = tuple(FIELDS_BY_FORMAT)
# How far a stored accuracy or interval may sit from the value recomputed from its episodes: float
# sums in another order differ by ~1e-16, so anything past 1e-6 was not computed from these episodes.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class CurvePoint:
    """One point of the learning curve: means over the steps since the previous point (fractions)."""

    step: int
    loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None = None
    # The method's own named scalars (e.g. a gradient norm, a learned step size), means like the loss.
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        point = {
            "step": self.step,
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
        }
        return point | ({"metrics": dict(self.metrics)} if self.metrics else {})

    @classmethod
    def from_dict(cls, data: Any) -> CurvePoint:
        if not isinstance(data, Mapping):
            raise ValueError("'curve' must be a list of objects")
        return cls(
            step=count(data.get("step"), "curve step"),
            loss=optional(finite)(data.get("loss"), "curve loss"),
            train_accuracy=optional(fraction)(data.get("train_accuracy"), "curve train_accuracy"),
            val_accuracy=optional(fraction)(data.get("val_accuracy"), "curve val_accuracy"),
            metrics=metric_values(data.get("metrics", {}), "curve metrics"),
        )


@dataclass(frozen=True)
class RunRecord:
    """Everything known about one run. Accuracies are fractions in [0, 1]; times in seconds.

    `spec` is the resolved spec (the preset's meta_steps and eval_episodes filled in), so the spec
    hash names the experiment whatever the command line looked like. `episode_accuracies` holds the
    query accuracy of every test episode in the order of the fixed evaluation set, which is what
    makes paired comparisons between methods possible; `test_episodes_digest` names those episodes
    (their classes and drawings), so two runs are paired only when it is equal.

    Unknown in records older than format 2: test_episodes_digest and code_version (""),
    torch_threads and preset_overrides (None; {} means the preset was used as it is); older than
    format 3: tested_step (None), and model_selection is "last".
    """

    run_id: str
    status: str
    spec: RunSpec
    spec_hash: str
    family: str
    transductive: bool
    eval_seed: int
    eval_batch_size: int
    created_at: str
    steps_done: int = 0
    finished_at: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)
    device_type: str = "cpu"
    device_name: str = "cpu"
    data_digest: str = ""
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    tasks_per_s: float | None = None
    peak_rss_mb: float | None = None
    peak_cuda_mb: float | None = None
    curve: tuple[CurvePoint, ...] = ()
    accuracy: float | None = None
    ci95: float | None = None
    episode_accuracies: tuple[float, ...] = ()
    error: str | None = None
    resumable: bool = False
    test_episodes_digest: str = ""
    torch_threads: int | None = None
    # "git:<commit>" (+"-dirty"/"+dirty" when the package differs from it) or "src:<digest of the source>"
    code_version: str = ""
    # Every value that differs from the preset: "meta_steps" and "eval_episodes" (ints) when set on the
    # command line, and each --set key with its value string.
    preset_overrides: Mapping[str, Any] | None = None
    # Which trained state was tested: the last, or the one with the best validation accuracy; and the
    # meta-training step it was taken at (None in records older than format 3: the last).
    model_selection: str = "last"
    tested_step: int | None = None

    # Convenience views of the spec, so callers need not reach into it.
    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def protocol(self) -> str:
        return self.spec.protocol

    @property
    def episode(self) -> EpisodeSpec:
        return self.spec.episode

    @property
    def preset(self) -> str:
        return self.spec.preset

    @property
    def meta_steps(self) -> int:
        return self.spec.meta_steps or 0

    @property
    def eval_episodes(self) -> int:
        return self.spec.eval_episodes or 0

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def budget(self) -> str:
        return budget_text(
            self.preset, self.meta_steps, self.preset_overrides, self.model_selection, self.tested_step
        )

    def to_dict(self) -> dict[str, Any]:
        """The portable JSON shape (see the runner module's docstring for an example)."""
        return {
            "format": RECORD_FORMAT,
            "run_id": self.run_id,
            "status": self.status,
            "family": self.family,
            **flat_copies(self.spec),
            "spec": self.spec.to_dict(),
            "spec_hash": self.spec_hash,
            "transductive": self.transductive,
            "eval_seed": self.eval_seed,
            "eval_batch_size": self.eval_batch_size,
            "steps_done": self.steps_done,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "versions": dict(self.versions),
            "device_type": self.device_type,
            "device_name": self.device_name,
            "data_digest": self.data_digest,
            "wall_time_s": self.wall_time_s,
            "train_time_s": self.train_time_s,
            "eval_time_s": self.eval_time_s,
            "tasks_per_s": self.tasks_per_s,
            "peak_rss_mb": self.peak_rss_mb,
            "peak_cuda_mb": self.peak_cuda_mb,
            "accuracy": self.accuracy,
            "ci95": self.ci95,
            "error": self.error,
            "resumable": self.resumable,
            "test_episodes_digest": self.test_episodes_digest,
            "torch_threads": self.torch_threads,
            "code_version": self.code_version,
            "preset_overrides": None if self.preset_overrides is None else dict(self.preset_overrides),
            "model_selection": self.model_selection,
            "tested_step": self.tested_step,
            "curve": [point.to_dict() for point in self.curve],
            "episode_accuracies": list(self.episode_accuracies),
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """Parse and check a record against the schema; ValueError naming the first bad field.

        The spec is the source of truth: the flat copies of its fields in the JSON (method,
        protocol, episode, ...) must agree with it when present.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a run record must be a JSON object")
        version = data.get("format")
        if type(version) is not int or version not in READABLE_FORMATS:
            raise ValueError(f"unsupported record format {shown(version)} (expected {RECORD_FORMAT})")
        spec = parse_spec(required(data, "spec"))
        for key, value in flat_copies(spec).items():
            if key in data and (data[key] != value or type(data[key]) is not type(value)):
                raise ValueError(f"{key!r} {shown(data[key])} differs from the spec's {value!r}")
        fields = FIELDS_BY_FORMAT[version]
        values = {name: kind(required(data, name), name) for name, kind in fields.items()}
        episodes = listed(data, "episode_accuracies")
        record = cls(
            spec=spec,
            versions=parse_versions(required(data, "versions")),
            curve=tuple(CurvePoint.from_dict(point) for point in listed(data, "curve")),
            episode_accuracies=tuple(fraction(value, "episode_accuracies") for value in episodes),
            preset_overrides=parse_preset_overrides(required(data, "preset_overrides"))
            if version >= 2
            else None,
            **values,
        )
        record.check()
        return record

    def check(self) -> None:
        """ValueError naming the first field that breaks the schema or contradicts another field.

        from_dict checks every record read from JSON; the database checks every record it stores,
        so a record the runner builds meets the same rules as an ingested one.
        """
        for name, kind in FIELDS.items():
            kind(getattr(self, name), name)
        check_spec(self.spec)
        if self.spec_hash != self.spec.spec_hash():
            raise ValueError(
                f"'spec_hash' {self.spec_hash!r} is not the hash of 'spec' ({self.spec.spec_hash()})"
            )
        prefix = f"{self.method}-{self.protocol}-{self.episode.label}-"
        if not self.run_id.startswith(prefix) or not RUN_ID_TAIL.fullmatch(self.run_id[len(prefix) :]):
            raise ValueError(f"'run_id' {self.run_id!r} does not name this run's spec (expected {prefix}...)")
        parse_versions(self.versions)
        for point in self.curve:
            CurvePoint.from_dict(point.to_dict())
        for value in self.episode_accuracies:
            fraction(value, "episode_accuracies")
        if self.preset_overrides is not None:
            parse_preset_overrides(self.preset_overrides)
            check_preset_overrides(self.preset_overrides, self.spec)
        if self.tested_step is not None and self.tested_step > self.steps_done:
            raise ValueError(f"'tested_step' {self.tested_step} is past 'steps_done' {self.steps_done}")
        self._check_result()

    def _check_result(self) -> None:
        if self.status != "finished":
            if self.accuracy is not None or self.ci95 is not None or self.episode_accuracies:
                raise ValueError(f"a {self.status} run has no accuracy; only finished runs do")
            return
        if self.accuracy is None or self.finished_at is None:
            raise ValueError("a finished run needs 'accuracy' and 'finished_at'")
        count = len(self.episode_accuracies)
        if count != self.eval_episodes:
            raise ValueError(
                f"'episode_accuracies' holds {count} episodes but the spec tests {self.eval_episodes}"
            )
        mean, ci95 = mean_ci95(self.episode_accuracies)
        if abs(self.accuracy - mean) > TOLERANCE:
            raise ValueError(f"'accuracy' {self.accuracy!r} is not the mean of its episodes ({mean!r})")
        if (ci95 is None) != (self.ci95 is None) or (
            ci95 is not None and self.ci95 is not None and abs(self.ci95 - ci95) > TOLERANCE
        ):
            raise ValueError(f"'ci95' {self.ci95!r} is not the interval of its episodes ({ci95!r})")


@dataclass(frozen=True)
class RunSummary:
    """One line of `runs list`: the run without its curve and per-episode accuracies."""

    run_id: str
    status: str
    method: str
    family: str
    protocol: str
    ways: int
    shots: int
    queries: int
    preset: str
    meta_steps: int
    steps_done: int
    eval_episodes: int
    seed: int
    accuracy: float | None
    ci95: float | None
    transductive: bool
    device_name: str
    created_at: str
    finished_at: str | None
    train_time_s: float
    resumable: bool
    error: str | None
    preset_overrides: Mapping[str, Any] | None = None
    model_selection: str = "last"
    tested_step: int | None = None

    @property
    def setting(self) -> str:
        return f"{self.ways}w{self.shots}s"

    @property
    def budget(self) -> str:
        return budget_text(
            self.preset, self.meta_steps, self.preset_overrides, self.model_selection, self.tested_step
        )


def budget_text(
    preset: str,
    meta_steps: int,
    preset_overrides: Mapping[str, Any] | None,
    model_selection: str = "last",
    tested_step: int | None | tuple[int | None, ...] = None,
) -> str:
    """'quick, 1000 steps', or 'quick, 6000 steps (overridden)' when the budget is not the preset's.

    A test of the best-validation state says so and at which step (runs of several seeds: a tuple of
    their steps, in seed order); test episodes set on the command line and --set keys follow, as they
    change the result too. A record older than format 2 (overrides None) cannot tell, and reads as the
    plain budget.
    """
    overrides = dict(preset_overrides or {})
    text = f"{preset}, {meta_steps} steps" + (" (overridden)" if "meta_steps" in overrides else "")
    steps = tested_step if isinstance(tested_step, tuple) else (tested_step,)
    # Seeds that picked the same step read as one run does; otherwise every seed's step, in seed order.
    at = f"step {steps[0]}" if len(set(steps)) == 1 else "steps " + ", ".join(str(step) for step in steps)
    if model_selection == "best-validation":
        text += f", tested at {at} (best validation)"
    elif model_selection == ENSEMBLE_SELECTION:
        text += f", ensemble of the {ENSEMBLE_SIZE} best validated states (best at {at})"
    if "eval_episodes" in overrides:
        text += f", {overrides['eval_episodes']} test episodes (overridden)"
    settings = " ".join(
        f"{key}={value}" for key, value in sorted(overrides.items()) if key not in BUDGET_OVERRIDES
    )
    return text + (f", --set {settings}" if settings else "")
