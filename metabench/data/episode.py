"""The Episode batch: B few-shot tasks as stacked tensors, the unit every method consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Episode:
    """A batch of B N-way K-shot tasks with Q queries per class.

    support: float [B, N*K, 1, H, W], ink = 1.0 and background = 0.0
    support_labels: long [B, N*K], values 0..N-1 (the class order is random per task)
    query: float [B, N*Q, 1, H, W]
    query_labels: long [B, N*Q]
    """

    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    ways: int
    shots: int
    queries: int

    @property
    def batch_size(self) -> int:
        return self.support.shape[0]

    def to(self, device: torch.device | str) -> Episode:
        return Episode(
            self.support.to(device),
            self.support_labels.to(device),
            self.query.to(device),
            self.query_labels.to(device),
            self.ways,
            self.shots,
            self.queries,
        )
