"""The run record: one typed, JSON-portable account of a benchmark run (torch-free, so the TUI reads it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metabench.config import EpisodeSpec, RunSpec

RECORD_FORMAT = 1
STATUSES = ("running", "finished", "failed", "interrupted")


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
    def from_dict(cls, data: Mapping[str, Any]) -> CurvePoint:
        return cls(
            step=_int(data, "step"),
            loss=_opt_float(data, "loss"),
            train_accuracy=_opt_float(data, "train_accuracy"),
            val_accuracy=_opt_float(data, "val_accuracy"),
        )


@dataclass(frozen=True)
class RunRecord:
    """Everything known about one run. Accuracies are fractions in [0, 1]; times in seconds.

    `spec` is the resolved spec (the preset's meta_steps and eval_episodes filled in), so the spec
    hash names the experiment whatever the command line looked like. `episode_accuracies` holds the
    query accuracy of every test episode in the order of the fixed evaluation set, which is what
    makes paired comparisons between methods possible.
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
            "method": self.method,
            "family": self.family,
            "protocol": self.protocol,
            "episode": {
                "ways": self.episode.ways,
                "shots": self.episode.shots,
                "queries": self.episode.queries,
            },
            "preset": self.preset,
            "meta_steps": self.meta_steps,
            "eval_episodes": self.eval_episodes,
            "seed": self.seed,
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
            "curve": [point.to_dict() for point in self.curve],
            "episode_accuracies": list(self.episode_accuracies),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Parse and check a record; ValueError naming the first bad field.

        The spec is the source of truth: the flat copies of its fields in the JSON (method,
        protocol, episode, ...) are there for people reading the file and are not read back.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a run record must be a JSON object")
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"unsupported record format {data.get('format')!r} (expected {RECORD_FORMAT})")
        spec_data = data.get("spec")
        if not isinstance(spec_data, Mapping):
            raise ValueError("missing or malformed 'spec'")
        try:
            spec = RunSpec.from_dict(spec_data)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"malformed 'spec': {exc}") from None
        if not isinstance(spec.method, str) or not isinstance(spec.protocol, str):
            raise ValueError("malformed 'spec': method and protocol must be strings")
        spec.episode.validate()
        status = _str(data, "status")
        if status not in STATUSES:
            raise ValueError(f"'status' must be one of {', '.join(STATUSES)}, got {status!r}")
        curve = data.get("curve") or []
        episodes = data.get("episode_accuracies") or []
        if not isinstance(curve, list) or not isinstance(episodes, list):
            raise ValueError("'curve' and 'episode_accuracies' must be lists")
        versions = data.get("versions") or {}
        if not isinstance(versions, Mapping):
            raise ValueError("'versions' must be an object")
        return cls(
            run_id=_str(data, "run_id"),
            status=status,
            spec=spec,
            spec_hash=_str(data, "spec_hash"),
            family=_str(data, "family"),
            transductive=_bool(data, "transductive"),
            eval_seed=_int(data, "eval_seed"),
            eval_batch_size=_int(data, "eval_batch_size"),
            created_at=_str(data, "created_at"),
            steps_done=_int(data, "steps_done"),
            finished_at=data.get("finished_at"),
            versions={str(k): (None if v is None else str(v)) for k, v in versions.items()},
            device_type=_str(data, "device_type"),
            device_name=_str(data, "device_name"),
            data_digest=_str(data, "data_digest"),
            wall_time_s=_float(data, "wall_time_s"),
            train_time_s=_float(data, "train_time_s"),
            eval_time_s=_float(data, "eval_time_s"),
            tasks_per_s=_opt_float(data, "tasks_per_s"),
            peak_rss_mb=_opt_float(data, "peak_rss_mb"),
            peak_cuda_mb=_opt_float(data, "peak_cuda_mb"),
            curve=tuple(CurvePoint.from_dict(point) for point in curve),
            accuracy=_opt_float(data, "accuracy"),
            ci95=_opt_float(data, "ci95"),
            episode_accuracies=tuple(_number(value, "episode_accuracies") for value in episodes),
            error=data.get("error"),
            resumable=bool(data.get("resumable", False)),
        )


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

    @property
    def setting(self) -> str:
        return f"{self.ways}w{self.shots}s"


def _missing(key: str) -> ValueError:
    return ValueError(f"missing or malformed {key!r}")


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _missing(key)
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _missing(key)
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise _missing(key)
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _missing(key)
    return float(value)


def _float(data: Mapping[str, Any], key: str) -> float:
    return _number(data.get(key), key)


def _opt_float(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    return None if value is None else _number(value, key)
