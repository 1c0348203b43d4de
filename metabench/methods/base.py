"""The contract every benchmark method fulfils: identity, typed config, presets, train and predict."""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

Family = Literal["A", "B", "C", "baseline"]
FAMILY_NAMES: dict[str, str] = {
    "A": "Learning to initialize",
    "B": "Learning to compare",
    "C": "Other",
    "baseline": "Baseline",
}


@dataclass(frozen=True)
class Preset:
    """A named budget: how many meta-training steps, and config values that differ from the paper's."""

    meta_steps: int
    eval_episodes: int
    config: dict[str, Any] = field(default_factory=dict)
    validate_every: int = 0  # 0: validate about ten times per run


@dataclass(frozen=True)
class StepStats:
    """What one meta-training step reports."""

    loss: float
    accuracy: float


class Method(abc.ABC):
    """A few-shot learner. Subclasses set the class attributes and implement the abstract methods.

    A method receives whole batches of tasks so it can vectorize over the task dimension.
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    paper: ClassVar[str]  # short citation, e.g. "Finn et al., ICML 2017"
    cite_key: ClassVar[str | None] = None  # the paper's key in the survey catalog
    config_class: ClassVar[type]  # a dataclass whose defaults are the paper's hyperparameters
    presets: ClassVar[dict[str, Preset]]
    needs_training: ClassVar[bool] = True
    # True when a query's prediction depends on the other queries of its task (e.g. BatchNorm normalizing
    # with test-batch statistics). The runner records the configured instance's value; the class value
    # is its default, which `metabench methods` lists without building a model. A method whose config
    # decides it sets `self.transductive` in __init__. tests/test_method_invariants.py checks the claim.
    transductive: bool = False

    def __init__(self, config: Any, episode: EpisodeSpec, device: torch.device, num_train_classes: int):
        self.config = config
        self.episode = episode
        self.device = device
        self.num_train_classes = num_train_classes

    @abc.abstractmethod
    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        """Draw this method's training batch from `sampler` with `generator` and take one step."""

    @abc.abstractmethod
    def predict(self, episode: Episode) -> torch.Tensor:
        """Adapt to each task's support set and return the predicted label of every query, long [B, N*Q].

        Leaves the method as it found it: no parameter, optimizer state or train/eval mode changes.
        """

    def evaluate(self, episode: Episode) -> torch.Tensor:
        """The query accuracy of every task, float [B]: the fraction of `predict`'s labels that are right."""
        predicted = self.predict(episode)
        return (predicted == episode.query_labels.to(predicted.device)).float().mean(dim=-1)

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model and optimizer state (tensors and plain values only)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""

    @classmethod
    def paper_config(cls, episode: EpisodeSpec) -> dict[str, Any]:
        """Paper values that depend on the episode shape (e.g. MAML's 20-way settings); none by default."""
        return {}

    @classmethod
    def preset_for(cls, preset: str, episode: EpisodeSpec) -> Preset:
        """The budget `preset` gives this episode shape; the same for every shape unless a method's cost
        grows so much with the ways that one budget cannot fit all (MAML's 20-way quick run)."""
        if preset not in cls.presets:
            raise ValueError(
                f"method {cls.name!r} has no preset {preset!r}; choose one of {sorted(cls.presets)}"
            )
        return cls.presets[preset]

    @classmethod
    def make_config(cls, preset: str, overrides: dict[str, str], episode: EpisodeSpec) -> Any:
        """The paper's config, with the preset's changes and then the user's --set overrides applied."""
        values = {**cls.paper_config(episode), **cls.preset_for(preset, episode).config}
        fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
        for key, raw in overrides.items():
            if key not in fields:
                raise ValueError(
                    f"unknown key {key!r} for method {cls.name!r}; valid keys: {', '.join(sorted(fields))}"
                )
            values[key] = _parse_value(key, raw, fields[key].type, cls.config_class)
        return cls.config_class(**values)


def _parse_value(key: str, raw: str, annotation: Any, config_class: type) -> Any:
    """Parse a --set string against the field's declared type (annotations are strings here)."""
    type_name = (
        annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    )
    if type_name == "str":
        return raw
    if type_name not in ("bool", "int", "float"):
        raise ValueError(f"--set {key}: fields of type {type_name} cannot be set from the command line")
    try:
        if type_name == "bool":
            lowered = raw.lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return lowered in {"true", "1", "yes"}
        value: Any = int(raw) if type_name == "int" else float(raw)
    except ValueError:
        raise ValueError(f"--set {key}={raw!r}: expected a value of type {type_name}") from None
    # 'inf' and 'nan' parse as floats, and ints have no size limit; no setting means either, and torch
    # and SQLite stop at 64 bits.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"--set {key}={raw!r}: expected a finite float")
    if isinstance(value, int) and abs(value) >= _INT_LIMIT:
        raise ValueError(f"--set {key}={raw!r}: expected a whole number below {_INT_LIMIT:,}")
    return value


_INT_LIMIT = 2**31
