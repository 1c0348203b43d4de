"""A method's card: identity, config schema and presets, declared once and readable without torch.

The CLI (`--set` parsing and help, `metabench methods`), the runner, the records and the TUI's run form
all read a method's card; only training and testing import its implementation (which needs torch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from metabench.config import PRESETS, EpisodeSpec

FAMILY_NAMES: dict[str, str] = {
    "A": "Learning to initialize",
    "B": "Learning to compare",
    "C": "Other",
    "baseline": "Baseline",
}
FAMILY_ORDER = tuple(FAMILY_NAMES)
# The JSON value each field type holds; "json" is any JSON value (nested choices, mixed lists).
FIELD_TYPES = ("int", "float", "bool", "str", "list[int]", "list[float]", "json")
INT_LIMIT = 2**31  # no setting needs more, and torch and SQLite stop at 64 bits
# Which trained state is tested: the last, the best on validation, or (methods whose card sets
# `ensembles`) the mean output of the ENSEMBLE_SIZE best validated states, as MAML++ reports its results
# (the authors' top_n_models = 5); an ensemble inflates results, so the boards say so.
ENSEMBLE_SIZE = 5
ENSEMBLE_SELECTION = f"top-{ENSEMBLE_SIZE}-ensemble"
MODEL_SELECTIONS = ("last", "best-validation", ENSEMBLE_SELECTION)
SELECTION_FIELD = "model_selection"
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Preset:
    """A named budget: how many meta-training steps, and config values that differ from the paper's."""

    meta_steps: int
    eval_episodes: int
    config: dict[str, Any] = field(default_factory=dict)
    validate_every: int = 0  # 0: validate about ten times per run


@dataclass(frozen=True)
class Field:
    """One config key: its type, the paper's default, the values it allows and a line of help."""

    name: str
    type: str
    default: Any
    help: str
    minimum: float | None = None  # inclusive; for lists, of every element
    maximum: float | None = None
    positive: bool = False  # strictly above zero
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: type must be one of {', '.join(FIELD_TYPES)}")
        self.check(self.default)  # a card whose default breaks its own rule is a programming error

    def parse(self, raw: str) -> Any:
        """The value a `--set name=raw` string means, checked; ValueError naming the key and the fix."""
        if self.type == "str":
            value: Any = raw
        elif self.type == "bool":
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError(f"--set {self.name}={raw!r}: expected true or false")
            value = raw.lower() in _TRUE
        elif self.type in ("int", "float"):
            try:
                value = int(raw) if self.type == "int" else float(raw)
            except ValueError:
                raise ValueError(f"--set {self.name}={raw!r}: expected a value of type {self.type}") from None
        else:
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):
                raise ValueError(
                    f"--set {self.name}={raw!r}: expected JSON of type {self.type}, e.g. {self.example()}"
                ) from None
        return self.check(value, prefix=f"--set {self.name}={raw!r}")

    def check(self, value: Any, prefix: str | None = None) -> Any:
        """`value` when it fits this field (ints are accepted as floats); ValueError otherwise."""
        where = prefix or self.name
        if self.type == "json":
            _check_json(value, where)
            return value
        items = value if self.type.startswith("list[") else [value]
        if self.type.startswith("list[") and not isinstance(value, list):
            raise ValueError(f"{where}: expected a JSON list, e.g. {self.example()}")
        element = self.type.removeprefix("list[").removesuffix("]")
        checked = [self._check_scalar(item, element, where) for item in items]
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where}: must be one of {', '.join(map(str, self.choices))}")
        return checked if self.type.startswith("list[") else checked[0]

    def _check_scalar(self, value: Any, kind: str, where: str) -> Any:
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError(f"{where}: expected a string")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true or false")
            return value
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (kind == "int" and isinstance(value, float))
        ):
            raise ValueError(f"{where}: expected a value of type {kind}")
        if kind == "float":
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where}: expected a finite float")
        elif abs(value) >= INT_LIMIT:
            raise ValueError(f"{where}: expected a whole number below {INT_LIMIT:,}")
        if self.positive and not value > 0:
            raise ValueError(f"{where}: {self.name} must be positive")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where}: {self.name} must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{where}: {self.name} must be at most {self.maximum:g}")
        return value

    def rule(self) -> str:
        """The allowed values in words, e.g. 'float > 0' or 'one of loop, vectorized'."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        bounds = ["> 0" if self.positive else ""]
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        return " ".join([self.type, *filter(None, bounds)])

    def example(self) -> str:
        return {"list[int]": "[64,64]", "list[float]": "[0.1,0.05]"}.get(self.type, '{"key": [1, 2]}')

    def to_json(self, paper_value: Any) -> dict[str, Any]:
        """The field as `metabench methods --json` shows it, with the paper's value for a given shape."""
        data: dict[str, Any] = {
            "type": self.type,
            "default": paper_value,
            "help": self.help,
            "rule": self.rule(),
        }
        for key in ("minimum", "maximum", "choices"):
            if getattr(self, key) is not None:
                data[key] = list(self.choices) if key == "choices" else getattr(self, key)
        if self.positive:
            data["positive"] = True
        return data


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Only what JSON can hold, finite, and not absurdly deep (a config is read by people)."""
    if depth > 32:
        raise ValueError(f"{where}: nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: expected finite numbers")
    if isinstance(value, list):
        for item in value:
            _check_json(item, where, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: object keys must be strings")
            _check_json(item, where, depth + 1)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"{where}: not a JSON value")


class Config(Mapping[str, Any]):
    """A method's checked config values, read as attributes (`config.inner_lr`) or as a mapping."""

    def __init__(self, method: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})  # absent while copy or pickle rebuild the object
        if name not in values:
            raise AttributeError(f"method {self.__dict__.get('_method')!r} has no config key {name!r}")
        return values[name]

    def __reduce__(self) -> tuple[Any, ...]:
        return Config, (self._method, self._values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a method's config is frozen; build a new one with MethodCard.make_config")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self._method!r}, {self._values!r})"


def _no_episode_values(episode: EpisodeSpec) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class MethodCard:
    """Everything about a method that needs no model: who, which paper, what can be set, what budgets.

    `implementation` names the Method subclass as "package.module:Class"; it is imported only to train
    or test. `episode_values` gives the paper's values that depend on the task shape (MAML's 20-way
    settings). `presets` are the budgets of 5-way 1-shot tasks; `presets_by_shape`, when given, the
    budgets of any shape, for a method whose cost grows so much with the ways or shots that one
    budget cannot fit all (MAML's 20-way quick run, SNAIL's tasks per step).
    """

    name: str
    family: str
    paper: str  # short citation, e.g. "Finn et al., ICML 2017"
    summary: str  # one line: what the method does
    implementation: str
    fields: tuple[Field, ...]
    presets: dict[str, Preset]
    cite_key: str | None = None  # the paper's key in the survey catalog
    needs_training: bool = True
    # The default of whether a query's prediction depends on the other queries of its task; a method
    # whose config decides it sets `transductive` on the instance, and the run records that.
    transductive: bool = False
    # Which trained state is tested, unless the user sets model_selection: the last, or the one with the
    # best validation accuracy (MAML++ selects so).
    model_selection: str = "last"
    # Whether the implementation gives `Method.scores`, so that the top-5 ensemble can be chosen.
    ensembles: bool = False
    episode_values: Callable[[EpisodeSpec], dict[str, Any]] = _no_episode_values
    presets_by_shape: Callable[[EpisodeSpec], dict[str, Preset]] | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILY_NAMES:
            raise ValueError(f"method {self.name}: family must be one of {', '.join(FAMILY_NAMES)}")
        if self.model_selection not in MODEL_SELECTIONS:
            raise ValueError(f"method {self.name}: model_selection must be one of {MODEL_SELECTIONS}")
        if self.needs_training and all(f.name != SELECTION_FIELD for f in self.fields):
            selection = Field(
                SELECTION_FIELD,
                "str",
                self.model_selection,
                "which trained state is tested: the last, or the one with the best validation accuracy"
                + (
                    f", or the mean output of the {ENSEMBLE_SIZE} best (inflates results)"
                    if self.ensembles
                    else ""
                ),
                choices=MODEL_SELECTIONS if self.ensembles else MODEL_SELECTIONS[:2],
            )
            object.__setattr__(self, "fields", (*self.fields, selection))
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"method {self.name}: a config key is declared twice")

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES[self.family]

    def field(self, key: str) -> Field:
        """The declared field `key`; ValueError listing the valid keys otherwise."""
        for item in self.fields:
            if item.name == key:
                return item
        valid = ", ".join(sorted(f.name for f in self.fields)) or "none"
        raise ValueError(f"unknown key {key!r} for method {self.name!r}; valid keys: {valid}")

    def _presets(self, episode: EpisodeSpec) -> dict[str, Preset]:
        return self.presets_by_shape(episode) if self.presets_by_shape else self.presets

    def preset_names(self, episode: EpisodeSpec) -> tuple[str, ...]:
        """The presets this method has for this episode shape, in PRESETS order."""
        return tuple(p for p in PRESETS if p in self._presets(episode))

    def preset_for(self, preset: str, episode: EpisodeSpec) -> Preset:
        """The budget `preset` gives this episode shape."""
        presets = self._presets(episode)
        if preset not in presets:
            choices = ", ".join(self.preset_names(episode))
            raise ValueError(f"method {self.name!r} has no preset {preset!r}; choose one of {choices}")
        return presets[preset]

    def defaults(self, episode: EpisodeSpec) -> dict[str, Any]:
        """The paper's config for this episode shape."""
        return {f.name: f.default for f in self.fields} | self.episode_values(episode)

    def make_config(self, preset: str, overrides: Mapping[str, str], episode: EpisodeSpec) -> Config:
        """The paper's config, with the preset's changes and then the user's --set strings applied."""
        values = self.defaults(episode) | self.preset_for(preset, episode).config
        for key, raw in overrides.items():
            values[key] = self.field(key).parse(raw)
        checked = {key: self.field(key).check(value) for key, value in values.items()}
        return Config(self.name, checked)

    def to_json(self) -> dict[str, Any]:
        """The card as `metabench methods --json` prints it (5-way 1-shot values, 20-way budgets)."""
        five, twenty = EpisodeSpec(5, 1, 15), EpisodeSpec(20, 1, 15)
        defaults = self.defaults(five)

        def budgets(episode: EpisodeSpec) -> dict[str, Any]:
            return {
                name: {"meta_steps": p.meta_steps, "eval_episodes": p.eval_episodes, "config": dict(p.config)}
                for name in PRESETS
                if name in self.presets
                for p in [self.preset_for(name, episode)]
            }

        return {
            "name": self.name,
            "family": self.family,
            "family_name": self.family_name,
            "paper": self.paper,
            "cite_key": self.cite_key,
            "summary": self.summary,
            "needs_training": self.needs_training,
            "transductive": self.transductive,
            "model_selection": self.model_selection,
            "presets": budgets(five),
            "presets_20_way": budgets(twenty),
            "config": {f.name: f.to_json(defaults[f.name]) for f in self.fields},
        }
