"""MAML++ (Antoniou, Edwards & Storkey, ICLR 2019): MAML with the paper's fixes, each a config switch."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import episode_shaped_training
from metabench.methods.init.cards import MAMLPP
from metabench.methods.init.inner_loop import Params, Strategy
from metabench.methods.init.maml import resolve_strategy
from metabench.models.conv4 import init_weights

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

BN_MOMENTUM = 0.1  # the authors' MetaBatchNormLayer
# Per layer: the batch mean and (unbiased) variance of one forward pass, for the running statistics.
LayerStats = list[tuple[torch.Tensor, torch.Tensor]]


class PerStepBatchNorm(nn.Module):
    """BatchNorm with one weight and bias (BNWB) and one set of running statistics (BNRS) per inner step.

    Rows of `weight`/`bias` and of the running statistics are indexed by the inner step (one row when
    the switch is off). Batch statistics are written out with plain tensor ops (as BatchStatsNorm2d, for
    exact second derivatives under vmap). The running statistics are never updated inside a forward pass
    (torch.func cannot mutate buffers): the forward returns its batch statistics and the method folds
    them in after the meta-step.
    """

    def __init__(self, channels: int, steps: int, per_step_weights: bool, per_step_statistics: bool):
        super().__init__()
        rows = steps if per_step_weights else 1
        self.weight = nn.Parameter(torch.ones(rows, channels))
        self.bias = nn.Parameter(torch.zeros(rows, channels))
        self.register_buffer("running_mean", torch.zeros(steps if per_step_statistics else 1, channels))
        self.register_buffer("running_var", torch.ones(steps if per_step_statistics else 1, channels))
        self.eps = 1e-5

    def forward(
        self, x: torch.Tensor, step: int, running: bool
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        weight = self.weight[min(step, len(self.weight) - 1)]
        bias = self.bias[min(step, len(self.bias) - 1)]
        batch_mean = x.mean(dim=(0, 2, 3))
        if running:  # the statistics collected in training at this step: each query on its own
            row = min(step, len(self.running_mean) - 1)
            mean, var = self.running_mean[row], self.running_var[row]
        else:
            mean, var = batch_mean, x.var(dim=(0, 2, 3), unbiased=False)
        scale = weight * torch.rsqrt(var + self.eps)
        out = (x - mean[:, None, None]) * scale[:, None, None] + bias[:, None, None]
        # What torch's BatchNorm would fold into its running statistics (unbiased variance).
        return out, (batch_mean.detach(), x.detach().var(dim=(0, 2, 3), unbiased=True))


class PerStepConv4(nn.Module):
    """The authors' VGGReLUNormNetwork on Omniglot: 4 x [3x3 conv (stride 1, padding 1), per-step
    BatchNorm, leaky ReLU, 2x2 max-pool] (28 -> 14 -> 7 -> 3 -> 1), then a linear N-way layer."""

    def __init__(self, ways: int, hidden: int, steps: int, per_step_weights: bool, per_step_statistics: bool):
        super().__init__()
        channels = [1, hidden, hidden, hidden, hidden]
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(4))
        self.norms = nn.ModuleList(
            PerStepBatchNorm(hidden, steps, per_step_weights, per_step_statistics) for _ in range(4)
        )
        self.head = nn.Linear(hidden, ways)

    def forward(self, x: torch.Tensor, step: int, running: bool = False) -> tuple[torch.Tensor, LayerStats]:
        stats = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, layer_stats = norm(conv(x), step, running)
            stats.append(layer_stats)
            x = F.max_pool2d(F.leaky_relu(x), 2)
        return self.head(x.flatten(start_dim=1)), stats


def step_loss_weights(steps: int, epoch: int, msl_epochs: int, multi_step: bool) -> list[float]:
    """The multi-step loss weights of the query losses after each inner step, at `epoch`.

    The authors' `get_per_step_loss_importance_vector`: all 1/steps at epoch 0; the non-final weights
    decay by epoch / (steps * msl_epochs) down to 0.03 / steps while the final one grows; from epoch
    `msl_epochs` on (or without the multi-step loss) only the final step's loss counts.
    """
    if not multi_step or epoch >= msl_epochs:
        return [0.0] * (steps - 1) + [1.0]
    decay = 1.0 / steps / msl_epochs
    floor = 0.03 / steps
    weights = [max(1.0 / steps - epoch * decay, floor) for _ in range(steps - 1)]
    return [*weights, min(1.0 / steps + epoch * (steps - 1) * decay, 1.0 - (steps - 1) * floor)]


def cosine_meta_lr(base: float, minimum: float, epoch: int, epochs: int) -> float:
    """torch's CosineAnnealingLR(T_max=epochs, eta_min=minimum) at `epoch`, stepped once per epoch."""
    return minimum + (base - minimum) * (1 + math.cos(math.pi * epoch / epochs)) / 2


# How an inner step takes its gradient: (support loss with aux, adapted parameters) -> (grads, aux).
Differentiate = Callable[[Callable[[Params], tuple[torch.Tensor, Any]], Params], tuple[Params, Any]]


def _func_gradient(loss: Callable[[Params], tuple[torch.Tensor, Any]], adapted: Params) -> tuple[Params, Any]:
    return grad(loss, has_aux=True)(adapted)


def _autograd_gradient(
    loss: Callable[[Params], tuple[torch.Tensor, Any]], adapted: Params, create_graph: bool
) -> tuple[Params, Any]:
    with torch.enable_grad():
        value, aux = loss(adapted)
        grads = torch.autograd.grad(value, list(adapted.values()), create_graph=create_graph)
    return dict(zip(adapted, grads, strict=True)), aux


def task_objective(
    model: PerStepConv4,
    params: Params,
    support: torch.Tensor,
    support_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
    *,
    rates: torch.Tensor,
    adapted_names: tuple[str, ...],
    weights: list[float],
    first_order: bool,
    differentiate: Differentiate,
    running_queries: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[LayerStats]]:
    """One task: len(weights) inner steps from `params`, and the multi-step query loss.

    Returns the weighted sum of the query losses after each step (steps of weight 0 are not scored),
    the final query logits and each step's support statistics. Step k uses BatchNorm row k, for the
    support and for the query scored after it, as the authors' code does; `rates[i, k]` is the step
    size of adapted parameter i at step k (LSLR). The support loss is the mean cross-entropy (the
    authors' code; Finn's divides the sum by the shots instead).
    """
    adapted = {name: params[name] for name in adapted_names}
    fixed = {name: p for name, p in params.items() if name not in adapted}
    total = torch.zeros((), dtype=support.dtype, device=support.device)
    logits, support_stats = None, []
    for step, weight in enumerate(weights):

        def support_loss(moving: Params, step: int = step) -> tuple[torch.Tensor, LayerStats]:
            out, stats = functional_call(model, {**fixed, **moving}, (support, step))
            return F.cross_entropy(out, support_labels), stats

        grads, stats = differentiate(support_loss, adapted)
        support_stats.append(stats)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        adapted = {name: p - rates[i, step] * grads[name] for i, (name, p) in enumerate(adapted.items())}
        if weight or step == len(weights) - 1:
            logits, _ = functional_call(model, {**fixed, **adapted}, (query, step, running_queries))
            total = total + weight * F.cross_entropy(logits, query_labels)
    return total, logits, support_stats  # type: ignore[return-value]


class MamlPlusPlus(Method):
    """MAML++: MAML made stable and stronger by the fixes of "How to train your MAML".

    Antoniou, Edwards & Storkey, ICLR 2019, section 4; settings from the authors' released Omniglot
    configs and code (github.com/AntreasAntoniou/HowToTrainYourMAMLPytorch). Each fix is a switch:
    multi-step loss with annealed weights (MSL), learned per-layer per-step inner step sizes (LSLR),
    per-step BatchNorm weights (BNWB) and running statistics (BNRS), derivative-order annealing (DA:
    first order for the first epochs), cosine annealing of the meta learning rate (CA), and the
    best-validation model selection (the card's default). A run is divided into `epochs` epochs for
    the schedules, as the authors' 100 epochs of 500 iterations.

    BatchNorm: in training every pass uses its batch statistics. At test, `test_statistics="batch"`
    normalizes the queries with their own batch statistics as the authors' code does (F.batch_norm with
    training=True, their issues #3 and #24): transductive. "running" normalizes each query with the
    per-step running statistics the paper describes, so queries are independent. The running
    statistics follow the support passes of meta-training (momentum 0.1 per meta-batch, on the mean
    of its tasks' statistics; the authors update them once per task).
    """

    card: ClassVar[MethodCard] = MAMLPP

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        self.transductive = config.test_statistics == "batch"
        self.model = PerStepConv4(
            context.episode.ways,
            config.hidden,
            config.inner_steps,
            config.per_step_bn_weights,
            config.per_step_bn_statistics,
        )
        init_weights(self.model)
        self.model.to(self.device)
        # The inner loop adapts the convolutions and the head; BatchNorm's weights are learned by the
        # outer loop only (the authors' enable_inner_loop_optimizable_bn_params: false).
        self.adapted_names = tuple(
            name for name, _ in self.model.named_parameters() if not name.startswith("norms.")
        )
        self.step_sizes = nn.Parameter(
            torch.full((len(self.adapted_names), config.inner_steps), config.inner_lr, device=self.device),
            requires_grad=config.learned_step_sizes,
        )
        learned = [self.step_sizes] if config.learned_step_sizes else []
        self.optimizer = torch.optim.Adam([*self.model.parameters(), *learned], lr=config.meta_lr)
        self.steps_taken = 0
        self.train_spec = episode_shaped_training(context, config.train_queries)
        self.train_strategy = resolve_strategy(config.strategy, self.device, self.train_spec)
        self.test_strategy: Strategy = "loop" if config.strategy == "loop" else "vectorized"

    def epoch(self) -> int:
        """The epoch of the next meta-step: the schedules change once per epoch, as the authors' do."""
        return int(self.context.fraction_done(self.steps_taken) * self.config.epochs)

    def _objective(
        self, weights: list[float], first_order: bool, strategy: Strategy, running_queries: bool = False
    ) -> Callable[..., tuple[torch.Tensor, torch.Tensor, list[LayerStats]]]:
        """task_objective for one task (loop) or vmapped over the tasks of a batch (vectorized)."""
        rates = self.step_sizes if self.config.learned_step_sizes else self.step_sizes.detach()
        common = dict(rates=rates, adapted_names=self.adapted_names, weights=weights, first_order=first_order)
        if strategy == "vectorized":
            per_task = partial(
                task_objective,
                self.model,
                differentiate=_func_gradient,
                running_queries=running_queries,
                **common,
            )
            return vmap(per_task, in_dims=(None, 0, 0, 0, 0))
        differentiate = partial(_autograd_gradient, create_graph=not first_order)
        return partial(
            task_objective, self.model, differentiate=differentiate, running_queries=running_queries, **common
        )

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        config, epoch = self.config, self.epoch()
        batch = sampler.sample(config.meta_batch, self.train_spec, generator).to(self.device)
        weights = step_loss_weights(config.inner_steps, epoch, config.msl_epochs, config.multi_step_loss)
        first_order = epoch < config.first_order_epochs
        meta_lr = (
            cosine_meta_lr(config.meta_lr, config.min_meta_lr, epoch, config.epochs)
            if config.cosine_meta_lr
            else config.meta_lr
        )
        for group in self.optimizer.param_groups:
            group["lr"] = meta_lr
        self.optimizer.zero_grad(set_to_none=True)
        params = dict(self.model.named_parameters())
        objective = self._objective(weights, first_order, self.train_strategy)
        tasks = (batch.support, batch.support_labels, batch.query, batch.query_labels)
        if self.train_strategy == "vectorized":
            losses, logits, stats = objective(params, *tasks)
            losses.mean().backward()
        else:
            per_task = []
            for t in range(batch.batch_size):
                loss, task_logits, task_stats = objective(params, *(part[t] for part in tasks))
                (loss / batch.batch_size).backward()  # one task's graph alive at a time
                per_task.append((loss.detach(), task_logits.detach(), task_stats))
            losses = torch.stack([loss for loss, _, _ in per_task])
            logits = torch.stack([task_logits for _, task_logits, _ in per_task])
            stats = _stack_task_stats([task_stats for _, _, task_stats in per_task])
        self.optimizer.step()
        self._update_running_statistics(stats)
        self.steps_taken += 1
        final = F.cross_entropy(logits.detach().transpose(1, 2), batch.query_labels)
        accuracy = (logits.argmax(dim=-1) == batch.query_labels).float().mean()
        rates = self.step_sizes.detach()
        return StepStats(
            loss=final.item(),
            accuracy=accuracy.item(),
            metrics={
                "meta_lr": meta_lr,
                "final_step_weight": weights[-1],
                "second_order": float(not first_order),
                "step_size_mean": rates.mean().item(),
            },
        )

    @torch.no_grad()
    def _update_running_statistics(self, stats: list[LayerStats]) -> None:
        """Fold each step's support statistics (each [tasks, channels]) into that step's running row."""
        for step, layers in enumerate(stats):
            for norm, (mean, var) in zip(self.model.norms, layers, strict=True):
                row = min(step, len(norm.running_mean) - 1)
                norm.running_mean[row].lerp_(mean.mean(dim=0), BN_MOMENTUM)
                norm.running_var[row].lerp_(var.mean(dim=0), BN_MOMENTUM)

    def predict(self, episode: Episode) -> torch.Tensor:
        return self.scores(episode).argmax(dim=-1)

    def scores(self, episode: Episode) -> torch.Tensor:
        """The query logits after adaptation (what the authors' top-5 ensemble averages)."""
        episode = episode.to(self.device)
        weights = [0.0] * (self.config.inner_steps - 1) + [1.0]
        running = self.config.test_statistics == "running"
        objective = self._objective(
            weights, first_order=True, strategy=self.test_strategy, running_queries=running
        )
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        tasks = (episode.support, episode.support_labels, episode.query, episode.query_labels)
        if self.test_strategy == "vectorized":
            with torch.no_grad():  # torch.func.grad still differentiates the inner steps
                return objective(params, *tasks)[1]
        start = {name: p.requires_grad_() for name, p in params.items()}  # leaves of the inner gradients
        return torch.stack(
            [objective(start, *(part[t] for part in tasks))[1].detach() for t in range(episode.batch_size)]
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "step_sizes": self.step_sizes.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "steps_taken": self.steps_taken,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            self.step_sizes.copy_(state["step_sizes"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_taken = int(state["steps_taken"])


def _stack_task_stats(per_task: list[list[LayerStats]]) -> list[LayerStats]:
    """The loop's per-task statistics stacked over tasks, shaped as vmap returns them."""
    steps, layers = len(per_task[0]), len(per_task[0][0])
    return [
        [
            (
                torch.stack([task[step][layer][0] for task in per_task]),
                torch.stack([task[step][layer][1] for task in per_task]),
            )
            for layer in range(layers)
        ]
        for step in range(steps)
    ]
