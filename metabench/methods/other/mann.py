"""Memory-Augmented Neural Networks (Santoro et al., ICML 2016): an LSTM with an LRUA external memory."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import accuracy, training_episode
from metabench.methods.other.cards import MANN

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

# Re-implementations followed: mann-td = tristandeleu/ntm-one-shot (mann/model.py), mann-sk =
# snowkylin/ntm (ntm/mann_cell.py, one_shot_learning.py). Santoro's own text is not in our stores:
# every "paper" value below comes from them and is [unconfirmed] as the paper's.
PREDICT_ORDER_SEED = 20_160_519  # fixed support order at test time (arXiv 1605.06065's submission date)

State = tuple[torch.Tensor, ...]  # (h, c, reads, read_weights, usage, memory), one row per sequence


def lrua(
    memory: torch.Tensor,
    usage: torch.Tensor,
    prev_read: torch.Tensor,
    key: torch.Tensor,
    add: torch.Tensor,
    gate: torch.Tensor,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One least-recently-used-access step: write, then read by cosine similarity.

    memory [..., S, W], usage [..., S], prev_read [..., H, S], key and add [..., H, W], gate [..., H, 1]
    in (0, 1); leading dimensions broadcast (a task's memory against its queries' keys). Returns the new
    memory, read weights [..., H, S], write weights [..., H, S] and usage [..., S].
    """
    slots, heads = memory.shape[-2], prev_read.shape[-2]
    # Least-used weights: ones at the H least-used slots (the paper's m(w^u, n), n = reads; mann-sk
    # `least_used`). A stable sort breaks ties by slot index, the same way on every device.
    order = torch.sort(usage, dim=-1, stable=True).indices
    least_used = F.one_hot(order[..., :heads], slots).sum(-2).to(memory.dtype)
    write = gate * prev_read + (1 - gate) * least_used.unsqueeze(-2)  # learned gate (mann-td, mann-sk)
    # The single least-used slot is erased before writing (mann-td, mann-sk; paper p. 4).
    memory = memory * (1 - F.one_hot(order[..., 0], slots).to(memory.dtype)).unsqueeze(-1)
    memory = memory + write.transpose(-1, -2) @ add
    # Reads look at the memory after this step's write (mann-td `K_t = cosine_similarity(k_t, M_t)`): a
    # slot just written is read now, and these read weights steer the next step's write, which binds
    # the label that arrives one step later. Cosine similarity with mann-td's epsilon under the root.
    dots = key @ memory.transpose(-1, -2)
    norms = key.pow(2).sum(-1, keepdim=True) * memory.pow(2).sum(-1).unsqueeze(-2)
    read = torch.softmax(dots / torch.sqrt(norms + 1e-6), dim=-1)
    usage = gamma * usage + read.sum(-2) + write.sum(-2)  # u_t = gamma u_{t-1} + w^r_t + w^w_t, all heads
    return memory, read, write, usage


def lrua_readout(
    memory: torch.Tensor,
    usage: torch.Tensor,
    prev_read: torch.Tensor,
    key: torch.Tensor,
    add: torch.Tensor,
    gate: torch.Tensor,
) -> torch.Tensor:
    """What `lrua` reads, for q independent last steps from one state per task: reads [B, q, H, W].

    memory [B, S, W], usage [B, S], prev_read [B, H, S]; key and add [B, q, H, W], gate [B, q, H, 1].
    Query j's memory would be M + sum_h w_h a_h^T: expanding the cosine similarities and the reads in
    those terms gives the same numbers without a [B, q, S, W] memory per query (training steps twice as fast).
    """
    b, q, heads, width = key.shape
    slots = memory.shape[1]
    order = torch.sort(usage, dim=-1, stable=True).indices
    least_used = F.one_hot(order[:, :heads], slots).sum(1).to(memory.dtype)  # as in `lrua`
    write = gate * prev_read.unsqueeze(1) + (1 - gate) * least_used[:, None, None]  # [B, q, H, S]
    memory = memory * (1 - F.one_hot(order[:, 0], slots).to(memory.dtype)).unsqueeze(-1)

    def against_memory(vectors: torch.Tensor) -> torch.Tensor:  # [B, q, H, W] @ M^T: [B, q, H, S]
        return (vectors.reshape(b, q * heads, width) @ memory.transpose(1, 2)).view(b, q, heads, slots)

    dots = against_memory(key) + (key @ add.transpose(-1, -2)) @ write
    memory_sq = memory.pow(2).sum(-1)[:, None, None]  # |M_s|^2 [B, 1, 1, S]
    cross = (write * against_memory(add)).sum(-2, keepdim=True)  # sum_h w_h(s) a_h . M_s
    added_sq = (write * ((add @ add.transpose(-1, -2)) @ write)).sum(-2, keepdim=True)  # |sum_h w_h a_h|^2
    norms = key.pow(2).sum(-1, keepdim=True) * (memory_sq + 2 * cross + added_sq)
    read = torch.softmax(dots / torch.sqrt(norms + 1e-6), dim=-1)
    return (read.reshape(b, q * heads, slots) @ memory).view(b, q, heads, width) + (
        read @ write.transpose(-1, -2)
    ) @ add


class MannNet(nn.Module):
    """LSTM controller, LRUA memory and a linear N-way output on [h ⊕ reads] (mann-td, mann-sk)."""

    def __init__(self, pixels: int, ways: int, config: Config):
        super().__init__()
        self.ways, self.config = ways, config
        hidden, reads = config.controller, config.read_heads * config.memory_width
        # The LSTM's gates from (x_t, y_{t-1}) and from (h_{t-1}, r_{t-1}), the previous reads fed back
        # as in both re-implementations. Split so that queries sharing a task state share the second
        # product and no gradient is computed for the pixels. Gate order i, f, g, o as in nn.LSTMCell.
        self.image_gates = nn.Linear(pixels, 4 * hidden)
        self.label_gates = nn.Linear(ways, 4 * hidden, bias=False)
        self.state_gates = nn.Linear(hidden + reads, 4 * hidden, bias=False)
        self.heads = nn.Linear(hidden, config.read_heads * (2 * config.memory_width + 1))  # key, add, gate
        self.output = nn.Linear(hidden + reads, ways)

    def initial_state(self, rows: int, like: torch.Tensor) -> State:
        """Zero controller and reads; read weights and usage on slot 0; memory at 1e-6 (both re-impls)."""
        c = self.config
        h = like.new_zeros(rows, c.controller)
        slot0 = F.one_hot(like.new_zeros(rows, dtype=torch.long), c.memory_slots).to(like.dtype)
        read_w = slot0.unsqueeze(1).expand(rows, c.read_heads, c.memory_slots)
        memory = like.new_full((rows, c.memory_slots, c.memory_width), 1e-6)
        reads = like.new_zeros(rows, c.read_heads * c.memory_width)
        return h, h, reads, read_w, slot0, memory

    def _controller(
        self, state: State, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The LSTM step and its head outputs: h, c, keys, add vectors, gates. Leading dims broadcast."""
        h, c, reads = state[:3]
        gates = (
            self.image_gates(images) + self.label_gates(labels) + self.state_gates(torch.cat([h, reads], -1))
        )
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        width = self.config.memory_width
        params = self.heads(h).unflatten(-1, (self.config.read_heads, 2 * width + 1))
        key = torch.tanh(params[..., :width])
        add = key if self.config.write_key else torch.tanh(params[..., width : 2 * width])
        return h, c, key, add, torch.sigmoid(params[..., -1:])

    def step(self, state: State, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One time step: images [R, P], one-hot previous labels [R, N]; logits [R, N] and the next state."""
        h, c, key, add, gate = self._controller(state, images, labels)
        memory, read_w, _, usage = lrua(state[5], state[4], state[3], key, add, gate, self.config.gamma)
        reads = (read_w @ memory).flatten(-2)
        return self.output(torch.cat([h, reads], dim=-1)), (h, c, reads, read_w, usage, memory)

    def run(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Feed sequences images [B, T, P] with labels [B, T] offset by one step: logits [B, T, N], state."""
        # y_{t-1}: shifted one step, with zeros at the first step.
        previous = F.pad(F.one_hot(labels, self.ways).to(images.dtype), (0, 0, 1, 0))[:, :-1]
        state, logits = self.initial_state(labels.shape[0], images), []
        for t in range(labels.shape[1]):  # recurrent: one step at a time, every task of the batch at once
            out, state = self.step(state, images[:, t], previous[:, t])
            logits.append(out)
        return torch.stack(logits, dim=1), state

    def continue_each(self, state: State, last_label: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """One more step per query [B, q, P] from its task's state, all independent: logits [B, q, N]."""
        h, c, reads, read_w, usage, memory = state
        label = F.one_hot(last_label, self.ways).to(queries.dtype).unsqueeze(1)
        h, _, key, add, gate = self._controller(
            (h.unsqueeze(1), c.unsqueeze(1), reads.unsqueeze(1)), queries, label
        )
        reads = lrua_readout(memory, usage, read_w, key, add, gate).flatten(-2)
        return self.output(torch.cat([h, reads], dim=-1))


class Mann(Method):
    """Memory-Augmented Neural Network (no convolutions): an LSTM that stores and looks up label bindings.

    Santoro, Bartunov, Botvinick, Wierstra & Lillicrap, "Meta-Learning with Memory-Augmented Neural
    Networks", ICML 2016. At step t the controller sees the flattened image x_t and the one-hot label
    y_{t-1}, and must predict y_t. A task is the support set in a random order (its class-major layout
    would give the labels away), then every query as its own one-step continuation of the final support
    state, fed the last support label: one query never sees another, so the method is not transductive.
    Training uses that same format (Santoro's loss on every step: each support step and each query),
    with as many shots as the test and 10 instances per class in all, as in Santoro's 50-step episodes.
    """

    card: ClassVar[MethodCard] = MANN

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        if config.read_heads > config.memory_slots:
            raise ValueError(f"read_heads {config.read_heads} exceeds memory_slots {config.memory_slots}")
        episode, device = context.episode, context.device
        self.pixels = math.prod(context.image_shape)
        self.model = MannNet(self.pixels, episode.ways, config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.train_spec = training_episode(
            episode.ways,
            config.train_shots,
            config.train_queries,
            context.num_train_classes,
            ("--ways", "train_shots", "train_queries"),
        )

    def _logits(self, episode: Episode, order: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Support logits [B, N*K, N] in `order` [B, N*K] with their labels, and query logits [B, N*Q, N]."""
        images = episode.support.flatten(2).gather(1, order.unsqueeze(-1).expand(-1, -1, self.pixels))
        labels = episode.support_labels.gather(1, order)
        support_logits, state = self.model.run(images, labels)
        query_logits = self.model.continue_each(state, labels[:, -1], episode.query.flatten(2))
        return support_logits, labels, query_logits

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        batch = sampler.sample(self.config.meta_batch, self.train_spec, generator).to(self.device)
        b, n = batch.support_labels.shape
        order = torch.rand(b, n, generator=generator).argsort(dim=-1).to(self.device)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        support_logits, labels, query_logits = self._logits(batch, order)
        logits = torch.cat([support_logits, query_logits], dim=1)
        loss = F.cross_entropy(logits.flatten(0, 1), torch.cat([labels, batch.query_labels], dim=1).flatten())
        loss.backward()
        self.optimizer.step()
        return StepStats(loss=loss.item(), accuracy=accuracy(query_logits, batch.query_labels).mean().item())

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        episode = episode.to(self.device)
        b, n = episode.support_labels.shape
        # One fixed permutation of support positions, the same for every task: deterministic, and a
        # task's predictions do not depend on the batch it comes in. (The support labels are inputs
        # anyway; training shuffles so that support-step losses cannot be met by counting positions.)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(PREDICT_ORDER_SEED))
        order = order.to(self.device).expand(b, n)
        return self._logits(episode, order)[2].argmax(dim=-1)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
