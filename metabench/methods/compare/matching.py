"""Matching Networks (Vinyals et al., NIPS 2016): attention over the support set, summed by label."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import accuracy, training_episode
from metabench.methods.compare.cards import MATCHING
from metabench.models.conv4 import Conv4

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


def cosine_similarities(query: torch.Tensor, support: torch.Tensor, cosine: str = "both") -> torch.Tensor:
    """c(f(x̂), g(x_i)) of every query [B, q, D] with every support example [B, s, D]: [B, q, s].

    "both" is the paper's cosine similarity. It lies in [-1, 1], and in [0, 1] between the Conv-4's
    non-negative (ReLU) features, so the softmax over it is flat: the most attended example weighs at
    most e times the least, a 5-way 1-shot class probability is at most e / (e + 4) = 0.40, and
    training learns slowly. "support" divides by the support norm only, as the
    AntreasAntoniou/MatchingNetworks re-implementation does: the query's norm then scales all its
    similarities alike, a learned sharpness of the attention.
    """
    support = F.normalize(support, dim=-1, eps=1e-8)
    if cosine == "both":
        query = F.normalize(query, dim=-1, eps=1e-8)
    return query @ support.transpose(1, 2)


def class_probabilities(attention: torch.Tensor, support_labels: torch.Tensor, ways: int) -> torch.Tensor:
    """P(y | x̂, S) = Σ_i a(x̂, x_i) y_i with one-hot y_i (the paper's eq. 1): [B, q, s] -> [B, q, ways]."""
    one_hot = F.one_hot(support_labels, ways).to(attention.dtype)  # [B, s, ways]
    return attention @ one_hot


class FullContextEmbeddings(nn.Module):
    """The paper's full context embeddings (Appendix A): the support set embedded as a whole, and each
    query read against it with an attention LSTM of `steps` processing steps.

    g(x_i, S) = h→_i + h←_i + g'(x_i): a bidirectional LSTM over the support sequence, in the order the
    episode lists it, plus a skip connection (so its hidden size is the embedding's).
    f(x̂, S) = attLSTM(f'(x̂), g(S), K): ĥ_k, c_k = LSTM(f'(x̂), [h_{k-1}, r_{k-1}], c_{k-1});
    h_k = ĥ_k + f'(x̂); r_{k-1} = Σ_i a(h_{k-1}, g(x_i)) g(x_i) with a = softmax of the dot products
    h_{k-1}ᵀ g(x_i); the output is h_K.
    """

    def __init__(self, features: int, steps: int):
        super().__init__()
        self.support_lstm = nn.LSTM(features, features, batch_first=True, bidirectional=True)
        # The paper's LSTM takes [h_{k-1}, r_{k-1}] as its previous hidden state. An LSTMCell whose input
        # is [f'(x̂), r_{k-1}] and whose hidden state is h_{k-1} computes the same gates: every gate is an
        # affine map of the concatenation [f'(x̂), h_{k-1}, r_{k-1}], only split across two matrices.
        self.query_cell = nn.LSTMCell(2 * features, features)
        self.steps = steps

    def support(self, embedded: torch.Tensor) -> torch.Tensor:
        """g(S): support CNN embeddings [B, s, D] -> [B, s, D], each depending on the whole set."""
        outputs, _ = self.support_lstm(embedded)  # [B, s, 2D]: forward then backward hidden states
        forward, backward = outputs.chunk(2, dim=-1)
        return forward + backward + embedded

    def query(self, embedded: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """f(x̂, S): query CNN embeddings [B, q, D] read against g(S) [B, s, D] -> [B, q, D].

        All queries of all tasks step together as one LSTMCell batch; each attends to its own task's
        support set only, never to other queries, so the embedding is not transductive.
        """
        b, q, d = embedded.shape
        flat = embedded.reshape(b * q, d)
        # h_0 = f'(x̂) (ĥ_0 = 0) and c_0 = 0: the appendix leaves the initial state unsaid [unconfirmed].
        h, c = embedded, torch.zeros_like(flat)
        for _ in range(self.steps):
            attention = (h @ support.transpose(1, 2)).softmax(dim=-1)  # [B, q, s]
            read = attention @ support  # r_{k-1}
            h_hat, c = self.query_cell(
                torch.cat([flat, read.reshape(b * q, d)], dim=-1), (h.reshape(b * q, d), c)
            )
            h = (h_hat + flat).view(b, q, d)
        return h


class MatchingNet(Method):
    """Matching Networks: a Conv-4 embedding; a query's class distribution is the softmax attention over
    the support set (cosine similarities of embeddings) applied to the support's one-hot labels.

    Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, "Matching Networks for One Shot Learning",
    NIPS 2016. f = g = one Conv-4 (64 channels, max-pool) on Omniglot, trained on episodes shaped like
    the test's to maximize log P(y | x̂, S). Full context embeddings (`fce`) are optional: the paper
    reports them no help on Omniglot, and its Table 1 Omniglot rows are without them. BatchNorm keeps
    running statistics and runs in eval mode at test time, so queries are classified independently:
    not transductive (with or without FCE, whose LSTMs read the support set and one query at a time).
    """

    card: ClassVar[MethodCard] = MATCHING

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        device = context.device
        self.model = Conv4(hidden=config.hidden, downsample="maxpool").to(device)
        if device.type == "cpu":
            self.model.use_channels_last()
        self.context_embeddings = (
            FullContextEmbeddings(self.model.out_features, config.fce_steps).to(device)
            if config.fce
            else None
        )
        parameters = list(self.model.parameters())
        if self.context_embeddings is not None:
            parameters += list(self.context_embeddings.parameters())
        self.optimizer = torch.optim.Adam(parameters, lr=config.lr)
        self.train_spec = training_episode(
            config.train_ways,
            config.train_shots,
            config.train_queries,
            context.num_train_classes,
            ("train_ways", "train_shots", "train_queries"),
        )

    def _modules(self) -> list[nn.Module]:
        return [m for m in (self.model, self.context_embeddings) if m is not None]

    def _embed(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """g(x_i, S) of the support [B, s, D] and f(x̂, S) of the queries [B, q, D], in the current mode.

        Support and queries of every task go through the CNN in one pass (f' = g', shared as in the
        paper's Omniglot model), so in training mode BatchNorm normalizes with the whole batch's statistics.
        """
        b, n_support = episode.support_labels.shape
        images = torch.cat([episode.support.flatten(0, 1), episode.query.flatten(0, 1)])
        features = self.model(images)
        support = features[: b * n_support].view(b, n_support, -1)
        query = features[b * n_support :].view(b, -1, features.shape[-1])
        if self.context_embeddings is not None:
            support = self.context_embeddings.support(support)
            query = self.context_embeddings.query(query, support)
        return support, query

    def _attention(self, episode: Episode) -> torch.Tensor:
        """a(x̂, x_i): the softmax over the support set of the cosine similarities, [B, q, s]."""
        support, query = self._embed(episode)
        return cosine_similarities(query, support, self.config.cosine).softmax(dim=-1)

    def _probabilities(self, episode: Episode) -> torch.Tensor:
        return class_probabilities(self._attention(episode), episode.support_labels, episode.ways)

    @torch.no_grad()
    def _in_eval_mode(self, function: Callable[[Episode], Any], episode: Episode) -> Any:
        """`function(episode)` with BatchNorm on its running statistics, the modes restored after."""
        modes = [m.training for m in self._modules()]
        for module in self._modules():
            module.eval()
        try:
            return function(episode.to(self.device))
        finally:
            for module, mode in zip(self._modules(), modes, strict=True):
                module.train(mode)

    def embeddings(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """The test-time support and query embeddings g(x_i, S) [B, s, D] and f(x̂, S) [B, q, D]."""
        return self._in_eval_mode(self._embed, episode)

    def attention(self, episode: Episode) -> torch.Tensor:
        """The test-time attention of every query over its support set, [B, q, s]; rows sum to one."""
        return self._in_eval_mode(self._attention, episode)

    def loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean -log P(y | x̂, S) over all queries of all tasks, and P [B, q, N], in the current mode."""
        probabilities = self._probabilities(episode)
        # Attention weights are positive, but a class whose every example is attended almost not at all
        # can underflow to 0 in float32 (only with cosine=support, whose similarities are unbounded).
        log_probabilities = probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()
        return F.nll_loss(log_probabilities.flatten(0, 1), episode.query_labels.flatten()), probabilities

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        batch = sampler.sample(self.config.meta_batch, self.train_spec, generator).to(self.device)
        for module in self._modules():
            module.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, probabilities = self.loss(batch)
        loss.backward()
        self.optimizer.step()
        return StepStats(loss=loss.item(), accuracy=accuracy(probabilities, batch.query_labels).mean().item())

    def predict(self, episode: Episode) -> torch.Tensor:
        return self._in_eval_mode(self._probabilities, episode).argmax(dim=-1)

    def state_dict(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.context_embeddings is not None:
            state["context_embeddings"] = self.context_embeddings.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.context_embeddings is not None:
            self.context_embeddings.load_state_dict(state["context_embeddings"])
        self.optimizer.load_state_dict(state["optimizer"])
