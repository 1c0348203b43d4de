"""MAML (Finn et al., ICML 2017) and first-order MAML (Nichol et al. 2018), vectorized with torch.func."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch.func import functional_call, vmap

from metabench.config import EpisodeSpec
from metabench.data.episode import Episode
from metabench.methods.base import Method, Preset, StepStats
from metabench.methods.common import require_choice, require_positive, training_episode
from metabench.methods.init.inner_loop import (
    InnerLoop,
    Strategy,
    adapt_task_autograd,
    adapted_logits,
    loop_query,
    vectorized_query,
)
from metabench.methods.registry import register
from metabench.models.conv4 import Conv4, Conv4Classifier, init_weights

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler

STRATEGIES = ("auto", "vectorized", "loop")


@dataclass(frozen=True)
class MamlConfig:
    """Finn et al.'s Omniglot hyperparameters (5-way; `Maml.paper_config` holds the 20-way ones)."""

    inner_steps: int = 1  # gradient steps on the support set during meta-training
    inner_lr: float = 0.4
    test_inner_steps: int = 3  # gradient steps on the support set at evaluation
    meta_batch: int = 32  # tasks per meta-update
    meta_lr: float = 1e-3  # Adam
    # Query examples per class in meta-training tasks; Finn's code draws as many as there are shots.
    train_queries: int = 1
    hidden: int = 64
    # "vectorized" (torch.func.vmap over tasks), "loop" (per-task reference), "auto": measured per device
    # and task shape (see resolve_strategy).
    strategy: str = "auto"

    def __post_init__(self) -> None:
        require_positive(
            inner_steps=self.inner_steps,
            inner_lr=self.inner_lr,
            test_inner_steps=self.test_inner_steps,
            meta_batch=self.meta_batch,
            meta_lr=self.meta_lr,
            train_queries=self.train_queries,
            hidden=self.hidden,
        )
        require_choice("strategy", self.strategy, STRATEGIES)


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


def budgets(first_order: bool, twenty_way: bool) -> dict[str, Preset]:
    """The smoke, quick and paper budgets of MAML or first-order MAML for 5-way or 20-way tasks.

    The reduced budgets (a CPU affords ~1% of the paper's 60,000 meta-iterations) differ from the
    paper's config, and runs report them as such:
    - meta learning rate 3e-3 instead of 1e-3: measured best at that length (5w1s: 84% -> 88%).
    - 20-way: one inner step instead of five and a meta-batch of 8, so a run fits the same minutes
      as a 5-way one (a 20-way task costs 4x as much per inner step).
    - first order: the inner step is 5x smaller (0.08 for 5-way, 0.02 for 20-way). With the paper's
      step and no second-order term, first-order MAML barely moves in 1000 meta-iterations
      (5w1s: 70% against 83%); the full-length paper budget keeps the paper's step.
    """
    config: dict[str, Any] = {"meta_lr": 3e-3}
    if twenty_way:
        config["inner_steps"] = 1
    if first_order:
        config["inner_lr"] = 0.02 if twenty_way else 0.08
    smoke_batch, quick_batch, quick_steps = (2, 8, 600) if twenty_way else (4, 16, 1000)
    return {
        "smoke": Preset(10, 64, {**config, "meta_batch": smoke_batch}, validate_every=10),
        "quick": Preset(
            quick_steps, 1000, {**config, "meta_batch": quick_batch}, validate_every=quick_steps // 5
        ),
        "paper": Preset(60_000, 1000),
    }


@register
class Maml(Method):
    """Model-Agnostic Meta-Learning: learn an initialization that adapts to a task in a few SGD steps.

    Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks",
    ICML 2017. Network: Conv-4 with stride-2 convolutions (no max-pool) and a linear N-way head, as
    in the paper's Omniglot experiments. Second-order meta-gradients through the inner steps.

    Transductive: BatchNorm always normalizes with the statistics of the current batch, at training
    and at test time, as MAML's own code does; at test time every task's query set is therefore
    normalized with its own statistics, which the leaderboard flags.
    """

    name: ClassVar[str] = "maml"
    family = "A"
    paper: ClassVar[str] = "Finn et al., ICML 2017"
    cite_key: ClassVar[str | None] = "finn2017model"
    config_class: ClassVar[type] = MamlConfig
    transductive = True
    first_order: ClassVar[bool] = False
    presets: ClassVar[dict[str, Preset]] = budgets(first_order=False, twenty_way=False)  # below 20 ways

    @classmethod
    def paper_config(cls, episode: EpisodeSpec) -> dict[str, Any]:
        """Finn et al.: 20-way uses 5 inner steps of 0.1 and 16 tasks per meta-batch; queries = shots.

        The paper tests 5 and 20 ways only; 20 and more take the 20-way values, fewer the 5-way ones.
        The 20-way test-time steps are not given; it uses as many as in training.
        """
        values: dict[str, Any] = {"train_queries": episode.shots}
        if episode.ways >= 20:
            values.update(inner_steps=5, inner_lr=0.1, meta_batch=16, test_inner_steps=5)
        return values

    @classmethod
    def preset_for(cls, preset: str, episode: EpisodeSpec) -> Preset:
        super().preset_for(preset, episode)  # rejects unknown presets
        return budgets(cls.first_order, twenty_way=episode.ways >= 20)[preset]

    def __init__(
        self, config: MamlConfig, episode: EpisodeSpec, device: torch.device, num_train_classes: int
    ):
        super().__init__(config, episode, device, num_train_classes)
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
        self.train_spec = training_episode(
            episode.ways,
            episode.shots,
            config.train_queries,
            num_train_classes,
            ("--ways", "--shots", "train_queries"),
        )
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
        self.optimizer.step()
        return StepStats(loss=losses.mean().item(), accuracy=accuracies.mean().item())

    def predict(self, episode: Episode) -> torch.Tensor:
        # Detached copies: adaptation happens on these, the trained parameters are never touched.
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        episode = episode.to(self.device)
        if self.test_strategy == "vectorized":
            per_task = vmap(partial(adapted_logits, self.model, self.test_inner), in_dims=(None, 0, 0, 0))
            with torch.no_grad():  # torch.func.grad still differentiates the inner steps
                logits = per_task(params, episode.support, episode.support_labels, episode.query)
            return logits.argmax(dim=-1)
        start = {name: p.requires_grad_() for name, p in params.items()}  # leaves of the inner gradients
        predictions = []
        for t in range(episode.batch_size):
            adapted = adapt_task_autograd(
                self.model, start, episode.support[t], episode.support_labels[t], self.test_inner, False
            )
            with torch.no_grad():
                predictions.append(functional_call(self.model, adapted, (episode.query[t],)).argmax(dim=-1))
        return torch.stack(predictions)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


@register
class FoMaml(Maml):
    """First-order MAML: MAML with the inner gradients treated as constants (no second derivatives).

    Finn et al., ICML 2017 (section 5.2) introduced the approximation; Nichol, Achiam & Schulman,
    "On First-Order Meta-Learning Algorithms", arXiv 1803.02999 (2018) report it on Omniglot.
    Same network and paper hyperparameters as `maml` (a smaller inner step in the reduced budgets,
    see `budgets`), and transductive in the same way.
    """

    name: ClassVar[str] = "fomaml"
    paper: ClassVar[str] = "Nichol et al., arXiv 2018"
    cite_key: ClassVar[str | None] = "nichol2018first"
    first_order: ClassVar[bool] = True
    presets: ClassVar[dict[str, Preset]] = budgets(first_order=True, twenty_way=False)
