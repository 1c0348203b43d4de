"""Nearest neighbour on raw pixels: the floor every few-shot method must clear."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats
from metabench.methods.baselines.cards import PIXELS_NN
from metabench.methods.card import MethodCard
from metabench.methods.common import squared_distances

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


class PixelsNN(Method):
    """1-nearest-neighbour on raw pixels: a query takes the label of the closest support image.

    No learning at all, so it measures how much of a setting is solved by pixel overlap; Vinyals et
    al. (NIPS 2016) and Koch et al. (2015) report such baselines on Omniglot.
    """

    card: ClassVar[MethodCard] = PIXELS_NN

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
