"""The run record: one typed, JSON-portable account of a benchmark run (torch-free, so the TUI reads it)."""

from __future__ import annotations

import math
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metabench.config import DEVICES, LIMITS, PRESETS, PROTOCOLS, EpisodeSpec, RunSpec
from metabench.leaderboard.stats import mean_ci95
from metabench.runid import check_run_id

RECORD_FORMAT = 2  # 2 added test_episodes_digest, torch_threads, code_version and preset_overrides
READABLE_FORMATS = (1, 2)
STATUSES = ("running", "finished", "failed", "interrupted")
# How far a stored accuracy or interval may sit from the value recomputed from its episodes: float
# sums in another order differ by ~1e-16, so anything past 1e-6 was not computed from these episodes.
TOLERANCE = 1e-6
MAX_COUNT = 2**63 - 1  # SQLite's INTEGER is 64-bit signed
BUDGET_OVERRIDES = ("meta_steps", "eval_episodes")  # preset_overrides keys that are not --set keys


@dataclass(frozen=True)
class CurvePoint:
    """One point of the learning curve: means over the steps since the previous point (fractions)."""

    step: int
    loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CurvePoint:
        if not isinstance(data, Mapping):
            raise ValueError("'curve' must be a list of objects")
        return cls(
            step=_count(data.get("step"), "curve step"),
            loss=_optional(_finite)(data.get("loss"), "curve loss"),
            train_accuracy=_optional(_fraction)(data.get("train_accuracy"), "curve train_accuracy"),
            val_accuracy=_optional(_fraction)(data.get("val_accuracy"), "curve val_accuracy"),
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
    torch_threads and preset_overrides (None; {} means the preset was used as it is).
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

    def to_dict(self) -> dict[str, Any]:
        """The portable JSON shape (see the runner module's docstring for an example)."""
        return {
            "format": RECORD_FORMAT,
            "run_id": self.run_id,
            "status": self.status,
            "family": self.family,
            **_flat_copies(self.spec),
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
            raise ValueError(f"unsupported record format {_shown(version)} (expected {RECORD_FORMAT})")
        spec = _spec(_required(data, "spec"))
        for key, value in _flat_copies(spec).items():
            if key in data and (data[key] != value or type(data[key]) is not type(value)):
                raise ValueError(f"{key!r} {_shown(data[key])} differs from the spec's {value!r}")
        fields = _FIELDS if version >= 2 else _FIELDS_V1
        values = {name: kind(_required(data, name), name) for name, kind in fields.items()}
        episodes = _list(data, "episode_accuracies")
        record = cls(
            spec=spec,
            versions=_versions(_required(data, "versions")),
            curve=tuple(CurvePoint.from_dict(point) for point in _list(data, "curve")),
            episode_accuracies=tuple(_fraction(value, "episode_accuracies") for value in episodes),
            preset_overrides=_preset_overrides(_required(data, "preset_overrides")) if version >= 2 else None,
            **values,
        )
        record.check()
        return record

    def check(self) -> None:
        """ValueError naming the first field that breaks the schema or contradicts another field.

        from_dict checks every record read from JSON; the database checks every record it stores,
        so a record the runner builds meets the same rules as an ingested one.
        """
        for name, kind in _FIELDS.items():
            kind(getattr(self, name), name)
        check_spec(self.spec)
        if self.spec_hash != self.spec.spec_hash():
            raise ValueError(
                f"'spec_hash' {self.spec_hash!r} is not the hash of 'spec' ({self.spec.spec_hash()})"
            )
        prefix = f"{self.method}-{self.protocol}-{self.episode.label}-"
        if not self.run_id.startswith(prefix) or not _RUN_ID_TAIL.fullmatch(self.run_id[len(prefix) :]):
            raise ValueError(f"'run_id' {self.run_id!r} does not name this run's spec (expected {prefix}...)")
        _versions(self.versions)
        for point in self.curve:
            CurvePoint.from_dict(point.to_dict())
        for value in self.episode_accuracies:
            _fraction(value, "episode_accuracies")
        if self.preset_overrides is not None:
            _preset_overrides(self.preset_overrides)
            _check_preset_overrides(self.preset_overrides, self.spec)
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

    @property
    def setting(self) -> str:
        return f"{self.ways}w{self.shots}s"

    @property
    def budget(self) -> str:
        return budget_text(self.preset, self.meta_steps, self.preset_overrides)


def budget_text(preset: str, meta_steps: int, preset_overrides: Mapping[str, Any] | None) -> str:
    """'quick, 1000 steps', or 'quick, 6000 steps (overridden)' when the budget is not the preset's.

    Test episodes set on the command line and --set keys follow, as they change the result too.
    A record older than format 2 (overrides None) cannot tell, and reads as the plain budget.
    """
    overrides = dict(preset_overrides or {})
    text = f"{preset}, {meta_steps} steps" + (" (overridden)" if "meta_steps" in overrides else "")
    if "eval_episodes" in overrides:
        text += f", {overrides['eval_episodes']} test episodes (overridden)"
    settings = " ".join(
        f"{key}={value}" for key, value in sorted(overrides.items()) if key not in BUDGET_OVERRIDES
    )
    return text + (f", --set {settings}" if settings else "")


# --- the schema --------------------------------------------------------------------------------

Kind = Callable[[Any, str], Any]

_HEX_DIGEST = re.compile(r"(?:[0-9a-f]{8,64})?")  # "" when unknown
_CODE_VERSION = re.compile(r"(?:git:[0-9a-f]{7,64}(?:[-+]dirty)?|src:[0-9a-f]{8,64})?")
_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
_TIMESTAMP_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_RUN_ID_TAIL = re.compile(r"\d{8}T\d{6}-[0-9a-f]{4}")
_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MAX_LINE = 200
_MAX_FLOAT = sys.float_info.max  # NaN and the infinities fail the comparisons with it


def _bad(key: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{key!r} must be {expected}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A short repr: the value may be a megabyte of text or nested a thousand levels deep."""
    return reprlib.repr(value)


def _required(data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise ValueError(f"missing {key!r}")
    return data[key]


def _optional(kind: Kind) -> Kind:
    def check(value: Any, key: str) -> Any:
        return None if value is None else kind(value, key)

    return check


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, "true or false", value)
    return value


def _int_in(minimum: int, maximum: int = MAX_COUNT) -> Kind:
    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise _bad(key, f"a whole number in [{minimum}, {maximum}]", value)
        return value

    return check


_count = _int_in(0)
_positive = _int_in(1)


def _number_in(minimum: float, maximum: float, expected: str) -> Kind:
    def check(value: Any, key: str) -> float:
        # Comparing before converting: float() of an integer of 400 digits raises OverflowError.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -_MAX_FLOAT <= value <= _MAX_FLOAT
            or not minimum <= value <= maximum
        ):
            raise _bad(key, expected, value)
        return float(value)

    return check


_finite = _number_in(-math.inf, math.inf, "a finite number")
_non_negative = _number_in(0.0, math.inf, "a finite number >= 0")
_fraction = _number_in(0.0, 1.0, "a fraction in [0, 1]")


def _line(value: Any, key: str) -> str:
    """A short one-line string (it lands in tables and one-line messages)."""
    if not isinstance(value, str) or len(value) > _MAX_LINE or not value.isprintable():
        raise _bad(key, f"one line of text (at most {_MAX_LINE} characters)", value)
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _bad(key, "a string", value)
    return value


def _matching(pattern: re.Pattern[str], expected: str) -> Kind:
    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _bad(key, expected, value)
        return value

    return check


def _choice(choices: tuple[str, ...]) -> Kind:
    def check(value: Any, key: str) -> str:
        if value not in choices:
            raise _bad(key, f"one of {', '.join(choices)}", value)
        return value

    return check


def _timestamp(value: Any, key: str) -> str:
    # Fixed width, as runs sort by it as text; strptime then refuses a 31st of February.
    try:
        if not _TIMESTAMP_SHAPE.fullmatch(value):
            raise ValueError
        datetime.strptime(value, _TIMESTAMP)
    except (TypeError, ValueError):
        raise _bad(key, "a UTC time like 2026-01-01T12:00:00Z", value) from None
    return value


def _run_id(value: Any, key: str) -> str:
    return check_run_id(_line(value, key))


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = _required(data, key)
    if not isinstance(value, list):
        raise _bad(key, "a list", value)
    return value


# The record's own fields, their JSON keys and what each must hold (curve, episodes, versions, spec
# and preset_overrides are structured and checked by their own functions).
_FIELDS_V1: dict[str, Kind] = {
    "run_id": _run_id,
    "status": _choice(STATUSES),
    "spec_hash": _line,
    "family": _line,
    "transductive": _bool,
    "eval_seed": _count,
    "eval_batch_size": _positive,
    "created_at": _timestamp,
    "steps_done": _count,
    "finished_at": _optional(_timestamp),
    "device_type": _line,
    "device_name": _line,
    "data_digest": _matching(_HEX_DIGEST, "a hexadecimal digest or empty"),
    "wall_time_s": _non_negative,
    "train_time_s": _non_negative,
    "eval_time_s": _non_negative,
    "tasks_per_s": _optional(_non_negative),
    "peak_rss_mb": _optional(_non_negative),
    "peak_cuda_mb": _optional(_non_negative),
    "accuracy": _optional(_fraction),
    "ci95": _optional(_fraction),
    "error": _optional(_text),
    "resumable": _bool,
}
_FIELDS: dict[str, Kind] = {
    **_FIELDS_V1,
    "test_episodes_digest": _matching(_HEX_DIGEST, "a hexadecimal digest or empty"),
    "torch_threads": _optional(_positive),
    "code_version": _matching(_CODE_VERSION, "git:<commit>[+dirty], src:<hex digest> or empty"),
}
_SPEC_FIELDS: dict[str, Kind] = {
    "method": _line,  # its shape is checked through the run id, which starts with it
    "protocol": _choice(PROTOCOLS),
    "preset": _choice(PRESETS),
    "meta_steps": _int_in(0, LIMITS["--meta-steps"]),
    "eval_episodes": _int_in(1, LIMITS["--eval-episodes"]),
    "seed": _int_in(0, LIMITS["--seed"]),
    "device": _choice(DEVICES),
}
_EPISODE_FIELDS = ("ways", "shots", "queries")


def check_spec(spec: RunSpec) -> None:
    """ValueError naming the first field of a resolved spec that no record could hold.

    The runner calls it before a run exists, so a run never ends in a record the database refuses.
    """
    _spec(spec.to_dict())


def _spec(data: Any) -> RunSpec:
    if not isinstance(data, Mapping):
        raise _bad("spec", "an object", data)
    expected = {*_SPEC_FIELDS, "episode", "overrides"}
    if set(data) != expected:
        raise ValueError(f"'spec' must have exactly the keys {', '.join(sorted(expected))}")
    values = {name: kind(data[name], f"spec.{name}") for name, kind in _SPEC_FIELDS.items()}
    episode = _episode(data["episode"], "spec.episode")
    overrides = data["overrides"]
    if not isinstance(overrides, Mapping):
        raise _bad("spec.overrides", "an object", overrides)
    for key, value in overrides.items():
        _matching(_CONFIG_KEY, "a config key")(key, "spec.overrides")
        _line(value, f"spec.overrides.{key}")
    return RunSpec(episode=episode, overrides=tuple(sorted(overrides.items())), **values)


def _episode(data: Any, key: str) -> EpisodeSpec:
    if not isinstance(data, Mapping) or set(data) != set(_EPISODE_FIELDS):
        raise _bad(key, "an object with ways, shots and queries", data)
    episode = EpisodeSpec(*(_positive(data[name], f"{key}.{name}") for name in _EPISODE_FIELDS))
    episode.validate()
    return episode


def _episode_dict(episode: EpisodeSpec) -> dict[str, int]:
    return {name: getattr(episode, name) for name in _EPISODE_FIELDS}


def _flat_copies(spec: RunSpec) -> dict[str, Any]:
    """The spec fields repeated at the top of the JSON, for people reading the file."""
    return {
        "method": spec.method,
        "protocol": spec.protocol,
        "episode": _episode_dict(spec.episode),
        "preset": spec.preset,
        "meta_steps": spec.meta_steps or 0,
        "eval_episodes": spec.eval_episodes or 0,
        "seed": spec.seed,
    }


def _versions(data: Any) -> dict[str, str | None]:
    if not isinstance(data, Mapping) or len(data) > 32:
        raise _bad("versions", "an object of at most 32 names", data)
    return {_line(key, "versions"): _optional(_line)(value, f"versions.{key}") for key, value in data.items()}


def _preset_overrides(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise _bad("preset_overrides", "an object or null", data)
    checked: dict[str, Any] = {}
    for key, value in data.items():
        name = f"preset_overrides.{key}"
        if key in BUDGET_OVERRIDES:
            checked[key] = _SPEC_FIELDS[key](value, name)
        else:
            checked[_matching(_CONFIG_KEY, "a config key")(key, "preset_overrides")] = _line(value, name)
    return checked


def _check_preset_overrides(overrides: Mapping[str, Any], spec: RunSpec) -> None:
    """The --set part is the spec's overrides, and an overridden step budget is the one the spec ran."""
    settings = {key: value for key, value in overrides.items() if key not in BUDGET_OVERRIDES}
    if settings != dict(spec.overrides):
        raise ValueError(
            f"'preset_overrides' {_shown(settings)} differs from the spec's overrides "
            f"{_shown(dict(spec.overrides))}"
        )
    if "meta_steps" in overrides and overrides["meta_steps"] != spec.meta_steps:
        raise ValueError(
            f"'preset_overrides' meta_steps {overrides['meta_steps']} differs from the spec's "
            f"{spec.meta_steps}"
        )
