"""Nearest neighbour on raw pixels: the floor every few-shot method must clear."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from metabench.data.episode import Episode
from metabench.methods.base import Method, Preset, StepStats
from metabench.methods.common import require_choice, squared_distances
from metabench.methods.registry import register

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


@dataclass(frozen=True)
class PixelsNNConfig:
    """Which distance compares two flattened images."""

    metric: str = "euclidean"  # or "cosine"

    def __post_init__(self) -> None:
        require_choice("metric", self.metric, ("euclidean", "cosine"))


@register
class PixelsNN(Method):
    """1-nearest-neighbour on raw pixels: a query takes the label of the closest support image.

    No learning at all, so it measures how much of a setting is solved by pixel overlap; Vinyals et
    al. (NIPS 2016) and Koch et al. (2015) report such baselines on Omniglot.
    """

    name: ClassVar[str] = "pixels-nn"
    family = "baseline"
    paper: ClassVar[str] = "raw-pixel nearest neighbour"
    cite_key: ClassVar[str | None] = None
    config_class: ClassVar[type] = PixelsNNConfig
    needs_training: ClassVar[bool] = False
    presets: ClassVar[dict[str, Preset]] = {
        "smoke": Preset(meta_steps=0, eval_episodes=64),
        "quick": Preset(meta_steps=0, eval_episodes=1000),
        "paper": Preset(meta_steps=0, eval_episodes=1000),
    }

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        raise RuntimeError("pixels-nn has nothing to train (needs_training is False); call predict() only")

    def predict(self, episode: Episode) -> torch.Tensor:
        support = episode.support.flatten(2).to(self.device)
        query = episode.query.flatten(2).to(self.device)
        if self.config.metric == "cosine":
            support, query = F.normalize(support, dim=-1), F.normalize(query, dim=-1)
        nearest = squared_distances(query, support).argmin(dim=-1)  # [B, n_query]
        return torch.gather(episode.support_labels.to(self.device), 1, nearest)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"pixels-nn has no state to restore; got keys {sorted(state)}")
