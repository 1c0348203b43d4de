"""The inner loop of gradient-based meta-learners: adapt a batch of tasks from shared parameters.

A public library for family A (MAML, first-order MAML, and Meta-SGD, MAML++ or ANIL on top of it). For
every task t of a batch: start from the given parameters, take `steps` gradient steps on the support
loss, and return the adapted parameters (or score the query set with them). Step sizes may be one
number, one per parameter (a number or a learned tensor shaped like it, as in Meta-SGD), one per step,
or one per step and parameter (MAML++); learned tensors receive meta-gradients. With `first_order`
the inner gradients are treated as constants (Finn et al. 2017, section 5.2; Nichol et al. 2018).
Parameters left out of `InnerLoop.adapted` stay as given (ANIL adapts the head alone).

Two implementations of the same maths:
- vectorized (`adapt`, `vectorized_query`): `torch.func.vmap` over the task dimension of
  `torch.func.grad` inner steps; outer autograd differentiates through them (second order).
- loop (`adapt_task_autograd`, `loop_query`): the reference as learn2learn writes it, one task at a time
  with `torch.autograd.grad(create_graph=...)`, backpropagating each task's query loss separately.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from metabench.data.episode import Episode

Strategy = Literal["vectorized", "loop"]
Params = dict[str, torch.Tensor]
# One number for every parameter, or one per parameter name: a number or a tensor broadcastable to it.
StepSize = float | Mapping[str, float | torch.Tensor]


@dataclass(frozen=True)
class InnerLoop:
    """How a task adapts: the number of gradient steps, their sizes, and whether second-order terms flow.

    `lr` is a StepSize used at every step, or a sequence of `steps` StepSizes, one per step.
    `adapted` names the parameters that take steps (None: all of them).
    """

    steps: int
    lr: StepSize | Sequence[StepSize]
    first_order: bool = False
    adapted: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.lr, Sequence) and len(self.lr) != self.steps:
            raise ValueError(f"{len(self.lr)} step sizes given for {self.steps} inner steps")

    def step_size(self, step: int, name: str) -> float | torch.Tensor:
        """The size of inner step `step` (from 0) for the parameter called `name`."""
        size = self.lr[step] if isinstance(self.lr, Sequence) else self.lr
        return size[name] if isinstance(size, Mapping) else size

    def takes_steps(self, name: str) -> bool:
        return self.adapted is None or name in self.adapted


def support_loss(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss the inner steps descend: summed over the support set and divided by the shots.

    This is Finn et al.'s code (`xent` divides per-example losses by update_batch_size and
    `tf.gradients` sums them), so the paper's inner learning rates (0.4 for 5-way, 0.1 for 20-way)
    act on N times the mean cross-entropy; on the mean they would be N times smaller steps.
    """
    logits = functional_call(model, params, (x,))
    shots = y.shape[0] // logits.shape[-1]
    return F.cross_entropy(logits, y, reduction="sum") / shots


def _step(inner: InnerLoop, step: int, params: Params, grads: Params) -> Params:
    """`params` after inner step `step`: each parameter with a gradient moves, the others stay."""
    return {
        name: p - inner.step_size(step, name) * grads[name] if name in grads else p
        for name, p in params.items()
    }


def _moving_loss(
    model: nn.Module, moving: Params, fixed: Params, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    return support_loss(model, {**fixed, **moving}, x, y)


def adapt_task(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, inner: InnerLoop
) -> Params:
    """One task's adapted parameters, written for torch.func (vmap it over tasks, as `adapt` does).

    Only the parameters that take steps are differentiated (ANIL's inner loop costs the head alone).
    """
    for step in range(inner.steps):
        moving = {name: p for name, p in params.items() if inner.takes_steps(name)}
        fixed = {name: p for name, p in params.items() if not inner.takes_steps(name)}
        grads = grad(partial(_moving_loss, model))(moving, fixed, x, y)
        if inner.first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = _step(inner, step, params, grads)
    return params


def adapt(
    model: nn.Module, params: Params, support: torch.Tensor, support_labels: torch.Tensor, inner: InnerLoop
) -> Params:
    """Every task's adapted parameters, vectorized: support [B, n, C, H, W] -> each parameter [B, ...].

    Differentiable with respect to `params` and to learned step sizes (unless first order).
    """
    per_task = vmap(partial(adapt_task, model, inner=inner), in_dims=(None, 0, 0))
    return per_task(params, support, support_labels)


def query_logits(model: nn.Module, adapted: Params, query: torch.Tensor) -> torch.Tensor:
    """Each task's query logits [B, N*Q, N] under its own adapted parameters (from `adapt`)."""
    return vmap(partial(functional_call, model))(adapted, (query,))


def vectorized_query(
    model: nn.Module, params: Params, episode: Episode, inner: InnerLoop
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query losses and accuracies of every task, float [B] each, differentiable w.r.t. `params`."""
    logits = query_logits(
        model, adapt(model, params, episode.support, episode.support_labels, inner), episode.query
    )
    losses = F.cross_entropy(logits.transpose(1, 2), episode.query_labels, reduction="none").mean(dim=1)
    accuracies = (logits.argmax(dim=-1) == episode.query_labels).float().mean(dim=1)
    return losses, accuracies


def adapt_task_autograd(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, inner: InnerLoop, train: bool
) -> Params:
    """`adapt_task` with plain autograd, one task at a time; `train` keeps the graph of the inner
    gradients (second order) so the outer loss can flow back through them."""
    for step in range(inner.steps):
        moving = [name for name in params if inner.takes_steps(name)]
        with torch.enable_grad():
            loss = support_loss(model, params, x, y)
            grads = torch.autograd.grad(
                loss, [params[name] for name in moving], create_graph=train and not inner.first_order
            )
        params = _step(inner, step, params, dict(zip(moving, grads, strict=True)))
    return params


def loop_query(
    model: nn.Module,
    params: Params,
    episode: Episode,
    inner: InnerLoop,
    backward: Callable[[torch.Tensor], None],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-task reference of a training step: the same [B] losses and accuracies as `vectorized_query`.

    Each task's query loss is handed to `backward` right away (as learn2learn's examples call
    `.backward()` per task), so only one task's graph is alive at a time; the returned losses are
    detached.
    """
    losses, accuracies = [], []
    for t in range(episode.batch_size):
        adapted = adapt_task_autograd(
            model, params, episode.support[t], episode.support_labels[t], inner, train=True
        )
        logits = functional_call(model, adapted, (episode.query[t],))
        loss = F.cross_entropy(logits, episode.query_labels[t])
        backward(loss)
        losses.append(loss.detach())
        accuracies.append((logits.argmax(dim=-1) == episode.query_labels[t]).float().mean())
    return torch.stack(losses), torch.stack(accuracies)
