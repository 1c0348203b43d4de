"""Meta-learner LSTM (Ravi & Larochelle, ICLR 2017): an LSTM whose cell state is the learner's parameters."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import accuracy, episode_shaped_training
from metabench.methods.other.cards import LSTM_OPTIMIZER
from metabench.models.conv4 import Conv4, Conv4Classifier

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

# Sources: the authors' Lua code, twitter/meta-learning-lstm@0df7fc7 (model/lstm/meta-learner-lstm.lua,
# model/lstm/lstm-helper.lua, model/lstm/RecurrentLSTMNetwork.lua, model/lstm-classifier.lua,
# config/lstm/train-imagenet-{1,5}shot.lua), and markdtw/meta-learning-lstm-pytorch, which agrees.
PREPROCESS_P = 10.0  # lstm-helper.lua


def preprocess(x: torch.Tensor, p: float = PREPROCESS_P) -> torch.Tensor:
    """lstm-helper.lua's preprocessing of a loss or gradient (Andrychowicz et al. 2016), [...] -> [2, ...]:
    (log|x| / p, sign x) where |x| > e^-p, else (-1, e^p x). The two branches meet at |x| = e^-p."""
    large = x.abs() > math.exp(-p)
    magnitude = torch.where(large, x.abs().clamp_min(math.exp(-p)).log() / p, -1.0)
    sign = torch.where(large, x.sign(), x * math.exp(p))
    return torch.stack([magnitude, sign])


class State(NamedTuple):
    """The meta-learner's recurrent state, one column per learner parameter (coordinate).

    Coordinates run along the last dimension: torch's CPU sigmoid on a [P, 20] block (rows of 20)
    measured 17x slower than on [20, P], and dominated a step.
    """

    h: torch.Tensor  # [hidden, P] layer 1
    cell: torch.Tensor  # [hidden, P] layer 1
    forget: torch.Tensor  # [P] layer 2's previous forget-gate pre-activation
    input: torch.Tensor  # [P] layer 2's previous input-gate pre-activation
    c: torch.Tensor  # [P] layer 2's cell state: the learner's flattened parameters


class MetaLearner(nn.Module):
    """meta-learner-lstm.lua's two layers, applied coordinate-wise: every learner parameter is a batch
    element and all share the weights."""

    def __init__(self, initial_params: torch.Tensor, hidden: int):
        super().__init__()
        # Layer 1 (RecurrentLSTMNetwork.lua): an ordinary LSTM over [preprocessed loss, preprocessed
        # gradient], one weight for [x, h] and one bias; gates input, forget, output, then the candidate.
        self.lstm_weight = nn.Parameter(torch.empty(4 * hidden, 4 + hidden))
        self.lstm_bias = nn.Parameter(torch.empty(4 * hidden))
        # Layer 2 (getMetaLearnerLSTM, lstm-helper.lua): each gate reads [h_t, c_{t-1}, its own previous
        # pre-activation]; the Lua code keeps the pre-sigmoid value as the state (the paper writes i_{t-1}).
        self.forget_weight = nn.Parameter(torch.empty(hidden + 2))
        self.input_weight = nn.Parameter(torch.empty(hidden + 2))
        self.forget_bias = nn.Parameter(torch.empty(()))
        self.input_bias = nn.Parameter(torch.empty(()))
        self.c0 = nn.Parameter(initial_params.clone())  # cI: learned, starts as the learner's initialization
        for weight in (self.lstm_weight, self.lstm_bias, self.forget_weight, self.input_weight):
            nn.init.uniform_(weight, -0.01, 0.01)
        # "want initial forget value to be high and input value to be low so that model starts with
        # gradient descent" (meta-learner-lstm.lua): c_t ~ 0.99 c_{t-1} - 0.01 grad.
        nn.init.uniform_(self.forget_bias, 4.0, 5.0)
        nn.init.uniform_(self.input_bias, -5.0, -4.0)
        self.hidden = hidden

    def initial_state(self) -> State:
        zeros = self.c0.new_zeros(self.c0.shape[0])
        rows = self.c0.new_zeros(self.hidden, self.c0.shape[0])
        return State(rows, rows, zeros, zeros, self.c0)

    def forward(self, loss: torch.Tensor, grad: torch.Tensor, state: State) -> State:
        """One update from the learner's support loss (scalar) and gradient [P], both constants."""
        # The loss is the same for every coordinate: its share of the layer-1 gates joins the bias.
        bias = self.lstm_bias + self.lstm_weight[:, :2] @ preprocess(loss)
        x = torch.cat([preprocess(grad), state.h])
        gates = torch.addmm(bias[:, None], self.lstm_weight[:, 2:], x)  # [4 hidden, P]
        i, f, o = torch.sigmoid(gates[: 3 * self.hidden]).chunk(3)
        cell = f * state.cell + i * tanh(gates[3 * self.hidden :])
        h = o * tanh(cell)
        forget = self._gate(self.forget_weight, self.forget_bias, h, state.c, state.forget)
        input_ = self._gate(self.input_weight, self.input_bias, h, state.c, state.input)
        return State(h, cell, forget, input_, cell_update(state.c, grad, forget.sigmoid(), input_.sigmoid()))

    def _gate(self, weight, bias, h, c, previous) -> torch.Tensor:
        # = weight . [h, c, previous] + bias per coordinate, without building the concatenation.
        return weight[: self.hidden] @ h + c * weight[self.hidden] + previous * weight[self.hidden + 1] + bias


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh as 2 sigmoid(2x) - 1: torch 2.13's CPU tanh measured 4x slower than this on [20, P] blocks."""
    return torch.sigmoid(2 * x) * 2 - 1


def cell_update(c: torch.Tensor, grad: torch.Tensor, forget: torch.Tensor, input_gate: torch.Tensor):
    """c_t = f_t * c_{t-1} - i_t * grad_t: gradient descent with a learned step and weight decay."""
    return forget * c - input_gate * grad


class LstmOptimizer(Method):
    """Meta-learner LSTM: an LSTM learns to update a classifier's parameters from its losses and gradients.

    Ravi & Larochelle, "Optimization as a Model for Few-Shot Learning", ICLR 2017, following the authors'
    code (twitter/meta-learning-lstm). Learner: their Conv-4 (4 x [3x3 conv with 32 filters, BatchNorm,
    ReLU, 2x2 max-pool]) and a linear N-way head, here at Omniglot's 28x28x1 (their config is
    miniImageNet's 84x84x3). The meta-learner's cell state is the learner's parameter vector; its initial
    value is learned. As in their code, the gradients fed to the meta-learner are constants (no second
    derivatives), and the meta-gradient flows through the cell-state updates.

    BatchNorm as in their code: each task starts from fresh running statistics, which the inner updates
    (training mode, support batch statistics) accumulate; queries are predicted in eval mode with those
    support-only statistics, so no query affects another: not transductive. Meta-training scores the
    queries with their own batch statistics, as the authors did ("use batch-stats when meta-training").
    """

    card: ClassVar[MethodCard] = LSTM_OPTIMIZER

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        episode, device = context.episode, context.device
        learner = Conv4Classifier(episode.ways, Conv4(hidden=config.filters, downsample="maxpool"))
        for module in learner.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = config.bn_eps, config.bn_momentum
                nn.init.uniform_(module.weight)  # torch7's BatchNormalization:reset(): scale U(0, 1)
        # Conv and linear layers keep torch's default initialization, which is torch7's U(+-1/sqrt(fan_in)).
        params = dict(learner.named_parameters())
        self.shapes = {name: p.shape for name, p in params.items()}
        # Fresh BatchNorm statistics (mean 0, variance 1), copied for every task.
        self.fresh_stats = {name: b.to(device, copy=True) for name, b in learner.named_buffers()}
        self.meta = MetaLearner(torch.cat([p.detach().flatten() for p in params.values()]), config.hidden)
        self.meta.to(device)
        # Only a template for functional_call: every parameter and buffer is passed in on each call, so
        # its own weights live on the meta device, where nothing can read them by mistake.
        self.learner = learner.to("meta")
        self.optimizer = torch.optim.Adam(self.meta.parameters(), lr=config.meta_lr)
        self.train_spec = episode_shaped_training(context, config.train_queries)

    @contextmanager
    def _learner_mode(self, training: bool) -> Iterator[None]:
        was_training = self.learner.training
        self.learner.train(training)
        try:
            yield
        finally:
            self.learner.train(was_training)

    def _logits(self, flat: torch.Tensor, stats: dict, x: torch.Tensor, training: bool) -> torch.Tensor:
        """The learner with parameters `flat` [P] and BatchNorm statistics `stats` (updated in place when
        training) on images x: logits [n, N]."""
        sizes = [shape.numel() for shape in self.shapes.values()]
        params = {
            name: part.view(shape)
            for (name, shape), part in zip(self.shapes.items(), flat.split(sizes), strict=True)
        }
        with self._learner_mode(training):
            return functional_call(self.learner, {**params, **stats}, (x,))

    def _support_gradient(
        self, flat: torch.Tensor, stats: dict, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The learner's support loss and its gradient at `flat`, both detached (the authors compute them
        on a separate copy of the network: "doesn't include gradients of learner")."""
        theta = flat.detach().requires_grad_()
        with torch.enable_grad():
            loss = F.cross_entropy(self._logits(theta, stats, x, training=True), y)
            (grad,) = torch.autograd.grad(loss, theta)
        # feval in meta-learner-lstm.lua divides the gradient of the already size-averaged criterion by
        # the batch size once more (markdtw's re-implementation too); the meta-learner sees that scale.
        return loss.detach(), grad / x.shape[0]

    def _adapt(self, support: torch.Tensor, labels: torch.Tensor) -> tuple[State, dict]:
        """One task's inner loop: the meta-learner's final state, whose cell c_T [P] holds the learner's
        parameters (differentiable with respect to the meta-learner unless under no_grad), and the
        BatchNorm running statistics of its support set."""
        stats = {name: b.clone() for name, b in self.fresh_stats.items()}  # learner.reset() per episode
        state = self.meta.initial_state()
        for _ in range(self.config.inner_steps):
            loss, grad = self._support_gradient(state.c, stats, support, labels)
            state = self.meta(loss, grad, state)
        return state, stats

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        batch = sampler.sample(self.config.meta_batch, self.train_spec, generator).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        # A loop over tasks, not torch.func.vmap: each task's inner loop writes its own BatchNorm running
        # statistics in place (torch's batch_norm), which vmap refuses on unbatched buffers (it would need
        # per-task stacked statistics threaded through functional_call), and the paper's meta-batch is one
        # episode. Each task's graph is freed by its own backward.
        losses, accuracies = [], []
        for t in range(batch.batch_size):
            state, stats = self._adapt(batch.support[t], batch.support_labels[t])
            logits = self._logits(state.c, stats, batch.query[t], training=True)  # query batch statistics
            loss = F.cross_entropy(logits, batch.query_labels[t])
            (loss / batch.batch_size).backward()
            losses.append(loss.detach())
            accuracies.append(accuracy(logits.detach(), batch.query_labels[t]))
        norm = nn.utils.clip_grad_norm_(self.meta.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        # What the meta-learner has learned to do, at the last update of the batch's last task: its mean
        # step size (input gate) and weight retention (forget gate); 1 and a fixed step are plain SGD.
        metrics = {
            "input_gate": state.input.detach().sigmoid().mean().item(),
            "forget_gate": state.forget.detach().sigmoid().mean().item(),
            "meta_grad_norm": norm.item(),
        }
        return StepStats(sum(losses).item() / len(losses), sum(accuracies).item() / len(losses), metrics)

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        episode = episode.to(self.device)
        predictions = []
        for t in range(episode.batch_size):
            state, stats = self._adapt(episode.support[t], episode.support_labels[t])
            # Eval mode: the support's running statistics, so each query is classified on its own.
            predictions.append(self._logits(state.c, stats, episode.query[t], training=False).argmax(-1))
        return torch.stack(predictions)

    def state_dict(self) -> dict[str, Any]:
        return {"meta_learner": self.meta.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meta.load_state_dict(state["meta_learner"])
        self.optimizer.load_state_dict(state["optimizer"])
