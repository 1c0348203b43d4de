"""A method implementation's contract: built from a config and a training context; trains and predicts."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.card import Config, MethodCard

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


@dataclass(frozen=True)
class StepStats:
    """What one meta-training step reports: its loss and accuracy, and any other named scalars
    (a gradient norm, a learned step size) that the curve records and the TUI shows."""

    loss: float
    accuracy: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingContext:
    """What a method knows when it is built: the test task shape, its data, the device, a generator."""

    episode: EpisodeSpec  # the shape of the tasks it is tested on
    device: torch.device
    train: EpisodeSampler  # the meta-training classes
    validation: EpisodeSampler | None = None
    # The run's meta-training steps, for schedules annealed over the whole run (Reptile's outer step
    # size, MAML++'s cosine meta learning rate); 0 where no run is being made (benchmarks, tests).
    meta_steps: int = 0
    # Seeded from the run's seed, for randomness a method draws at construction (its initial weights
    # come from torch's global generator, which the runner seeds just before).
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def fraction_done(self, step: int) -> float:
        """How far step `step` (from 0) is through the run, in [0, 1]; always 0 when the length is unknown."""
        return min(step / self.meta_steps, 1.0) if self.meta_steps > 0 else 0.0

    @property
    def num_train_classes(self) -> int:
        return self.train.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Channels, height, width of one image."""
        return self.train.image_shape


class Method(abc.ABC):
    """A few-shot learner. Subclasses set `card` (the torch-free declaration of the method) and implement
    the abstract methods.

    A method receives whole batches of tasks so it can vectorize over the task dimension.
    """

    card: ClassVar[MethodCard]  # identity, config schema and presets, readable without torch

    def __init__(self, config: Config, context: TrainingContext):
        self.config = config
        self.context = context
        self.episode = context.episode
        self.device = context.device
        # Whether a query's prediction depends on the other queries of its task (e.g. BatchNorm with
        # test-batch statistics): the card's default, which a method whose config decides it overrides.
        # The runner records this instance's value; tests/test_method_invariants.py checks the claim.
        self.transductive = self.card.transductive

    @property
    def needs_training(self) -> bool:
        return self.card.needs_training

    @abc.abstractmethod
    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        """Draw this method's training batch from `sampler` with `generator` and take one step."""

    @abc.abstractmethod
    def predict(self, episode: Episode) -> torch.Tensor:
        """Adapt to each task's support set and return the predicted label of every query, long [B, N*Q].

        Leaves the method as it found it: no parameter, optimizer state or train/eval mode changes.
        """

    def scores(self, episode: Episode) -> torch.Tensor:
        """Each query's score for every class, float [B, N*Q, N], of which `predict` takes the argmax.

        Only for methods whose card sets `ensembles`: the top-5 ensemble averages these over states.
        """
        raise NotImplementedError(f"{self.card.name} gives no scores to ensemble")

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
