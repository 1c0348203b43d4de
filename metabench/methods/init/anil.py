"""ANIL (Raghu et al., ICLR 2020): MAML whose inner loop adapts the head alone."""

from __future__ import annotations

from typing import ClassVar

from metabench.methods.base import TrainingContext
from metabench.methods.card import Config, MethodCard
from metabench.methods.init.cards import ANIL
from metabench.methods.init.inner_loop import InnerLoop
from metabench.methods.init.maml import Maml

HEAD = frozenset({"head.weight", "head.bias"})  # Conv4Classifier's final linear layer


class Anil(Maml):
    """Almost No Inner Loop: the body (Conv-4) is learned by the outer loop only; each task adapts
    the linear head, at training and at test time.

    Raghu, Raghu, Bengio & Vinyals, "Rapid Learning or Feature Reuse? Towards Understanding the
    Effectiveness of MAML", ICLR 2020, section 4. Same network, second-order meta-gradients and
    transductive BatchNorm as `maml`; the inner loop differentiates the head's parameters alone, which
    is where its speed comes from (the paper: 1.7x per training iteration, 4.1x at inference).
    """

    card: ClassVar[MethodCard] = ANIL

    def __init__(self, config: Config, context: TrainingContext):
        super().__init__(config, context)
        self.train_inner = InnerLoop(config.inner_steps, config.inner_lr, self.first_order, adapted=HEAD)
        self.test_inner = InnerLoop(config.test_inner_steps, config.inner_lr, first_order=True, adapted=HEAD)
