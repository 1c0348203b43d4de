"""Rank finished runs per setting, beside the published numbers, with paired tests between neighbours."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import sqlite_utils

from metabench.config import ERROR_RATE_PROTOCOLS, PRESETS
from metabench.leaderboard.published import (
    PublishedReference,
    PublishedResult,
    find_published,
    load_published,
    load_references,
    references_for,
)
from metabench.leaderboard.records import budget_text
from metabench.leaderboard.stats import (
    SIGNIFICANCE_LEVEL,
    SeedPairedTest,
    mean_ci95,
    sample_std,
    seed_means,
    seed_paired_t_test,
)
from metabench.leaderboard.store import FinishedRun, episode_accuracies, finished_summaries


@dataclass(frozen=True)
class Setting:
    """What makes test results comparable: the same protocol, episode shape and fixed test episodes."""

    protocol: str
    ways: int
    shots: int
    queries: int
    eval_episodes: int
    eval_seed: int

    @property
    def label(self) -> str:
        return f"{self.ways}w{self.shots}s"

    @property
    def reports_error_rate(self) -> bool:
        """Whether this protocol's papers print error rates, so the boards show them beside accuracy."""
        return self.protocol in ERROR_RATE_PROTOCOLS

    @property
    def title(self) -> str:
        queries = f"{self.queries} {'query' if self.queries == 1 else 'queries'} per class"
        return (
            f"Omniglot {self.protocol}, {self.ways}-way {self.shots}-shot "
            f"({queries}, {self.eval_episodes} test episodes, eval seed {self.eval_seed})"
        )


@dataclass(frozen=True)
class LeaderboardRow:
    """One ranked group of runs that differ only by seed (a single run when it has one seed).

    Accuracies, intervals and differences are in percent, as papers print them. `accuracy` is the mean
    over the seeds of each run's accuracy; `ci95` is the 95% interval over the test episodes (of the one
    run, or of the seed-averaged accuracy of each episode: see build_leaderboards); `seed_sd` is the
    spread over the seeds. The interval is about the test episodes, the spread about training: both
    are shown, as they answer different questions.
    """

    rank: int
    method: str
    family: str
    accuracy: float
    ci95: float | None
    seeds: tuple[int, ...]  # ascending
    seed_accuracies: tuple[float, ...]  # each seed's accuracy, in the order of `seeds`
    seed_sd: float | None  # sample standard deviation (n - 1) of seed_accuracies; None for one seed
    episodes: int
    published: float | None  # None with a published_paper: no number is published for this setting
    published_ci: float | None
    published_paper: str | None
    published_note: str | None
    difference: float | None  # accuracy - published
    p_value_vs_above: float | None  # paired t-test against the row ranked just above
    significant_vs_above: bool | None  # None: top row, or no per-episode results to pair
    versus_note: str | None  # how the test paired seeds when not every seed of both rows matched
    preset: str
    meta_steps: int
    budget: str  # 'quick, 1000 steps', or 'quick, 6000 steps (overridden)' (records.budget_text)
    device: str  # the runs' devices, each named once
    train_time_s: float  # the mean over the runs: what one run of this budget costs
    transductive: bool
    run_id: str  # the run that stands for the row (the first seed's): the one the TUI opens
    run_ids: tuple[str, ...]  # every run of the row, in the order of `seeds`
    finished_at: str | None  # when the last of its runs finished

    @property
    def seeds_text(self) -> str:
        """'1 seed', or '3 (sd 0.41)': how many seeds the accuracy averages, and how far apart they are."""
        if self.seed_sd is None:
            return f"{len(self.seeds)} seed"
        return f"{len(self.seeds)} (sd {self.seed_sd:.2f})"


@dataclass(frozen=True)
class Leaderboard:
    """The ranked runs of one setting; runs of different settings are never ranked together.

    `references` are published results of this setting that are not runs (people on Lake's runs):
    shown beside the runs, never ranked among them.
    """

    setting: Setting
    rows: tuple[LeaderboardRow, ...]
    references: tuple[PublishedReference, ...] = ()

    def entries(self) -> list[LeaderboardRow | PublishedReference]:
        """Runs and references in one list by accuracy, best first (a reference above a tied run)."""
        return sorted([*self.references, *self.rows], key=lambda entry: -entry.accuracy)

    def to_dict(self) -> dict[str, Any]:
        setting = {
            **asdict(self.setting),
            "label": self.setting.label,
            "title": self.setting.title,
            "reports_error_rate": self.setting.reports_error_rate,
        }
        return {
            "setting": setting,
            "rows": [asdict(row) for row in self.rows],
            "references": [asdict(ref) | {"accuracy": ref.accuracy} for ref in self.references],
        }


def build_leaderboards(
    db: sqlite_utils.Database,
    protocol: str | None = None,
    ways: int | None = None,
    shots: int | None = None,
    all_runs: bool = False,
    published: tuple[PublishedResult, ...] | None = None,
) -> list[Leaderboard]:
    """One board per setting among the finished runs that match the filters, best accuracy first.

    A row is a group of runs that differ only by seed: the same spec but for the seed (equal
    RunSpec.seedless_hash), the same model selection, and the same data and test episodes (equal
    digests; runs whose test episodes are unknown are rows of their own). A seed run more than once
    counts once, by its latest run. The row's accuracy is the mean over its seeds, its interval the
    95% CI over the test episodes of each episode's accuracy averaged over the seeds: the row's
    accuracy is exactly the mean of those, so the interval says how far the finite set of test
    episodes leaves it uncertain, as a single run's interval does (for one seed they are the same).
    Pooling the seeds' episodes as independent values would narrow it wrongly, since every seed is
    tested on the same episodes; the training spread is the seeds' standard deviation, shown beside.

    By default each method shows one row per setting: the group with the largest training budget (so
    a later smoke test does not replace a real result), the latest among equals. `all_runs` shows
    every group, and every earlier run of a seed that was run again as a row of its own.
    """
    published = load_published() if published is None else published
    references = load_references()
    by_setting: dict[Setting, list[FinishedRun]] = defaultdict(list)
    for entry in finished_summaries(db, protocol, ways, shots):
        run = entry.summary
        setting = Setting(run.protocol, run.ways, run.shots, run.queries, run.eval_episodes, entry.eval_seed)
        by_setting[setting].append(entry)
    boards = []
    for setting in sorted(by_setting, key=_setting_order):
        groups = _seed_groups(by_setting[setting], all_runs)
        if not all_runs:
            groups = _representatives(groups)
        loaded = [_SeedGroup(runs, _episodes(db, runs)) for runs in groups]
        loaded.sort(key=lambda group: (-group.accuracy, group.runs[0].summary.run_id))
        rows = tuple(_rows(setting, loaded, published))
        shown = references_for(references, setting.protocol, setting.ways, setting.shots)
        boards.append(Leaderboard(setting, rows, shown))
    return boards


def _setting_order(setting: Setting) -> tuple[Any, ...]:
    return (
        setting.protocol,
        setting.ways,
        setting.shots,
        setting.queries,
        setting.eval_episodes,
        setting.eval_seed,
    )


@dataclass(frozen=True)
class _SeedGroup:
    """The runs of one row, one per seed in seed order, with each seed's per-episode accuracies."""

    runs: tuple[FinishedRun, ...]
    episodes: dict[int, tuple[float, ...]]  # seed -> per-episode accuracies (fractions)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(entry.summary.seed for entry in self.runs)

    @property
    def accuracies(self) -> tuple[float, ...]:
        return tuple(entry.summary.accuracy or 0.0 for entry in self.runs)

    @property
    def accuracy(self) -> float:
        return math.fsum(self.accuracies) / len(self.runs)

    def complete(self, episodes: int) -> bool:
        """Whether every seed has all the setting's test episodes, so they can be averaged and paired."""
        return all(len(accuracies) == episodes for accuracies in self.episodes.values())


def _replicate_key(entry: FinishedRun) -> tuple[str, ...]:
    """Equal for runs that differ only by seed; a run whose spec or test episodes are unknown is alone."""
    if not entry.seedless_hash or not entry.test_episodes_digest:
        return (entry.summary.run_id,)
    return (entry.seedless_hash, entry.summary.model_selection, entry.data_digest, entry.test_episodes_digest)


def _recency(entry: FinishedRun) -> tuple[str, str]:
    run = entry.summary
    return (run.finished_at or run.created_at, run.run_id)


def _seed_groups(entries: list[FinishedRun], all_runs: bool) -> list[tuple[FinishedRun, ...]]:
    """The rows' runs: per group, the latest run of each seed, in seed order; with `all_runs`, every
    earlier run of a seed too, alone (a re-run of a seed is not another seed: counting it would shrink
    the spread and the interval with results that are not independent draws of training)."""
    by_key: dict[tuple[str, ...], dict[int, list[FinishedRun]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        by_key[_replicate_key(entry)][entry.summary.seed].append(entry)
    groups: list[tuple[FinishedRun, ...]] = []
    for by_seed in by_key.values():
        latest = {seed: max(runs, key=_recency) for seed, runs in by_seed.items()}
        groups.append(tuple(latest[seed] for seed in sorted(latest)))
        if all_runs:
            groups += [(run,) for seed, runs in by_seed.items() for run in runs if run is not latest[seed]]
    return groups


def _representatives(groups: list[tuple[FinishedRun, ...]]) -> list[tuple[FinishedRun, ...]]:
    def budget(group: tuple[FinishedRun, ...]) -> tuple[Any, ...]:
        run = group[0].summary
        preset_rank = PRESETS.index(run.preset) if run.preset in PRESETS else -1
        return (run.meta_steps, preset_rank, max(_recency(entry) for entry in group))

    best: dict[str, tuple[FinishedRun, ...]] = {}
    for group in groups:
        method = group[0].summary.method
        if method not in best or budget(group) > budget(best[method]):
            best[method] = group
    return list(best.values())


def _episodes(db: sqlite_utils.Database, runs: tuple[FinishedRun, ...]) -> dict[int, tuple[float, ...]]:
    return {entry.summary.seed: episode_accuracies(db, entry.summary.run_id) for entry in runs}


def _rows(
    setting: Setting, groups: list[_SeedGroup], published: tuple[PublishedResult, ...]
) -> list[LeaderboardRow]:
    rows = []
    above: _SeedGroup | None = None
    for rank, group in enumerate(groups, start=1):
        versus, note = None, None
        if above is not None and _pairable(above, group, setting.eval_episodes):
            versus = seed_paired_t_test(above.episodes, group.episodes)
            note = _versus_note(versus, above, group)
        above = group
        run = group.runs[0].summary  # what the group's runs share: the spec but for the seed
        paper = find_published(published, run.method, run.protocol, run.ways, run.shots, run.transductive)
        accuracy = 100.0 * group.accuracy
        seed_sd = sample_std(group.accuracies)
        p_value = None if versus is None else versus.test.p_value
        rows.append(
            LeaderboardRow(
                rank=rank,
                method=run.method,
                family=run.family,
                accuracy=accuracy,
                ci95=_ci95(group, setting.eval_episodes),
                seeds=group.seeds,
                seed_accuracies=tuple(100.0 * value for value in group.accuracies),
                seed_sd=None if seed_sd is None else 100.0 * seed_sd,
                episodes=run.eval_episodes,
                published=paper.accuracy if paper else None,
                published_ci=paper.ci95 if paper else None,
                published_paper=f"{paper.paper}, {paper.table}" if paper else None,
                published_note=(paper.note or None) if paper else None,
                difference=accuracy - paper.accuracy if paper and paper.accuracy is not None else None,
                p_value_vs_above=p_value,
                significant_vs_above=None if p_value is None else p_value < SIGNIFICANCE_LEVEL,
                versus_note=note,
                preset=run.preset,
                meta_steps=run.meta_steps,
                budget=budget_text(
                    run.preset,
                    run.meta_steps,
                    run.preset_overrides,
                    run.model_selection,
                    tuple(entry.summary.tested_step for entry in group.runs),
                ),
                device=", ".join(dict.fromkeys(entry.summary.device_name for entry in group.runs)),
                train_time_s=math.fsum(entry.summary.train_time_s for entry in group.runs) / len(group.runs),
                transductive=run.transductive,
                run_id=run.run_id,
                run_ids=tuple(entry.summary.run_id for entry in group.runs),
                finished_at=max(filter(None, (e.summary.finished_at for e in group.runs)), default=None),
            )
        )
    return rows


def _ci95(group: _SeedGroup, episodes: int) -> float | None:
    """The row's 95% interval over the test episodes, in percent (build_leaderboards says why this one)."""
    if len(group.runs) == 1:
        ci95 = group.runs[0].summary.ci95  # the run's own, as its record states it
    elif group.complete(episodes):
        ci95 = mean_ci95(seed_means(list(group.episodes.values())))[1]
    else:  # a row stored before records were checked: its episodes cannot be averaged
        ci95 = None
    return None if ci95 is None else 100.0 * ci95


def _versus_note(versus: SeedPairedTest, above: _SeedGroup, group: _SeedGroup) -> str | None:
    """What the row's test paired, unless it paired every seed of both rows."""
    if not versus.matched:
        return "no seed in common: seed averages paired"
    if versus.matched == above.seeds == group.seeds:
        return None
    return f"matched on {seed_list(versus.matched)}"


def seed_list(seeds: tuple[int, ...]) -> str:
    """'seed 0', or 'seeds 0, 1, 2'."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _pairable(a: _SeedGroup, b: _SeedGroup, episodes: int) -> bool:
    """Episode i of both rows is the same task only when both recorded the same drawn test episodes
    (classes and drawings: the digest) on the same data, with complete results. A row's runs share
    their digests (build_leaderboards groups them so)."""
    a_run, b_run = a.runs[0], b.runs[0]
    return (
        episodes >= 2
        and a.complete(episodes)
        and b.complete(episodes)
        and a_run.test_episodes_digest != ""
        and a_run.test_episodes_digest == b_run.test_episodes_digest
        and a_run.data_digest == b_run.data_digest
    )
