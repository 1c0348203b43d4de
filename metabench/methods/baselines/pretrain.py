"""The lecture's "baseline of meta": pre-train on all training classes, then fit a new head per task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.baselines.cards import PRETRAIN
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import accuracy
from metabench.models.conv4 import Conv4

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


def fit_linear_heads(
    support: torch.Tensor, labels: torch.Tensor, ways: int, steps: int, lr: float, weight_decay: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression for every task at once: support [B, n, D] -> weight [B, N, D], bias [B, N].

    The loss is the sum of the tasks' mean cross-entropies, so each task's head only sees its own
    gradient; Adam is elementwise, so the B fits stay independent while running as one batch.
    """
    b, _, dim = support.shape
    weight = torch.zeros(b, ways, dim, device=support.device, requires_grad=True)
    bias = torch.zeros(b, ways, device=support.device, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            logits = support @ weight.transpose(1, 2) + bias.unsqueeze(1)
            loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return weight.detach(), bias.detach()


class Pretrain(Method):
    """Pre-train + fine-tune: the transfer-learning baseline that meta-learning has to beat.

    The lecture's "baseline of meta" (multi-task pre-training), in the form Chen et al. (ICLR 2019,
    "A Closer Look at Few-shot Classification") call Baseline: a Conv-4 with a linear layer over all
    training classes is trained as an ordinary classifier; for each test task the backbone is frozen
    (BatchNorm in eval mode) and a new linear head is fitted on the support features alone.
    """

    card: ClassVar[MethodCard] = PRETRAIN

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        device = context.device
        self.backbone = Conv4(hidden=config.hidden, downsample="maxpool")
        self.model = nn.Sequential(
            self.backbone, nn.Linear(self.backbone.out_features, context.num_train_classes)
        ).to(device)
        if device.type == "cpu":
            self.backbone.use_channels_last()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        images, labels = sampler.sample_labeled(self.config.batch_size, generator)
        images, labels = images.to(self.device), labels.to(self.device)
        self.model.train()
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return StepStats(loss=loss.item(), accuracy=accuracy(logits, labels).item())

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen features of images [B, n, 1, H, W] -> [B, n, D]."""
        features = self.backbone(images.flatten(0, 1)).view(*images.shape[:2], -1)
        return F.normalize(features, dim=-1) if self.config.normalize else features

    def predict(self, episode: Episode) -> torch.Tensor:
        episode = episode.to(self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                support, query = self._features(episode.support), self._features(episode.query)
        finally:
            self.model.train(was_training)
        cfg = self.config
        weight, bias = fit_linear_heads(
            support, episode.support_labels, episode.ways, cfg.head_steps, cfg.head_lr, cfg.head_weight_decay
        )
        return (query @ weight.transpose(1, 2) + bias.unsqueeze(1)).argmax(dim=-1)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
