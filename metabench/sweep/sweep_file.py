"""Sweep files: parse and check a TOML grid of runs; every problem is one ValueError naming its line.

Format
------
    [sweep]
    name = "seeds-quick"                  # optional: the file's name without .toml
    methods = ["protonet", "maml"]        # or "all": every installed method
    protocols = ["vinyals"]               # default ["vinyals"]
    shapes = ["5w1s", "20w1s"]            # N-way K-shot; default ["5w1s"]
    queries = 15                          # queries per class; default 15
    seeds = [0, 1, 2]                     # default [0]
    presets = ["quick"]                   # smoke, quick or paper; default ["quick"]
    meta_steps = 2000                     # optional: override the presets' steps
    eval_episodes = 1000                  # optional: override the presets' test episodes
    device = "auto"                       # auto, cpu or cuda; default auto

    [[grid]]                              # optional, repeatable: one more grid, which takes every key
    protocols = ["lake-runs"]             # it does not set from [sweep] (lake-runs tests 20w1s, 1 query)
    shapes = ["20w1s"]
    queries = 1

    [overrides.maml]                      # `--set KEY=VALUE` for every run of maml
    inner_steps = 1

    [budget.protonet]                     # meta_steps / eval_episodes for every run of protonet,
    meta_steps = 500                      # over those of its grid

    [slurm]                               # options of the Slurm executor (checked by it)

A key that takes a list also takes one value (`presets = "paper"`). [sweep] is the first grid; the runs
are every combination of each grid's methods, protocols, shapes, seeds and presets, checked
(metabench.spec_rules and the method cards) before anything runs.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metabench.config import DEVICES, PRESETS, PROTOCOLS, EpisodeSpec, RunSpec, check_count
from metabench.methods.card import MethodCard
from metabench.methods.registry import all_cards, get_card
from metabench.spec_rules import spec_problems
from metabench.sweep.toml_lines import TomlLines

# Tables of executor options a sweep file may carry, passed on unchecked to that executor.
EXECUTOR_TABLES = ("slurm",)
GRID_KEYS = ("methods", "protocols", "shapes", "queries", "seeds", "presets", "meta_steps", "eval_episodes",
             "device")  # fmt: skip
SWEEP_KEYS = ("name", *GRID_KEYS)
BUDGET_KEYS = ("meta_steps", "eval_episodes")
LIST_KEYS = ("methods", "protocols", "shapes", "seeds", "presets")
TOP_KEYS = ("sweep", "grid", "overrides", "budget", *EXECUTOR_TABLES)
ALL_METHODS = "all"
SHAPE_PATTERN = re.compile(r"(\d+)w(\d+)s")
_DEFAULT_SPEC = RunSpec(method="")


class SweepFileError(ValueError):
    """A sweep file's problem, as one line: `FILE:LINE: problem`."""


@dataclass(frozen=True)
class Grid:
    """One grid of runs: every combination of its methods, protocols, shapes, seeds and presets."""

    methods: tuple[str, ...]
    protocols: tuple[str, ...] = (_DEFAULT_SPEC.protocol,)
    shapes: tuple[tuple[int, int], ...] = ((_DEFAULT_SPEC.episode.ways, _DEFAULT_SPEC.episode.shots),)
    queries: int = _DEFAULT_SPEC.episode.queries
    seeds: tuple[int, ...] = (_DEFAULT_SPEC.seed,)
    presets: tuple[str, ...] = (_DEFAULT_SPEC.preset,)
    meta_steps: int | None = None
    eval_episodes: int | None = None
    device: str = _DEFAULT_SPEC.device

    def specs(
        self, overrides: Mapping[str, tuple[tuple[str, str], ...]], budgets: Mapping[str, dict[str, int]]
    ) -> list[RunSpec]:
        """The runs, seed by seed (so a sweep cut short has whole boards), then preset, setting, method."""
        return [
            replace(
                RunSpec(
                    method=method,
                    protocol=protocol,
                    episode=EpisodeSpec(ways, shots, self.queries),
                    preset=preset,
                    meta_steps=self.meta_steps,
                    eval_episodes=self.eval_episodes,
                    seed=seed,
                    device=self.device,
                    overrides=overrides.get(method, ()),
                ),
                **budgets.get(method, {}),
            )
            for seed in self.seeds
            for preset in self.presets
            for protocol in self.protocols
            for ways, shots in self.shapes
            for method in self.methods
        ]


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file."""

    name: str
    path: Path
    grids: tuple[Grid, ...]
    overrides: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # method: --set pairs
    budgets: Mapping[str, dict[str, int]] = field(default_factory=dict)  # method: {meta_steps, eval_episodes}
    executor_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # "slurm": its table

    def specs(self) -> list[RunSpec]:
        """Every run of every grid, in order (a run two grids share appears twice; the plan keeps one)."""
        return [spec for grid in self.grids for spec in grid.specs(self.overrides, self.budgets)]


def load_sweep(path: str | Path) -> Sweep:
    """Read and check the sweep file at `path`; SweepFileError (a ValueError) with one line otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepFileError(
            f"{path}: no such file; pass the path of a sweep .toml (examples in sweeps/)"
        ) from None
    except UnicodeDecodeError:
        raise SweepFileError(f"{path}: not UTF-8 text; a sweep file is TOML") from None
    except OSError as exc:
        raise SweepFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_sweep(text, path)


def parse_sweep(text: str, path: Path) -> Sweep:
    """Parse and check the TOML `text` of the sweep file `path`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(str(exc), text, path) from None
    return _Checker(text, path).sweep(data)


def _toml_error(message: str, text: str, path: Path) -> SweepFileError:
    """tomllib says '... (at line 3, column 10)' or '... (at end of document)': lead with the line."""
    where = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if where:
        line, what = int(where.group(1)), f"{message[: where.start()]} (column {where.group(2)})"
    else:
        line, what = max(1, len(text.splitlines())), message.replace(" (at end of document)", " at the end")
    return SweepFileError(f"{path}:{line}: invalid TOML: {what[:1].lower()}{what[1:]}")


class _Checker:
    """Turns the parsed TOML into a Sweep, raising SweepFileError at the line of the first problem."""

    def __init__(self, text: str, path: Path) -> None:
        self.path = path
        self.lines = TomlLines(text)

    def fail(self, table: tuple, key: str | None, problem: str, value: Any = None) -> SweepFileError:
        return SweepFileError(f"{self.path}:{self.lines.find(table, key, value)}: {problem}")

    def sweep(self, data: dict[str, Any]) -> Sweep:
        for key in data:
            if key in SWEEP_KEYS:
                raise self.fail(
                    (), key, f"`{key}` belongs in the [sweep] table: put `[sweep]` on a line above it"
                )
            if key not in TOP_KEYS:
                raise self.fail((), key, _unknown(key, TOP_KEYS, "at the top level"))
        if not isinstance(data.get("sweep"), dict):
            raise self.fail(("sweep",), None, "a sweep file needs a [sweep] table naming at least `methods`")
        first = data["sweep"]
        self.keys(first, ("sweep",), SWEEP_KEYS)
        if "methods" not in first:
            raise self.fail(("sweep",), None, '[sweep] has no `methods`: list the methods to run, or "all"')
        extra = data.get("grid", [])
        if not isinstance(extra, list) or not all(isinstance(item, dict) for item in extra):
            raise self.fail((), "grid", "`grid` must be [[grid]] tables, one per extra grid")
        for index, table in enumerate(extra):
            self.keys(table, ("grid", index), GRID_KEYS)
        grids = [self.grid(first, {}, ("sweep",))]
        grids += [self.grid(table, first, ("grid", index)) for index, table in enumerate(extra)]
        methods = {method for grid in grids for method in grid.methods}
        overrides = {m: self.overrides(m, v) for m, v in self.per_method(data, "overrides", methods).items()}
        budgets = {m: self.budget(m, v) for m, v in self.per_method(data, "budget", methods).items()}
        options = {}
        for name in EXECUTOR_TABLES:
            if name in data:
                if not isinstance(data[name], dict):
                    raise self.fail((), name, f"`{name}` must be a table: [{name}]")
                options[name] = data[name]
        name = first.get("name", self.path.stem)
        if not isinstance(name, str) or not name.strip():
            raise self.fail(("sweep",), "name", "`name` must be a non-empty string")
        sweep = Sweep(name.strip(), self.path, tuple(grids), overrides, budgets, options)
        for index, table in enumerate([first, *extra]):
            self.check_runs(sweep, index, table, first)
        return sweep

    def keys(self, table: dict[str, Any], where: tuple, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(where, key, _unknown(key, allowed, f"in {_table_name(where)}"))

    def grid(self, table: dict[str, Any], inherited: dict[str, Any], where: tuple) -> Grid:
        """A Grid from `table` and, for the keys it lacks, the [sweep] table `inherited`."""
        values: dict[str, Any] = {}
        for key in GRID_KEYS:
            if key in table:
                origin, raw = where, table[key]
            elif key in inherited:
                origin, raw = ("sweep",), inherited[key]
            else:
                continue
            values[key] = self.value(key, raw, origin)
        return Grid(**values)

    def value(self, key: str, raw: Any, where: tuple) -> Any:
        """The checked value of grid key `key`."""
        if key in LIST_KEYS:
            items = raw if isinstance(raw, list) else [raw]
            if not items:
                raise self.fail(where, key, f"`{key}` is empty; list at least one")
            if key == "methods" and raw == ALL_METHODS:
                return tuple(card.name for card in all_cards())
            twice = next((item for n, item in enumerate(items) if item in items[:n]), None)
            if twice is not None:
                raise self.fail(where, key, f"`{key}` lists {twice!r} twice", twice)
            return tuple(self.item(key, item, where) for item in items)
        if key in ("queries", *BUDGET_KEYS):
            return self.count(key, raw, where)
        if not isinstance(raw, str) or raw not in DEVICES:
            raise self.fail(where, key, f"`device` must be one of {', '.join(DEVICES)}, got {raw!r}")
        return raw

    def item(self, key: str, item: Any, where: tuple) -> Any:
        """One element of a list key, checked."""
        if key == "seeds":
            return self.count(key, item, where, option="--seed", minimum=0)
        if not isinstance(item, str):
            raise self.fail(where, key, f"`{key}` must list strings, got {item!r}", item)
        if key == "methods":
            try:
                get_card(item)
            except ValueError as exc:
                raise self.fail(where, key, str(exc), item) from None
        elif key == "protocols" and item not in PROTOCOLS:
            raise self.fail(
                where, key, f"unknown protocol {item!r}; choose one of {', '.join(PROTOCOLS)}", item
            )
        elif key == "presets" and item not in PRESETS:
            raise self.fail(where, key, f"unknown preset {item!r}; choose one of {', '.join(PRESETS)}", item)
        elif key == "shapes":
            match = SHAPE_PATTERN.fullmatch(item)
            if match is None:
                raise self.fail(where, key, f'shape {item!r} is not N-way K-shot like "5w1s"', item)
            return int(match.group(1)), int(match.group(2))
        return item

    def count(self, key: str, raw: Any, where: tuple, option: str | None = None, minimum: int = 1) -> int:
        option = option or f"--{key.replace('_', '-')}"
        try:
            return check_count(option, raw, 0 if key == "meta_steps" else minimum)
        except ValueError as exc:
            message = str(exc).replace(option, f"`{key}`", 1)
            raise self.fail(where, key, message, raw if key == "seeds" else None) from None

    def per_method(self, data: dict[str, Any], name: str, methods: set[str]) -> dict[str, dict[str, Any]]:
        """The [NAME.METHOD] tables, each naming a method some grid runs."""
        tables = data.get(name, {})
        if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
            raise self.fail((), name, f"`{name}` must be tables named after methods: [{name}.METHOD]")
        for method in tables:
            if method not in methods:
                raise self.fail(
                    (name, method),
                    None,
                    f"[{name}.{method}] names a method no grid runs; add it to `methods`",
                )
        return tables

    def overrides(self, method: str, table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The table as sorted `--set` pairs, each key checked against the method's card."""
        card = get_card(method)
        pairs = []
        for key, raw in table.items():
            text = _set_text(raw)
            if text is None:
                raise self.fail(("overrides", method), key, f"{key}: unsupported value {raw!r}")
            try:
                card.field(key).parse(text)
            except ValueError as exc:
                raise self.fail(("overrides", method), key, f"{method}: {exc}") from None
            pairs.append((key, text))
        return tuple(sorted(pairs))

    def budget(self, method: str, table: dict[str, Any]) -> dict[str, int]:
        self.keys(table, ("budget", method), BUDGET_KEYS)
        return {key: self.count(key, raw, ("budget", method)) for key, raw in table.items()}

    def check_runs(self, sweep: Sweep, index: int, table: dict[str, Any], first: dict[str, Any]) -> None:
        """Every run of grid `index` (0: [sweep]) passes the spec rules; else the line of the key to blame."""
        where = ("sweep",) if index == 0 else ("grid", index - 1)
        # The table of every key the grid has: its own, or [sweep]'s.
        table_of = {
            key: where if key in table else ("sweep",) for key in GRID_KEYS if key in table or key in first
        }
        for spec in sweep.grids[index].specs(sweep.overrides, sweep.budgets):
            card = get_card(spec.method)
            problems = spec_problems(spec, card)
            if problems:
                field_name, problem = next(iter(problems.items()))
                place, key, value = _culprit(spec, card, field_name, table_of, sweep.budgets)
                raise self.fail(
                    place, key, f"{spec.method} {spec.protocol} {spec.episode.label}: {problem}", value
                )


def _culprit(
    spec: RunSpec, card: MethodCard, field_name: str, table_of: dict[str, tuple], budgets: Mapping[str, dict]
) -> tuple[tuple, str | None, Any]:
    """(table, key, value) of the setting behind the spec problem of form field `field_name`."""
    if field_name == "options":
        for key, value in spec.overrides:
            try:
                card.make_config(spec.preset, {key: value}, spec.episode)
            except ValueError:
                return ("overrides", spec.method), key, None
        return ("overrides", spec.method), None, None
    if field_name == "budget":  # the values were checked one by one: the table is all there is to name
        return (
            ("budget", spec.method) if spec.method in budgets else table_of.get("meta_steps", ("sweep",)),
            None,
            None,
        )
    key, value = {
        "method": ("methods", spec.method),
        "protocol": ("protocols", spec.protocol),
        "preset": ("presets", spec.preset),
        "seed": ("seeds", spec.seed),
    }.get(field_name, ("shapes", f"{spec.episode.ways}w{spec.episode.shots}s"))
    if field_name == "queries" and "queries" in table_of:  # else the shape, whose shots are too many
        key, value = "queries", None
    return table_of.get(key, ("sweep",)), key, value


def _set_text(value: Any) -> str | None:
    """A TOML value as the `--set` string the method card parses; None for a type it cannot take."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        try:
            return json.dumps(value, separators=(",", ":"))
        except TypeError:  # a date or time inside
            return None
    return None


def _unknown(key: str, allowed: tuple[str, ...], where: str) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(allowed)}"
    return f"unknown key `{key}` {where}; {hint}"


def _table_name(where: tuple) -> str:
    if where and where[0] == "grid":
        return f"[[grid]] number {where[1] + 1}"
    return "[" + ".".join(str(part) for part in where) + "]"
