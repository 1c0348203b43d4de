"""Small helpers shared by the method implementations: the training task shape, accuracy, prototypes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from metabench.config import MAX_SAMPLES_PER_CLASS, EpisodeSpec

if TYPE_CHECKING:
    from metabench.methods.base import TrainingContext


def training_episode(
    ways: int, shots: int, queries: int, num_classes: int, keys: tuple[str, str, str]
) -> EpisodeSpec:
    """The meta-training task shape, checked against the training split before any run exists.

    `keys` names the config fields that set ways, shots and queries (a field the test episode fixes
    is named as such), so the message says which --set to change. More ways than classes is refused,
    not quietly lowered: the record would claim a task shape that never ran.
    """
    ways_key, shots_key, queries_key = keys
    if ways > num_classes:
        raise ValueError(
            f"{ways_key} = {ways} exceeds the {num_classes} training classes of this protocol; "
            f"lower it with --set {ways_key}=N"
        )
    if shots + queries > MAX_SAMPLES_PER_CLASS:
        raise ValueError(
            f"{shots_key} + {queries_key} = {shots + queries} but every class has only "
            f"{MAX_SAMPLES_PER_CLASS} drawings; lower {queries_key} with --set {queries_key}=N"
        )
    return EpisodeSpec(ways, shots, queries)


def episode_shaped_training(context: TrainingContext, queries: int) -> EpisodeSpec:
    """Training tasks of the test's ways and shots with `queries` (the config's train_queries) per class."""
    episode = context.episode
    keys = ("--ways", "--shots", "train_queries")
    return training_episode(episode.ways, episode.shots, queries, context.num_train_classes, keys)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions along the last dimension of every task: float [...]."""
    return (logits.argmax(dim=-1) == labels).float().mean(dim=-1)


def class_means(features: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Per-task class means (ProtoNets' prototypes): features [B, n, D], labels [B, n] -> [B, ways, D].

    Uses a one-hot matrix product, so it does not assume the support set is ordered by class.
    """
    one_hot = torch.nn.functional.one_hot(labels, ways).to(features.dtype)  # [B, n, ways]
    sums = one_hot.transpose(1, 2) @ features
    return sums / one_hot.sum(dim=1).unsqueeze(-1)


def squared_distances(queries: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances [B, q, c] between queries [B, q, D] and centres [B, c, D]."""
    return (
        queries.pow(2).sum(-1, keepdim=True)
        - 2 * queries @ centres.transpose(1, 2)
        + centres.pow(2).sum(-1).unsqueeze(1)
    )
