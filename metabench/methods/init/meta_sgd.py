"""Meta-SGD (Li et al., 2017): MAML that also meta-learns a step size for every parameter element."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from metabench.methods.base import StepStats, TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.init.cards import META_SGD
from metabench.methods.init.inner_loop import InnerLoop
from metabench.methods.init.maml import Maml

if TYPE_CHECKING:
    from metabench.data.episodes import EpisodeSampler


class MetaSgd(Maml):
    """Meta-SGD: the inner update is θ' = θ - α ∘ ∇L, where α (one rate per element of θ, direction and
    size) is meta-learned with the initialization θ, by second-order meta-gradients through the inner step.

    Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", arXiv 1707.09835
    (2017). α starts at `inner_lr` everywhere, as learn2learn's MetaSGD does (`ones_like(p) * lr`);
    the paper adapts "in just one step", at training and at test. MAML's network, meta-batch and
    transductive BatchNorm; the paper's own Omniglot settings were not available [unconfirmed].
    """

    card: ClassVar[MethodCard] = META_SGD

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        # In the order of model.named_parameters(); a list because parameter names contain dots.
        self.step_sizes = nn.ParameterList(
            nn.Parameter(torch.full_like(p, config.inner_lr)) for p in self.model.parameters()
        )
        self.optimizer = torch.optim.Adam(
            [*self.model.parameters(), *self.step_sizes.parameters()], lr=config.meta_lr
        )
        self.train_inner = InnerLoop(config.inner_steps, self._rates(), first_order=False)

    def _rates(self, detach: bool = False) -> dict[str, torch.Tensor]:
        names = (name for name, _ in self.model.named_parameters())
        return {
            name: rate.detach() if detach else rate for name, rate in zip(names, self.step_sizes, strict=True)
        }

    def meta_train_step(self, sampler: EpisodeSampler, generator: torch.Generator) -> StepStats:
        stats = super().meta_train_step(sampler, generator)
        # The learned rates' mean and spread: how far Meta-SGD has moved from one shared step size.
        rates = torch.cat([rate.detach().flatten() for rate in self.step_sizes])
        spread = {"step_size_mean": rates.mean().item(), "step_size_std": rates.std().item()}
        return StepStats(stats.loss, stats.accuracy, {**stats.metrics, **spread})

    def test_loop(self) -> InnerLoop:
        # The learned rates as they are now, as constants: adaptation at test never changes them.
        return InnerLoop(self.config.test_inner_steps, self._rates(detach=True), first_order=True)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "step_sizes": self.step_sizes.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.step_sizes.load_state_dict(state["step_sizes"])
