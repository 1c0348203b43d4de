"""Reptile (Nichol, Achiam & Schulman, arXiv 2018): move the initialization toward task-adapted weights."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.init.cards import REPTILE
from metabench.methods.init.inner_loop import Strategy
from metabench.methods.init.maml import resolve_strategy
from metabench.models.conv4 import Conv4, Conv4Classifier, init_weights

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

Params = dict[str, torch.Tensor]

# The authors' DEFAULT_OPTIMIZER (supervised_reptile/models.py): tf.train.AdamOptimizer(beta1=0), whose
# beta2 and epsilon are TensorFlow's defaults. With beta1 = 0 the first moment is the current gradient.
BETA2 = 0.999
ADAM_EPS = 1e-8
# The seed of the test-time mini-batch order, so that predict is a function of the episode and the
# method's state alone (the authors draw it from Python's global `random`).
PREDICT_SHUFFLE_SEED = 180_302_999
# At most this many images go through the network at once when predicting without transduction
# (every query with the whole support set: 25 tasks of 75 queries x 6 images would be 11,250).
MAX_PREDICTION_IMAGES = 2048


def mini_batch_indices(
    tasks: int, size: int, iters: int, batch: int, generator: torch.Generator
) -> torch.Tensor:
    """The examples of every inner step: long [tasks, iters, batch], indices into a task's `size` examples.

    reptile.py `_mini_batches` without replacement: consecutive slices of a shuffled order, reshuffled
    whenever it runs out; a batch may straddle two shuffles, as the authors' `cur_batch` carries over.
    """
    passes = -(-iters * batch // size)
    order = torch.rand(tasks, passes, size, generator=generator).argsort(dim=-1)
    return order.flatten(1)[:, : iters * batch].reshape(tasks, iters, batch)


def adam_update(
    params: Params, exp_avg_sq: Params, grads: Params, step: int, lr: float
) -> tuple[Params, Params]:
    """One step of Adam with beta1 = 0, written as torch.optim.Adam computes it (so the loop agrees):
    the first moment is the gradient, the second is bias-corrected at step `step` (from 1)."""
    bias_correction2_sqrt = (1 - BETA2**step) ** 0.5
    exp_avg_sq = {name: v * BETA2 + (1 - BETA2) * grads[name] * grads[name] for name, v in exp_avg_sq.items()}
    params = {
        name: p - lr * grads[name] / (exp_avg_sq[name].sqrt() / bias_correction2_sqrt + ADAM_EPS)
        for name, p in params.items()
    }
    return params, exp_avg_sq


def batch_loss(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The loss an inner step descends, and the mini-batch's mean cross-entropy and accuracy.

    Summed over the mini-batch, as the authors' minimize_op differentiates a vector of per-example losses
    (tf.gradients sums them); Adam is all but blind to the scale, only its epsilon sees it.
    """
    logits = functional_call(model, params, (x,))
    losses = F.cross_entropy(logits, y, reduction="none")
    accuracy = (logits.argmax(dim=-1) == y).to(losses.dtype).mean()
    return losses.sum(), (losses.detach().mean(), accuracy.detach())


def adapt_task(
    model: nn.Module,
    params: Params,
    exp_avg_sq: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    first_step: int,
    lr: float,
) -> tuple[Params, Params, torch.Tensor, torch.Tensor]:
    """One task's Adam steps, for torch.func.vmap: mini-batches x [iters, batch, C, H, W], y [iters, batch].

    Returns the adapted weights, the final second moments, and the loss and accuracy of the last
    mini-batch before its update. First order: the gradients are of the current weights only.
    """
    loss = accuracy = x.new_zeros(())
    for i in range(x.shape[0]):
        grads, (loss, accuracy) = grad(partial(batch_loss, model), has_aux=True)(params, x[i], y[i])
        params, exp_avg_sq = adam_update(params, exp_avg_sq, grads, first_step + i, lr)
    return params, exp_avg_sq, loss, accuracy


class Reptile(Method):
    """Reptile: train a copy of the network on each task with a few Adam steps, then move the
    initialization θ toward the average of the adapted weights φ_i: θ ← θ + ε (mean_i φ_i − θ).

    Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", arXiv 1803.02999 (2018),
    Algorithm 2 (batched); the authors' code, openai/supervised-reptile (reptile.py, models.py,
    train.py), gives the details. Network: their OmniglotModel, four 3x3 stride-2 'same' convolutions
    with BatchNorm in training mode (batch statistics, always), ReLU, flatten and a dense layer.
    A task is `train_shots` drawings of each of the test's ways; `inner_iters` Adam steps (beta1 = 0)
    on mini-batches of `inner_batch`, drawn without replacement and reshuffled as they run out. ε
    anneals linearly from `meta_step` to `meta_step_final` over the run. At test time every task
    takes `eval_iters` Adam steps on its support set and then predicts each query in a batch of
    the whole support set and that query (through BatchNorm), or, with `transductive`, all the
    queries in one batch (the paper's "Reptile + Transduction").

    The Adam moments outlive a task, as in the authors' code (only the trainable variables are reset
    between tasks; the evaluation restores the whole state). Where the authors run a meta-batch's tasks
    one after another with one Adam whose moments carry from task to task, here the tasks of a
    meta-batch are independent (so they vectorize): each starts from the state carried from the
    previous meta-step, and the state carried forward is the mean over tasks of their final second
    moments, with the step count advanced by `inner_iters` (not meta_batch x inner_iters), which keeps
    the bias correction unbiased for that mean. Adam's epsilon is torch's (added to the bias-corrected
    root), TensorFlow adds it before the correction: a difference of at most 1e-8 x 30 in the first
    steps of a run and none after a few thousand steps.
    """

    card: ClassVar[MethodCard] = REPTILE

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        episode, device = context.episode, context.device
        self.transductive = config.transductive
        backbone = Conv4(hidden=config.hidden, downsample="stride", running_stats=False, readout="flatten")
        self.model = Conv4Classifier(episode.ways, backbone)
        init_weights(self.model)
        self.model.to(device)
        drawings = context.train.drawings
        if config.train_shots > drawings:
            raise ValueError(
                f"train_shots = {config.train_shots} but every training class has only {drawings} "
                "drawings; lower it with --set train_shots=N"
            )
        # The sampler needs one query a class; a task is its support and queries together (the
        # query slot of a one-shot draw is dropped, the sampler cannot give none).
        shots = 1 if config.train_shots > 1 else config.train_shots
        self.train_spec = EpisodeSpec(episode.ways, shots, max(config.train_shots - shots, 1))
        # An inner step forwards `inner_batch` images: the measured choice for tasks of that size.
        self.train_strategy = resolve_strategy(config.strategy, device, EpisodeSpec(config.inner_batch, 1, 0))
        # Evaluation takes the vectorized path unless the loop (the reference) was asked for.
        self.test_strategy: Strategy = "loop" if config.strategy == "loop" else "vectorized"
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in self.model.named_parameters()}
        self.adam_step = 0  # Adam's step count, for its bias correction
        self.steps_taken = 0  # meta-training steps taken: where ε stands on its annealing schedule

    @property
    def dtype(self) -> torch.dtype:
        return self.model.head.weight.dtype

    def step_size(self) -> float:
        """ε for the next meta-step: train.py's linear interpolation from meta_step to meta_step_final."""
        done = self.context.fraction_done(self.steps_taken)
        return done * self.config.meta_step_final + (1 - done) * self.config.meta_step

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        config = self.config
        batch = sampler.sample(config.meta_batch, self.train_spec, generator).to(self.device)
        images = torch.cat([batch.support, batch.query], dim=1).to(self.dtype)
        labels = torch.cat([batch.support_labels, batch.query_labels], dim=1)
        images, labels = (
            images[:, : batch.ways * config.train_shots],
            labels[:, : batch.ways * config.train_shots],
        )
        indices = mini_batch_indices(
            batch.batch_size, images.shape[1], config.inner_iters, config.inner_batch, generator
        )
        x, y = _gather(images, labels, indices.to(self.device))
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        adapted, exp_avg_sq, losses, accuracies = self._adapt(
            params, x, y, config.inner_lr, self.train_strategy
        )
        epsilon = self.step_size()
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.add_(adapted[name].mean(dim=0) - p, alpha=epsilon)
            self.exp_avg_sq = {name: v.mean(dim=0) for name, v in exp_avg_sq.items()}
        self.adam_step += config.inner_iters
        self.steps_taken += 1
        return StepStats(
            loss=losses.mean().item(), accuracy=accuracies.mean().item(), metrics={"meta_step_size": epsilon}
        )

    def _adapt(
        self, params: Params, x: torch.Tensor, y: torch.Tensor, lr: float, strategy: Strategy
    ) -> tuple[Params, Params, torch.Tensor, torch.Tensor]:
        """Every task's Adam steps from `params` and the carried moments; x [B, iters, batch, C, H, W].

        Returns the adapted weights and second moments (each [B, ...]) and the last mini-batches'
        losses and accuracies [B]. The carried state is read, never written.
        """
        if strategy == "vectorized":
            per_task = vmap(
                partial(adapt_task, self.model, first_step=self.adam_step + 1, lr=lr),
                in_dims=(None, None, 0, 0),
            )
            with torch.no_grad():  # torch.func.grad still differentiates each step; nothing else is tracked
                return per_task(params, self.exp_avg_sq, x, y)
        results = [self._adapt_task_autograd(params, x[t], y[t], lr) for t in range(x.shape[0])]
        adapted, moments, losses, accuracies = zip(*results, strict=True)
        return _stack(adapted), _stack(moments), torch.stack(losses), torch.stack(accuracies)

    def _adapt_task_autograd(
        self, params: Params, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> tuple[Params, Params, torch.Tensor, torch.Tensor]:
        """The reference of one task's adaptation: a torch.optim.Adam loaded with the carried state."""
        weights = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
        optimizer = torch.optim.Adam(weights.values(), lr=lr, betas=(0.0, BETA2), eps=ADAM_EPS)
        for name, w in weights.items():
            optimizer.state[w] = {
                "step": torch.tensor(float(self.adam_step)),
                "exp_avg": torch.zeros_like(w),  # beta1 = 0: overwritten by the first gradient
                "exp_avg_sq": self.exp_avg_sq[name].clone(),
            }
        loss = accuracy = x.new_zeros(())
        for i in range(x.shape[0]):
            optimizer.zero_grad(set_to_none=True)
            total, (loss, accuracy) = batch_loss(self.model, weights, x[i], y[i])
            total.backward()
            optimizer.step()
        moments = {name: optimizer.state[w]["exp_avg_sq"] for name, w in weights.items()}
        return {name: w.detach() for name, w in weights.items()}, moments, loss, accuracy

    def predict(self, episode: Episode) -> torch.Tensor:
        episode = episode.to(self.device)
        support, query = episode.support.to(self.dtype), episode.query.to(self.dtype)
        # One fixed mini-batch order for every task, so a task's prediction does not depend on the
        # batch it is evaluated in, nor on its position there.
        generator = torch.Generator().manual_seed(PREDICT_SHUFFLE_SEED)
        order = mini_batch_indices(
            1, support.shape[1], self.config.eval_iters, self.config.eval_batch, generator
        )
        x, y = _gather(
            support, episode.support_labels, order.expand(episode.batch_size, -1, -1).to(self.device)
        )
        # Detached copies: adaptation works on these, and the carried Adam state is only read, as the
        # authors restore their `_full_state` after every evaluation task.
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        adapted = self._adapt(params, x, y, self.config.inner_lr, self.test_strategy)[0]
        with torch.no_grad():
            return self._query_logits(adapted, support, query).argmax(dim=-1)

    def _query_logits(self, adapted: Params, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Every task's query logits [B, N*Q, N] under its adapted weights (each [B, ...]).

        reptile.py `_test_predictions`: transductive, the queries pass as one batch; otherwise each
        query passes in a batch with the whole support set, so BatchNorm never sees another query.
        """
        model = self.model
        if self.transductive:
            return vmap(partial(functional_call, model))(adapted, (query,))

        def one_query(params: Params, support_set: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
            return functional_call(model, params, (torch.cat([support_set, image[None]]),))[-1]

        per_query_images = support.shape[1] + 1
        queries = max(1, min(query.shape[1], MAX_PREDICTION_IMAGES // per_query_images))
        tasks = max(1, MAX_PREDICTION_IMAGES // (per_query_images * query.shape[1]))
        per_task = vmap(one_query, in_dims=(None, None, 0), chunk_size=queries)
        return vmap(per_task, chunk_size=tasks)(adapted, support, query)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "adam": {"exp_avg_sq": dict(self.exp_avg_sq), "step": self.adam_step},
            "steps_taken": self.steps_taken,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        params = dict(self.model.named_parameters())
        self.exp_avg_sq = {
            name: v.detach().to(params[name].device, params[name].dtype).clone()
            for name, v in state["adam"]["exp_avg_sq"].items()
        }
        self.adam_step = int(state["adam"]["step"])
        self.steps_taken = int(state["steps_taken"])


def _gather(
    images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each task's mini-batches [B, iters, batch, ...]: images [B, n, ...] at indices [B, iters, batch]."""
    rows = torch.arange(images.shape[0], device=images.device)[:, None, None]
    return images[rows, indices], labels[rows, indices]


def _stack(per_task: tuple[Params, ...]) -> Params:
    return {name: torch.stack([params[name] for params in per_task]) for name in per_task[0]}
