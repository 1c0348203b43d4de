"""The run record's schema: what each field of the JSON must hold, and the spec's own checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from metabench.config import DEVICES, LIMITS, PRESETS, PROTOCOLS, EpisodeSpec, RunSpec
from metabench.leaderboard.checks import (
    Kind,
    bad,
    boolean,
    choice,
    count,
    fraction,
    int_in,
    line,
    matching,
    non_negative,
    optional,
    positive,
    shown,
    text,
    timestamp,
)
from metabench.methods.card import MODEL_SELECTIONS
from metabench.runid import check_run_id

STATUSES = ("running", "finished", "failed", "interrupted")
BUDGET_OVERRIDES = ("meta_steps", "eval_episodes")  # preset_overrides keys that are not --set keys

HEX_DIGEST = re.compile(r"(?:[0-9a-f]{8,64})?")  # "" when unknown
CODE_VERSION = re.compile(r"(?:git:[0-9a-f]{7,64}(?:[-+]dirty)?|src:[0-9a-f]{8,64})?")
RUN_ID_TAIL = re.compile(r"\d{8}T\d{6}-[0-9a-f]{4}")
CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def run_id_field(value: Any, key: str) -> str:
    return check_run_id(line(value, key))


# The record's own fields, their JSON keys and what each must hold (curve, episodes, versions, spec
# and preset_overrides are structured and checked by their own functions).
FIELDS_V1: dict[str, Kind] = {
    "run_id": run_id_field,
    "status": choice(STATUSES),
    "spec_hash": line,
    "family": line,
    "transductive": boolean,
    "eval_seed": count,
    "eval_batch_size": positive,
    "created_at": timestamp,
    "steps_done": count,
    "finished_at": optional(timestamp),
    "device_type": line,
    "device_name": line,
    "data_digest": matching(HEX_DIGEST, "a hexadecimal digest or empty"),
    "wall_time_s": non_negative,
    "train_time_s": non_negative,
    "eval_time_s": non_negative,
    "tasks_per_s": optional(non_negative),
    "peak_rss_mb": optional(non_negative),
    "peak_cuda_mb": optional(non_negative),
    "accuracy": optional(fraction),
    "ci95": optional(fraction),
    "error": optional(text),
    "resumable": boolean,
}
FIELDS_V2: dict[str, Kind] = {
    **FIELDS_V1,
    "test_episodes_digest": matching(HEX_DIGEST, "a hexadecimal digest or empty"),
    "torch_threads": optional(positive),
    "code_version": matching(CODE_VERSION, "git:<commit>[+dirty], src:<hex digest> or empty"),
}
FIELDS: dict[str, Kind] = {
    **FIELDS_V2,
    "model_selection": choice(MODEL_SELECTIONS),
    "tested_step": optional(count),
}
FIELDS_BY_FORMAT = {1: FIELDS_V1, 2: FIELDS_V2, 3: FIELDS}
SPEC_FIELDS: dict[str, Kind] = {
    "method": line,  # its shape is checked through the run id, which starts with it
    "protocol": choice(PROTOCOLS),
    "preset": choice(PRESETS),
    "meta_steps": int_in(0, LIMITS["--meta-steps"]),
    "eval_episodes": int_in(1, LIMITS["--eval-episodes"]),
    "seed": int_in(0, LIMITS["--seed"]),
    "device": choice(DEVICES),
}
EPISODE_FIELDS = ("ways", "shots", "queries")


def check_spec(spec: RunSpec) -> None:
    """ValueError naming the first field of a resolved spec that no record could hold.

    The runner calls it before a run exists, so a run never ends in a record the database refuses.
    """
    parse_spec(spec.to_dict())


def parse_spec(data: Any) -> RunSpec:
    if not isinstance(data, Mapping):
        raise bad("spec", "an object", data)
    expected = {*SPEC_FIELDS, "episode", "overrides"}
    if set(data) != expected:
        raise ValueError(f"'spec' must have exactly the keys {', '.join(sorted(expected))}")
    values = {name: kind(data[name], f"spec.{name}") for name, kind in SPEC_FIELDS.items()}
    episode = parse_episode(data["episode"], "spec.episode")
    overrides = data["overrides"]
    if not isinstance(overrides, Mapping):
        raise bad("spec.overrides", "an object", overrides)
    for key, value in overrides.items():
        matching(CONFIG_KEY, "a config key")(key, "spec.overrides")
        line(value, f"spec.overrides.{key}")
    return RunSpec(episode=episode, overrides=tuple(sorted(overrides.items())), **values)


def parse_episode(data: Any, key: str) -> EpisodeSpec:
    if not isinstance(data, Mapping) or set(data) != set(EPISODE_FIELDS):
        raise bad(key, "an object with ways, shots and queries", data)
    episode = EpisodeSpec(*(positive(data[name], f"{key}.{name}") for name in EPISODE_FIELDS))
    episode.validate()
    return episode


def episode_dict(episode: EpisodeSpec) -> dict[str, int]:
    return {name: getattr(episode, name) for name in EPISODE_FIELDS}


def flat_copies(spec: RunSpec) -> dict[str, Any]:
    """The spec fields repeated at the top of the JSON, for people reading the file."""
    return {
        "method": spec.method,
        "protocol": spec.protocol,
        "episode": episode_dict(spec.episode),
        "preset": spec.preset,
        "meta_steps": spec.meta_steps or 0,
        "eval_episodes": spec.eval_episodes or 0,
        "seed": spec.seed,
    }


def parse_versions(data: Any) -> dict[str, str | None]:
    if not isinstance(data, Mapping) or len(data) > 32:
        raise bad("versions", "an object of at most 32 names", data)
    return {line(key, "versions"): optional(line)(value, f"versions.{key}") for key, value in data.items()}


def parse_preset_overrides(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise bad("preset_overrides", "an object or null", data)
    checked: dict[str, Any] = {}
    for key, value in data.items():
        name = f"preset_overrides.{key}"
        if key in BUDGET_OVERRIDES:
            checked[key] = SPEC_FIELDS[key](value, name)
        else:
            checked[matching(CONFIG_KEY, "a config key")(key, "preset_overrides")] = line(value, name)
    return checked


def check_preset_overrides(overrides: Mapping[str, Any], spec: RunSpec) -> None:
    """The --set part is the spec's overrides, and an overridden step budget is the one the spec ran."""
    settings = {key: value for key, value in overrides.items() if key not in BUDGET_OVERRIDES}
    if settings != dict(spec.overrides):
        raise ValueError(
            f"'preset_overrides' {shown(settings)} differs from the spec's overrides "
            f"{shown(dict(spec.overrides))}"
        )
    if "meta_steps" in overrides and overrides["meta_steps"] != spec.meta_steps:
        raise ValueError(
            f"'preset_overrides' meta_steps {overrides['meta_steps']} differs from the spec's "
            f"{spec.meta_steps}"
        )
