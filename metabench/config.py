"""Frozen run configuration: EpisodeSpec, RunSpec, the preset names and the spec hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

PRESETS = ("smoke", "quick", "paper")
# vinyals: Vinyals et al. 2016 split with rotations; lake: background vs evaluation set; lake-within: the
# same with every task's classes from one alphabet; lake-runs: train as lake, test on Lake's 20 runs.
PROTOCOLS = ("vinyals", "lake", "lake-within", "lake-runs")
# Protocols whose papers report error rates (Lake et al.: people 4.5%): their boards show the error
# beside the accuracy.
ERROR_RATE_PROTOCOLS = ("lake-runs",)
DEVICES = ("auto", "cpu", "cuda")
# How every board, list and chart marks a transductive evaluation (test-batch statistics).
TRANSDUCTIVE_MARK = "†"
# Training steps averaged into the loss and accuracy that progress events (and the live plots) show.
RUNNING_WINDOW = 20
MAX_SAMPLES_PER_CLASS = 20  # Omniglot has 20 drawings of every character
METHOD_PLUGIN_GROUP = "metabench.methods"  # the entry-point group through which packages add methods
# The methods `metabench bench methods` times by default: those with a vectorized and a per-task step.
BENCH_METHODS = ("maml", "fomaml", "anil", "meta-sgd", "maml++", "reptile", "protonet")
# Upper bounds of the counts a run takes, so no value reaches torch or SQLite (64-bit integers) unchecked.
# A billion steps or a million test episodes is far past any real budget; a seed fills a 63-bit column.
LIMITS = {"--meta-steps": 10**9, "--eval-episodes": 10**6, "--seed": 2**63 - 1}


@dataclass(frozen=True)
class EpisodeSpec:
    """An N-way K-shot task with Q queries per class."""

    ways: int = 5
    shots: int = 1
    queries: int = 15

    def problems(self, available_classes: int | None = None) -> dict[str, str]:
        """{field: what is impossible about it} for this episode shape; empty when it is possible."""
        problems = {}
        for name in ("ways", "shots", "queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems[name] = f"--{name} must be a positive integer, got {value!r}"
        if problems:
            return problems
        if self.ways < 2:
            problems["ways"] = f"--ways must be at least 2 for a classification task, got {self.ways}"
        if self.shots + self.queries > MAX_SAMPLES_PER_CLASS:
            problems["queries"] = (
                f"shots + queries = {self.shots + self.queries} but Omniglot has only "
                f"{MAX_SAMPLES_PER_CLASS} drawings per character; lower --shots or --queries"
            )
        if available_classes is not None and self.ways > available_classes:
            problems["ways"] = (
                f"--ways {self.ways} exceeds the {available_classes} classes of this split; lower --ways"
            )
        return problems

    def validate(self, available_classes: int | None = None) -> None:
        """Raise ValueError naming the impossible part of this episode shape."""
        problems = self.problems(available_classes)
        if problems:
            raise ValueError(next(iter(problems.values())))

    @property
    def label(self) -> str:
        """Short human name, e.g. '5w1s'."""
        return f"{self.ways}w{self.shots}s"


# Protocols whose test set is a fixed set of tasks of one shape: Lake et al.'s 20 one-shot runs are
# 20-way 1-shot with one query per class, so a run on them must be of that shape.
FIXED_TEST_SHAPES = {"lake-runs": EpisodeSpec(20, 1, 1)}


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's result: method, data protocol, episode shape, budget, seed.

    `meta_steps` and `eval_episodes` of None mean "the preset's value"; `overrides` are the
    method's own config keys given with --set key=value, kept as strings until the method parses
    them against its typed config.
    """

    method: str
    protocol: str = "vinyals"
    episode: EpisodeSpec = field(default_factory=EpisodeSpec)
    preset: str = "quick"
    meta_steps: int | None = None
    eval_episodes: int | None = None
    seed: int = 0
    device: str = "auto"
    overrides: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["overrides"] = dict(self.overrides)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        data["episode"] = EpisodeSpec(**data["episode"])
        data["overrides"] = tuple(sorted(dict(data.get("overrides") or {}).items()))
        return cls(**data)

    def spec_hash(self) -> str:
        """A stable 12-hex digest of everything that changes the result (the device does not)."""
        data = self.to_dict()
        data.pop("device")
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def seedless_hash(self) -> str:
        """The spec hash with the seed set aside: runs with equal seedless hashes differ only by seed.

        It is the spec hash of the same spec at seed 0, so one digest function names both.
        """
        return replace(self, seed=0).spec_hash()


def check_count(option: str, value: object, minimum: int) -> int:
    """`value` when it is a whole number in [minimum, LIMITS[option]]; else ValueError naming the option."""
    maximum = LIMITS.get(option)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{option} must be a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{option} must be at most {maximum:,}, got {value:,}")
    return value


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Turn ['lr=0.001', 'inner_steps=3'] into sorted pairs; ValueError on a malformed item."""
    parsed: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return tuple(sorted(parsed.items()))
