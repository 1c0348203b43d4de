"""Small helpers shared by the method implementations: config checks, accuracy, prototypes."""

from __future__ import annotations

import torch


def require_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    """ValueError naming the config key and its valid values when `value` is not one of them."""
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def require_positive(**values: float) -> None:
    """ValueError for the first config value that is not > 0."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{key} must be positive; got {value!r}")


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
