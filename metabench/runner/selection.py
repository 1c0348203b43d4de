"""Model selection: which trained state a run tests (the last, the best validated, or an ensemble)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from metabench.data.episode import Episode
from metabench.errors import MetabenchError
from metabench.methods.base import Method
from metabench.methods.card import ENSEMBLE_SELECTION, ENSEMBLE_SIZE, SELECTION_FIELD

# How many validated states each selection keeps: none for "last".
KEPT = {"best-validation": 1, ENSEMBLE_SELECTION: ENSEMBLE_SIZE}


@dataclass(frozen=True)
class BestState:
    """The method's state at a step that validated among the best so far."""

    step: int
    accuracy: float
    method: dict


def check_validations(selection: str, validations: int) -> None:
    """An ensemble needs as many validated states as it averages: refuse a run that has fewer."""
    if selection == ENSEMBLE_SELECTION and validations < ENSEMBLE_SIZE:
        raise MetabenchError(
            f"{SELECTION_FIELD}={ENSEMBLE_SELECTION} needs {ENSEMBLE_SIZE} validated states but this run "
            f"validates {validations} times; train longer with --meta-steps"
        )


class ModelSelection:
    """Keeps the best validated states a selection needs, then sets up and scores the test with them."""

    def __init__(self, selection: str):
        self.selection = selection
        self.size = KEPT.get(selection, 0)
        self.kept: list[BestState] = []  # best first

    def offer(self, step: int, accuracy: float | None, method: Method) -> None:
        """Copy the method's state if it validated among the best so far (a no-op for "last")."""
        if not self.size or accuracy is None:
            return
        if len(self.kept) < self.size or accuracy > self.kept[-1].accuracy:
            state = BestState(step, accuracy, copy.deepcopy(method.state_dict()))
            # A stable sort: of equal accuracies the earlier state ranks first.
            self.kept = sorted([*self.kept, state], key=lambda kept: -kept.accuracy)[: self.size]

    def select(self, method: Method, last_step: int) -> int:
        """Load the state to test into `method`; the step it comes from (the ensemble's best)."""
        if not self.kept:
            return last_step
        method.load_state_dict(self.kept[0].method)
        return self.kept[0].step

    def evaluate(self, method: Method, batch: Episode) -> torch.Tensor:
        """Query accuracy of each task: the method's own, or under the summed scores of the kept states
        (the authors' ensemble averages the per-model outputs, then takes the argmax)."""
        if self.selection != ENSEMBLE_SELECTION:
            return method.evaluate(batch)
        total = None
        for kept in self.kept:
            method.load_state_dict(kept.method)
            scores = method.scores(batch)
            total = scores if total is None else total + scores
        assert total is not None  # check_validations refuses an ensemble run with too few validations
        return (total.argmax(dim=-1) == batch.query_labels.to(total.device)).float().mean(dim=-1)

    def to_checkpoint(self) -> list[dict[str, Any]]:
        return [vars(kept) for kept in self.kept]

    def restore(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints written before the ensemble kept one "best" state.
        kept = checkpoint.get("kept", [checkpoint["best"]] if checkpoint.get("best") else [])
        self.kept = [BestState(**state) for state in kept]
