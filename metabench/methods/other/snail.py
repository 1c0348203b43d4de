"""SNAIL (Mishra et al., ICLR 2018): a causal sequence model of temporal convolutions and soft attention."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import accuracy, episode_shaped_training
from metabench.methods.other.cards import SNAIL
from metabench.models.conv4 import Conv4

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

# The support order at test time: one fixed permutation of the slots, drawn from this seed. It depends on
# positions only, never on labels or images, so predict is deterministic and relabelling-consistent.
PREDICT_ORDER_SEED = 1707_03141  # the paper's arXiv number


class DenseBlock(nn.Module):
    """DenseBlock(R, D) of §3.1: a causal kernel-2 convolution with dilation R and D gated filters,
    tanh(x_f) * sigmoid(x_g), its output concatenated to its input: [S, T, C] -> [S, T, C + D].

    A kernel-2 causal convolution reads only x[t - R] and x[t], so it is one linear layer on the two
    taps side by side; filter and gate share it (the same function as two convolutions)."""

    def __init__(self, channels: int, dilation: int, filters: int):
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Linear(2 * channels, 2 * filters)

    def _gated(self, past: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        f, g = self.conv(torch.cat([past, now], dim=-1)).chunk(2, dim=-1)
        return torch.cat([now, torch.tanh(f) * torch.sigmoid(g)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        past = F.pad(x, (0, 0, self.dilation, 0))[:, : x.shape[1]]  # x[t - R], zeros before the start
        return self._gated(past, x)

    def last(self, prefix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The output at position P for each of Q inputs x [B, Q, C] after a shared prefix [B, P, C]."""
        p = prefix.shape[1]
        past = prefix[:, p - self.dilation][:, None] if p >= self.dilation else x.new_zeros(())
        return self._gated(past.expand_as(x), x)


class TCBlock(nn.Module):
    """TCBlock(T, D) of §3.1: DenseBlocks with dilations 2^i, i = 1 .. ceil(log2 T).

    The paper's algorithm starts at 2^1, as eambutu/snail-pytorch (src/blocks.py, `2 ** (i+1)`) does;
    sagelywizard/snail starts at 2^0. We follow the paper."""

    def __init__(self, channels: int, length: int, filters: int):
        super().__init__()
        layers = max(1, math.ceil(math.log2(length)))
        self.blocks = nn.ModuleList(
            DenseBlock(channels + i * filters, 2 ** (i + 1), filters) for i in range(layers)
        )
        self.out_channels = channels + layers * filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def last(self, prefix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x, prefix = block.last(prefix, x), block(prefix)
        return x


class AttentionBlock(nn.Module):
    """AttentionBlock(K, V) of §3.1: keys and queries of size K, values of size V, a causally masked
    softmax of Q K^T / sqrt(K) over the positions up to and including t, the read concatenated to the input.

    The softmax runs over the keys (eambutu/snail-pytorch normalizes over dim=1, the queries, which lets
    later positions leak into earlier ones; sagelywizard/snail uses the keys, as here)."""

    def __init__(self, channels: int, key_size: int, value_size: int):
        super().__init__()
        self.query = nn.Linear(channels, key_size)
        self.key = nn.Linear(channels, key_size)
        self.value = nn.Linear(channels, value_size)
        self.scale = key_size**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        logits = self.query(x) @ self.key(x).transpose(1, 2) * self.scale  # [S, T, T]
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = logits.masked_fill(future, float("-inf")).softmax(dim=-1)
        return torch.cat([x, weights @ self.value(x)], dim=-1)

    def last(self, prefix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x)  # [B, Q, K]: each of the Q inputs attends to the prefix and to itself only
        to_prefix = q @ self.key(prefix).transpose(1, 2)  # [B, Q, P]
        to_self = (q * self.key(x)).sum(dim=-1, keepdim=True)  # [B, Q, 1]
        weights = (torch.cat([to_prefix, to_self], dim=-1) * self.scale).softmax(dim=-1)
        read = weights[..., :-1] @ self.value(prefix) + weights[..., -1:] * self.value(x)
        return torch.cat([x, read], dim=-1)


class SnailNet(nn.Module):
    """The few-shot sequence network (paper Appendix A, per both re-implementations): Attention(64, 32),
    TC(T, 128), Attention(256, 128), TC(T, 128), Attention(512, 256), then a linear layer to N logits
    (the paper's 1x1 convolution over time; eambutu/snail-pytorch uses a Linear, the same map)."""

    def __init__(self, channels: int, length: int, ways: int):
        super().__init__()
        blocks: list[nn.Module] = []
        for kind, a, b in (
            ("att", 64, 32),
            ("tc", 128, 0),
            ("att", 256, 128),
            ("tc", 128, 0),
            ("att", 512, 256),
        ):
            if kind == "att":
                blocks.append(AttentionBlock(channels, a, b))
                channels += b
            else:
                tc = TCBlock(channels, length, a)
                blocks.append(tc)
                channels = tc.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(channels, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequences [S, T, C] -> logits at every position [S, T, N] (the reference path)."""
        for block in self.blocks:
            x = block(x)
        return self.out(x)

    def last(self, prefix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, Q, N] at the final position of the Q sequences [prefix_b..., x_bq] of each task b.

        Equal to `forward` on each sequence by causality, but the prefix (the task's support) is run
        once per task instead of once per query: the Q sequences differ only in their last step."""
        for block in self.blocks:
            x, prefix = block.last(prefix, x), block(prefix)
        return self.out(x)


class Snail(Method):
    """SNAIL: a task is one sequence of (embedding, one-hot label) pairs for its shuffled support set,
    then an unlabelled query; the network's output at the query step is its prediction.

    Mishra, Rohaninejad, Chen & Abbeel, "A Simple Neural Attentive Meta-Learner", ICLR 2018. The
    embedding is the ProtoNets Conv-4 (as eambutu/snail-pytorch's OmniglotNet), trained end to end
    with Adam on the cross-entropy of the query step only (§5.1). The paper draws K from 1..5 per episode
    to serve 1- and 5-shot tests with one model; we train with the test episode's K, as the
    re-implementation does: the authors said the trick did not improve accuracy (eambutu/snail-pytorch#1).

    Not transductive: each query ends its own sequence after the support set, so no query sees
    another, and BatchNorm uses its running statistics at test time.
    """

    card: ClassVar[MethodCard] = SNAIL

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        episode, device = context.episode, context.device
        embedding = Conv4(hidden=config.hidden, downsample="maxpool")
        if device.type == "cpu":
            embedding.use_channels_last()
        length = episode.ways * episode.shots + 1
        snail = SnailNet(embedding.out_features + episode.ways, length, episode.ways)
        self.model = nn.ModuleDict({"embedding": embedding, "snail": snail}).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.train_spec = episode_shaped_training(context, config.train_queries)
        # Training shuffles every task's support: the sampler's class-major order would let the network tie
        # labels to positions instead of reading the one-hots. Test time uses this one fixed permutation.
        n_support = episode.ways * episode.shots
        self.predict_order = torch.randperm(
            n_support, generator=torch.Generator().manual_seed(PREDICT_ORDER_SEED)
        )

    def _sequences(self, episode: Episode, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's inputs: each task's support prefix [B, N*K, D+N], (embedding, one-hot label) in
        `order` [B, N*K], and every query's last step [B, N*Q, D+N], its label part zero.

        One embedding pass for all images of the batch; in training mode BatchNorm sees the batch's
        statistics, as in the re-implementation."""
        b, n_support = episode.support_labels.shape
        images = torch.cat([episode.support.flatten(0, 1), episode.query.flatten(0, 1)])
        features = self.model["embedding"](images)
        support = features[: b * n_support].view(b, n_support, -1)
        query = features[b * n_support :].view(b, -1, features.shape[-1])
        labels = F.one_hot(episode.support_labels, episode.ways).to(support.dtype)
        prefix = torch.cat([support, labels], dim=-1)
        prefix = prefix.gather(1, order[:, :, None].expand(-1, -1, prefix.shape[-1]))
        last = torch.cat([query, query.new_zeros(*query.shape[:2], episode.ways)], dim=-1)
        return prefix, last

    def _logits(self, episode: Episode, order: torch.Tensor) -> torch.Tensor:
        """Logits [B, N*Q, N] of every query, each at the end of its own sequence [support..., query]."""
        return self.model["snail"].last(*self._sequences(episode, order))

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        batch = sampler.sample(self.config.meta_batch, self.train_spec, generator).to(self.device)
        order = torch.rand(batch.support_labels.shape, generator=generator).argsort(dim=1).to(self.device)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self._logits(batch, order)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.query_labels.flatten())
        loss.backward()
        self.optimizer.step()
        return StepStats(loss=loss.item(), accuracy=accuracy(logits, batch.query_labels).mean().item())

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        if (episode.ways, episode.shots) != (self.episode.ways, self.episode.shots):
            raise ValueError(
                f"snail was built for {self.episode.ways}-way {self.episode.shots}-shot sequences; "
                f"got {episode.ways}-way {episode.shots}-shot tasks"
            )
        was_training = self.model.training
        self.model.eval()  # running BatchNorm statistics: no information flows between test images
        try:
            episode = episode.to(self.device)
            order = self.predict_order.to(self.device).expand(episode.batch_size, -1)
            return self._logits(episode, order).argmax(dim=-1)
        finally:
            self.model.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
