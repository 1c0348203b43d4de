"""MAML's inner loop, twice: vectorized over tasks with torch.func, and as a per-task autograd loop.

Both compute the same maths. For every task t of a batch: start from the shared parameters,
take `steps` gradient steps of size `lr` on the support loss, then score the query set with the
adapted parameters. With `first_order` the inner gradients are treated as constants, which gives
first-order MAML's meta-gradient (Finn et al. 2017, section 5.2; Nichol et al. 2018).

- `vectorized`: `torch.func.vmap` over the task dimension of `torch.func.grad` inner steps; one
  call evaluates the whole batch, and outer autograd differentiates through it (second order).
- `loop`: the reference as learn2learn writes it, one task at a time with
  `torch.autograd.grad(create_graph=...)`, backpropagating each task's query loss separately.
"""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass(frozen=True)
class InnerLoop:
    """How a task adapts: number of gradient steps, their size, and whether second order terms flow."""

    steps: int
    lr: float
    first_order: bool = False


def support_loss(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss the inner steps descend: summed over the support set and divided by the shots.

    This is Finn et al.'s code (`xent` divides per-example losses by update_batch_size and
    `tf.gradients` sums them), so the paper's inner learning rates (0.4 for 5-way, 0.1 for 20-way)
    act on N times the mean cross-entropy; on the mean they would be N times smaller steps.
    """
    logits = functional_call(model, params, (x,))
    shots = y.shape[0] // logits.shape[-1]
    return F.cross_entropy(logits, y, reduction="sum") / shots


def adapt_task(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, inner: InnerLoop
) -> Params:
    """One task's adapted parameters: `inner.steps` plain gradient steps on its support loss, written for
    torch.func (vmap it over tasks; outer autograd differentiates through it unless first order)."""
    for _ in range(inner.steps):
        grads = grad(partial(support_loss, model))(params, x, y)
        if inner.first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = {name: p - inner.lr * grads[name] for name, p in params.items()}
    return params


def adapted_logits(
    model: nn.Module,
    inner: InnerLoop,
    params: Params,
    support: torch.Tensor,
    support_labels: torch.Tensor,
    query: torch.Tensor,
) -> torch.Tensor:
    """Adapt to one task's support set (traced by torch.func); its query logits [N*Q, N]."""
    return functional_call(model, adapt_task(model, params, support, support_labels, inner), (query,))


def _task_query(
    model: nn.Module,
    inner: InnerLoop,
    params: Params,
    support: torch.Tensor,
    support_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapt to one task's support set; return its query loss and query accuracy."""
    logits = adapted_logits(model, inner, params, support, support_labels, query)
    loss = F.cross_entropy(logits, query_labels)
    accuracy = (logits.argmax(dim=-1) == query_labels).float().mean()
    return loss, accuracy


def vectorized_query(
    model: nn.Module, params: Params, episode: Episode, inner: InnerLoop
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query losses and accuracies of every task, float [B] each, differentiable w.r.t. `params`."""
    per_task = vmap(partial(_task_query, model, inner), in_dims=(None, 0, 0, 0, 0))
    return per_task(params, episode.support, episode.support_labels, episode.query, episode.query_labels)


def adapt_task_autograd(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, inner: InnerLoop, train: bool
) -> Params:
    """`adapt_task` with plain autograd, one task at a time; `train` keeps the graph of the inner
    gradients (second order) so the outer loss can flow back through them."""
    for _ in range(inner.steps):
        with torch.enable_grad():
            loss = support_loss(model, params, x, y)
            grads = torch.autograd.grad(
                loss, list(params.values()), create_graph=train and not inner.first_order
            )
        params = {name: p - inner.lr * g for (name, p), g in zip(params.items(), grads, strict=True)}
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
