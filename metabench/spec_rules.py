"""The rules a run's spec must pass before any data is read, as {field: problem}: written once, read by
`metabench run` (which refuses with the first problem) and by the TUI's run form (beside each field);
and resolve_spec, which fills a checked spec's budget in from its preset. No torch: the form checks as
you type, and a sweep plans its runs without it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from metabench.config import FIXED_TEST_SHAPES, PRESETS, PROTOCOLS, EpisodeSpec, RunSpec, check_count
from metabench.errors import MetabenchError
from metabench.methods.card import MethodCard
from metabench.methods.registry import get_card

CHECKPOINTS_PER_RUN = 10  # when the preset does not say how often to validate

# The form's fields, in the order its problems are listed (the CLI reports the first one).
FIELDS = ("method", "protocol", "ways", "shots", "queries", "preset", "options", "budget", "seed")


def fixed_shape_problem(protocol: str, episode: EpisodeSpec) -> str | None:
    """Why `episode` cannot run on `protocol` when the protocol's test tasks have a fixed shape."""
    shape = FIXED_TEST_SHAPES.get(protocol)
    if shape is None or episode == shape:
        return None
    query = "query" if shape.queries == 1 else "queries"
    return (
        f"protocol {protocol} tests on fixed {shape.label} tasks with {shape.queries} {query} per class: "
        f"use --ways {shape.ways} --shots {shape.shots} --queries {shape.queries}"
    )


def spec_problems(spec: RunSpec, card: MethodCard | None) -> dict[str, str]:
    """Every problem of `spec` that needs no data, by form field; empty when it may run.

    `card` is the method's card, or None when the method list is not known (yet): the checks that
    need it (presets, the method's own options) are skipped then.
    """
    problems: dict[str, str] = {}
    if spec.protocol not in PROTOCOLS:
        problems["protocol"] = f"unknown protocol {spec.protocol!r}; choose one of {', '.join(PROTOCOLS)}"
    episode = spec.episode.problems()
    problems |= episode
    if not episode and (shape := fixed_shape_problem(spec.protocol, spec.episode)):
        fixed = FIXED_TEST_SHAPES[spec.protocol]
        differs = next(
            f for f in ("ways", "shots", "queries") if getattr(spec.episode, f) != getattr(fixed, f)
        )
        problems[differs] = shape
    if spec.preset not in PRESETS:
        problems["preset"] = f"unknown preset {spec.preset!r}; choose one of {', '.join(PRESETS)}"
    for option, value, minimum, field in (
        ("--meta-steps", spec.meta_steps, 0, "budget"),
        ("--eval-episodes", spec.eval_episodes, 1, "budget"),
        ("--seed", spec.seed, 0, "seed"),
    ):
        if value is not None and field not in problems:
            try:
                check_count(option, value, minimum)
            except ValueError as exc:
                problems[field] = str(exc)
    if card is not None and "preset" not in problems:
        problems |= _card_problems(spec, card, episode_ok=not episode)
    return {field: problems[field] for field in FIELDS if field in problems}


def _card_problems(spec: RunSpec, card: MethodCard, episode_ok: bool) -> dict[str, str]:
    # A preset's budget and config may depend on the shape, so an impossible shape skips them.
    if not episode_ok:
        return {}
    choices = card.preset_names(spec.episode)
    if spec.preset not in choices:
        return {
            "preset": f"unknown preset {spec.preset!r} for {spec.method}; choose one of {', '.join(choices)}"
        }
    try:
        card.make_config(spec.preset, dict(spec.overrides), spec.episode)
    except ValueError as exc:
        return {"options": f"{spec.method}: {exc}"}
    return {}


@dataclass(frozen=True)
class Resolved:
    """A spec checked without data: its budget filled in, and what of it departs from the preset."""

    spec: RunSpec
    card: MethodCard
    validate_every: int
    # Every value the user set over the preset: meta_steps and eval_episodes when they differ from it,
    # and each --set key. Records carry it so a board can say "overridden" beside a budget.
    preset_overrides: dict[str, Any]


def resolve_spec(spec: RunSpec) -> Resolved:
    """Check every field that needs no data; return the spec with its budget filled in.

    Raises MetabenchError with a one-line message naming the bad value and the fix.
    """
    try:
        card = get_card(spec.method)
    except ValueError as exc:
        raise MetabenchError(f"{exc}; see `metabench methods`") from None
    problems = spec_problems(spec, card)
    if problems:
        raise MetabenchError(next(iter(problems.values())))
    preset = card.preset_for(spec.preset, spec.episode)
    meta_steps = preset.meta_steps if spec.meta_steps is None else spec.meta_steps
    eval_episodes = preset.eval_episodes if spec.eval_episodes is None else spec.eval_episodes
    if not card.needs_training:
        meta_steps = 0  # nothing to train: the budget is the evaluation alone
    resolved = replace(spec, meta_steps=meta_steps, eval_episodes=eval_episodes)
    overrides: dict[str, Any] = {}
    if card.needs_training and meta_steps != preset.meta_steps:
        overrides["meta_steps"] = meta_steps
    if eval_episodes != preset.eval_episodes:
        overrides["eval_episodes"] = eval_episodes
    overrides |= dict(spec.overrides)
    # A preset's validation interval fits its own budget; a budget set with --meta-steps gets the
    # default (a 4-step run validated every 1000 steps would have nothing to resume from).
    if preset.validate_every and meta_steps == preset.meta_steps:
        validate_every = preset.validate_every
    else:
        validate_every = max(1, meta_steps // CHECKPOINTS_PER_RUN)
    return Resolved(resolved, card, validate_every, overrides)
