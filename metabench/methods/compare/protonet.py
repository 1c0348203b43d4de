"""Prototypical Networks (Snell et al., NIPS 2017): classify by distance to the class means of embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import accuracy, class_means, squared_distances, training_episode
from metabench.methods.compare.cards import PROTONET
from metabench.models.conv4 import Conv4

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


def prototype_logits(
    support_features: torch.Tensor, support_labels: torch.Tensor, query_features: torch.Tensor, ways: int
) -> torch.Tensor:
    """Negative squared Euclidean distances of queries [B, q, D] to the class means: logits [B, q, ways]."""
    return -squared_distances(query_features, class_means(support_features, support_labels, ways))


class ProtoNet(Method):
    """Prototypical Networks: a Conv-4 embedding; a query's class is the nearest class mean (prototype).

    Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NIPS 2017. Trained on
    higher-way episodes than tested (60-way, 5 queries per class), squared Euclidean distance, Adam
    with the learning rate halved every 2000 episodes. BatchNorm keeps running statistics and runs
    in eval mode at test time, so tasks are classified independently: not transductive.
    """

    card: ClassVar[MethodCard] = PROTONET

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        device = context.device
        self.model = Conv4(hidden=config.hidden, downsample="maxpool").to(device)
        if device.type == "cpu":
            self.model.use_channels_last()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config.lr_halve_every, gamma=0.5
        )
        self.train_spec = training_episode(
            config.train_ways,
            config.train_shots,
            config.train_queries,
            context.num_train_classes,
            ("train_ways", "train_shots", "train_queries"),
        )

    def _logits(self, episode: Episode) -> torch.Tensor:
        """Embed support and query of every task in one backbone pass; logits [B, N*Q, N].

        As in Snell et al.'s code, support and query go through the network together, so in training
        mode BatchNorm sees the statistics of the whole batch.
        """
        b, n_support = episode.support_labels.shape
        images = torch.cat([episode.support.flatten(0, 1), episode.query.flatten(0, 1)])
        features = self.model(images)
        support = features[: b * n_support].view(b, n_support, -1)
        query = features[b * n_support :].view(b, -1, features.shape[-1])
        return prototype_logits(support, episode.support_labels, query, episode.ways)

    def _task_logits(self, episode: Episode, t: int) -> torch.Tensor:
        """The per-task reference: one backbone pass for task t alone; logits [N*Q, N].

        Identical to `_logits` for one task per batch (the paper's setting); with several, training
        mode BatchNorm normalizes each task with its own statistics instead of the batch's.
        """
        n_support = episode.support_labels.shape[1]
        features = self.model(torch.cat([episode.support[t], episode.query[t]])).unsqueeze(0)
        logits = prototype_logits(
            features[:, :n_support], episode.support_labels[t : t + 1], features[:, n_support:], episode.ways
        )
        return logits[0]

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        batch = sampler.sample(self.config.meta_batch, self.train_spec, generator).to(self.device)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.config.strategy == "vectorized":
            logits = self._logits(batch)
            loss = F.cross_entropy(logits.flatten(0, 1), batch.query_labels.flatten())
            loss.backward()
            acc = accuracy(logits, batch.query_labels).mean()
        else:
            losses, accs = [], []
            for t in range(batch.batch_size):
                logits = self._task_logits(batch, t)
                task_loss = F.cross_entropy(logits, batch.query_labels[t])
                (task_loss / batch.batch_size).backward()
                losses.append(task_loss.detach())
                accs.append(accuracy(logits, batch.query_labels[t]))
            loss, acc = torch.stack(losses).mean(), torch.stack(accs).mean()
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step took (the schedule halves it)
        self.optimizer.step()
        self.scheduler.step()
        return StepStats(loss=loss.item(), accuracy=acc.item(), metrics={"lr": lr})

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()  # running BatchNorm statistics: no information flows between test images
        try:
            return self._logits(episode.to(self.device)).argmax(dim=-1)
        finally:
            self.model.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
