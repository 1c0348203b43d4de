"""MAML (Finn et al., ICML 2017) and first-order MAML (Nichol et al. 2018), vectorized with torch.func."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch.func import functional_call

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.base import Method, StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.common import episode_shaped_training
from metabench.methods.init.cards import FOMAML, MAML
from metabench.methods.init.inner_loop import (
    InnerLoop,
    Strategy,
    adapt,
    adapt_task_autograd,
    loop_query,
    query_logits,
    vectorized_query,
)
from metabench.models.conv4 import Conv4, Conv4Classifier, init_weights

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

# The largest training task (ways x (shots + queries) images) for which `auto` takes the vectorized step
# on a CPU. Measured with scratch timings of meta_train_step on the 2-core VM (torch 2.13, 2 threads,
# meta-batch 32, 16 for 20-way; vectorized / loop tasks per second, alternating rounds, idle machine):
#   5w1s 1 query (10 images) 2.71x   20w1s 1 query (40) 1.45x   5w1s 5 queries (30) 1.07x
#   5w5s 5 queries (50) 0.62x        5w1s 15 queries (80) 0.68x  20w1s 15 queries (320) 0.46x
# Past a few dozen images a task, one vmapped batch of large convolutions loses to the loop of small ones.
CPU_VECTORIZED_MAX_IMAGES = 40


def resolve_strategy(strategy: str, device: torch.device, task: EpisodeSpec) -> Strategy:
    """The implementation of a meta-training step that `strategy` names for tasks shaped `task`.

    "auto" is measured, not fixed: vectorized on a GPU (14x to 20x the loop on an H100, where the loop
    launches hundreds of tiny kernels), and on a CPU only for tasks of at most
    CPU_VECTORIZED_MAX_IMAGES images. Evaluation always takes the vectorized path, so a test set is
    scored the same way on every machine (the committed records were).
    """
    if strategy != "auto":
        return "loop" if strategy == "loop" else "vectorized"
    if device.type != "cpu":
        return "vectorized"
    images = task.ways * (task.shots + task.queries)
    return "vectorized" if images <= CPU_VECTORIZED_MAX_IMAGES else "loop"


class Maml(Method):
    """Model-Agnostic Meta-Learning: learn an initialization that adapts to a task in a few SGD steps.

    Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks",
    ICML 2017. Network: Conv-4 with stride-2 convolutions (no max-pool) and a linear N-way head, as
    in the paper's Omniglot experiments. Second-order meta-gradients through the inner steps.

    Transductive: BatchNorm always normalizes with the statistics of the current batch, at training
    and at test time, as MAML's own code does; at test time every task's query set is therefore
    normalized with its own statistics, which the leaderboard flags.
    """

    card: ClassVar[MethodCard] = MAML
    first_order: ClassVar[bool] = False

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        episode, device = context.episode, context.device
        # Evaluation takes the vectorized path unless "loop" (the reference) was asked for, so "auto"
        # never changes a test score; training steps take the measured choice for their task shape.
        self.test_strategy: Strategy = "loop" if config.strategy == "loop" else "vectorized"
        backbone = Conv4(hidden=config.hidden, downsample="stride", running_stats=False)
        self.model = Conv4Classifier(episode.ways, backbone)
        init_weights(self.model)
        self.model.to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)
        self.train_inner = InnerLoop(config.inner_steps, config.inner_lr, self.first_order)
        self.test_inner = InnerLoop(config.test_inner_steps, config.inner_lr, first_order=True)
        self.train_spec = episode_shaped_training(context, config.train_queries)
        self.train_strategy = resolve_strategy(config.strategy, device, self.train_spec)

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        batch = sampler.sample(self.config.meta_batch, self.train_spec, generator).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        params = dict(self.model.named_parameters())
        if self.train_strategy == "vectorized":
            losses, accuracies = vectorized_query(self.model, params, batch, self.train_inner)
            losses.mean().backward()
        else:
            scale = 1.0 / batch.batch_size
            losses, accuracies = loop_query(
                self.model, params, batch, self.train_inner, backward=lambda loss: (loss * scale).backward()
            )
        # The meta-gradient's norm: how hard the outer loop pulls on the initialization.
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in self.model.parameters()]))
        self.optimizer.step()
        return StepStats(
            loss=losses.mean().item(),
            accuracy=accuracies.mean().item(),
            metrics={"meta_grad_norm": norm.item()},
        )

    def predict(self, episode: Episode) -> torch.Tensor:
        # Detached copies: adaptation happens on these, the trained parameters are never touched.
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        episode = episode.to(self.device)
        if self.test_strategy == "vectorized":
            with torch.no_grad():  # torch.func.grad still differentiates the inner steps
                adapted = adapt(self.model, params, episode.support, episode.support_labels, self.test_loop())
                return query_logits(self.model, adapted, episode.query).argmax(dim=-1)
        start = {name: p.requires_grad_() for name, p in params.items()}  # leaves of the inner gradients
        predictions = []
        for t in range(episode.batch_size):
            adapted = adapt_task_autograd(
                self.model, start, episode.support[t], episode.support_labels[t], self.test_loop(), False
            )
            with torch.no_grad():
                predictions.append(functional_call(self.model, adapted, (episode.query[t],)).argmax(dim=-1))
        return torch.stack(predictions)

    def test_loop(self) -> InnerLoop:
        """How a task adapts at test time (first order: nothing is differentiated after it)."""
        return self.test_inner

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class FoMaml(Maml):
    """First-order MAML: MAML with the inner gradients treated as constants (no second derivatives).

    Finn et al., ICML 2017 (section 5.2) introduced the approximation; Nichol, Achiam & Schulman,
    "On First-Order Meta-Learning Algorithms", arXiv 1803.02999 (2018) report it on Omniglot.
    Same network and paper hyperparameters as `maml` (a smaller inner step in the reduced budgets,
    see `cards.budgets`), and transductive in the same way.
    """

    card: ClassVar[MethodCard] = FOMAML
    first_order: ClassVar[bool] = True
