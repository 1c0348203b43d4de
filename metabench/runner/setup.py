"""Check a RunSpec, load its data and build its method: everything that can fail before a run row exists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from metabench.config import RunSpec
from metabench.data.protocols import load_protocol
from metabench.errors import MetabenchError
from metabench.leaderboard.record_schema import check_spec
from metabench.methods.base import Method, TrainingContext
from metabench.methods.card import SELECTION_FIELD, MethodCard
from metabench.methods.loader import get_method
from metabench.runner.environment import resolve_device
from metabench.runner.selection import check_validations
from metabench.spec_rules import fixed_shape_problem, resolve_spec

VALIDATION_EPISODES = 100  # at most: validation tracks the trend, the test set measures the result


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: the resolved spec, its data on the device and a freshly seeded method."""

    spec: RunSpec  # meta_steps and eval_episodes resolved from the preset
    card: MethodCard
    method: Method
    data: Any  # metabench.data.ProtocolData
    device: torch.device
    validate_every: int
    validation_episodes: int
    preset_overrides: dict[str, Any]


def prepare(
    spec: RunSpec, data_dir: str | None = None, preset_overrides: dict[str, Any] | None = None
) -> Prepared:
    """Resolve and check the spec, load the data onto the device, construct the seeded method.

    `preset_overrides` is given when resuming: the overrides recorded when the run began (the stored
    spec has its budget filled in, so they cannot be told apart from the preset's values again).
    """
    resolved = resolve_spec(spec)
    spec, card, validate_every = resolved.spec, resolved.card, resolved.validate_every
    try:
        config = card.make_config(spec.preset, dict(spec.overrides), spec.episode)
        method_class = get_method(spec.method)
    except ValueError as exc:
        raise MetabenchError(str(exc)) from None
    # Validated at every multiple of validate_every and at the last step.
    check_validations(str(config.get(SELECTION_FIELD)), -(-(spec.meta_steps or 0) // validate_every))
    device = resolve_device(spec.device)
    data = load_protocol(spec.protocol, device, data_dir=data_dir)
    spec = _fit_test_set(spec, data)
    try:
        for sampler in (data.train, data.val, data.test):
            sampler.check(spec.episode)
    except ValueError as exc:
        raise MetabenchError(f"{exc} (protocol {spec.protocol})") from None
    # Rotations of one character are different classes but the same drawing: compare characters.
    overlap = {_character(i) for i in data.train_class_ids} & {_character(i) for i in data.test_class_ids}
    if overlap:
        raise MetabenchError(
            f"protocol {spec.protocol} shares {len(overlap)} characters between train and test; "
            "its split definition is wrong and no result of it would mean anything"
        )
    try:
        check_spec(spec)  # the last net: what no record could hold is refused before a run exists
    except ValueError as exc:
        raise MetabenchError(f"{exc}; change that option") from None
    # The method's initial weights come from the global generator: seed it just before.
    torch.manual_seed(spec.seed)
    context = TrainingContext(
        spec.episode,
        device,
        data.train,
        data.val,
        meta_steps=spec.meta_steps or 0,
        generator=torch.Generator().manual_seed(spec.seed),
    )
    try:
        method = method_class(config, context)
    except ValueError as exc:
        raise MetabenchError(f"{spec.method}: {exc}") from None
    return Prepared(
        spec=spec,
        card=card,
        method=method,
        data=data,
        device=device,
        validate_every=validate_every,
        validation_episodes=max(1, min(VALIDATION_EPISODES, (spec.eval_episodes or 0) // 4)),
        preset_overrides=resolved.preset_overrides if preset_overrides is None else dict(preset_overrides),
    )


def _fit_test_set(spec: RunSpec, data: Any) -> RunSpec:
    """Lake's official runs impose their own shape (20-way 1-shot, 1 query) and number (20)."""
    shape = getattr(data, "test_spec", None)
    if shape is None:
        return spec
    if spec.episode != shape:  # the data's own shape, should it ever differ from the declared one
        raise MetabenchError(
            fixed_shape_problem(spec.protocol, spec.episode)
            or f"the {spec.protocol} test tasks are {shape.label}, not {spec.episode.label}"
        )
    runs = data.test.num_classes // shape.ways
    return replace(spec, eval_episodes=min(spec.eval_episodes or runs, runs))


def _character(class_id: str) -> str:
    """'Alphabet/character07/rot090' -> 'Alphabet/character07'."""
    head, sep, tail = class_id.rpartition("/rot")
    return head if sep and tail.isdigit() else class_id
