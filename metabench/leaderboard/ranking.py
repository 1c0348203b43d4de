"""Rank finished runs per setting, beside the published numbers, with paired tests between neighbours."""

from __future__ import annotations

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
from metabench.leaderboard.stats import SIGNIFICANCE_LEVEL, paired_t_test
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
    """One ranked run. Accuracies, intervals and differences are in percent, as papers print them."""

    rank: int
    method: str
    family: str
    accuracy: float
    ci95: float | None
    episodes: int
    published: float | None  # None with a published_paper: no number is published for this setting
    published_ci: float | None
    published_paper: str | None
    published_note: str | None
    difference: float | None  # accuracy - published
    p_value_vs_above: float | None  # paired t-test against the row ranked just above
    significant_vs_above: bool | None  # None: top row, or no per-episode results to pair
    preset: str
    meta_steps: int
    budget: str  # 'quick, 1000 steps', or 'quick, 6000 steps (overridden)' (records.budget_text)
    seed: int
    device: str
    train_time_s: float
    transductive: bool
    run_id: str
    finished_at: str | None


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

    By default each method shows one run per setting: the one with the largest training budget
    (so a later smoke test does not replace a real result), the latest among equals. `all_runs`
    shows every finished run.
    """
    published = load_published() if published is None else published
    references = load_references()
    groups: dict[Setting, list[FinishedRun]] = defaultdict(list)
    for entry in finished_summaries(db, protocol, ways, shots):
        run = entry.summary
        setting = Setting(run.protocol, run.ways, run.shots, run.queries, run.eval_episodes, entry.eval_seed)
        groups[setting].append(entry)
    boards = []
    for setting in sorted(groups, key=_setting_order):
        entries = groups[setting] if all_runs else _representatives(groups[setting])
        entries.sort(key=lambda entry: (-(entry.summary.accuracy or 0.0), entry.summary.run_id))
        rows = tuple(_rows(db, setting, entries, published))
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


def _representatives(entries: list[FinishedRun]) -> list[FinishedRun]:
    def budget(entry: FinishedRun) -> tuple[Any, ...]:
        run = entry.summary
        preset_rank = PRESETS.index(run.preset) if run.preset in PRESETS else -1
        return (run.meta_steps, preset_rank, run.finished_at or run.created_at, run.run_id)

    best: dict[str, FinishedRun] = {}
    for entry in entries:
        method = entry.summary.method
        if method not in best or budget(entry) > budget(best[method]):
            best[method] = entry
    return list(best.values())


def _rows(
    db: sqlite_utils.Database,
    setting: Setting,
    entries: list[FinishedRun],
    published: tuple[PublishedResult, ...],
) -> list[LeaderboardRow]:
    rows = []
    above: tuple[tuple[float, ...], FinishedRun] | None = None
    for rank, entry in enumerate(entries, start=1):
        run = entry.summary
        accuracies = episode_accuracies(db, run.run_id)
        p_value = None
        if above is not None and _pairable(above, (accuracies, entry), setting.eval_episodes):
            p_value = paired_t_test(above[0], accuracies).p_value
        above = (accuracies, entry)
        paper = find_published(published, run.method, run.protocol, run.ways, run.shots, run.transductive)
        accuracy = 100.0 * (run.accuracy or 0.0)
        rows.append(
            LeaderboardRow(
                rank=rank,
                method=run.method,
                family=run.family,
                accuracy=accuracy,
                ci95=None if run.ci95 is None else 100.0 * run.ci95,
                episodes=run.eval_episodes,
                published=paper.accuracy if paper else None,
                published_ci=paper.ci95 if paper else None,
                published_paper=f"{paper.paper}, {paper.table}" if paper else None,
                published_note=(paper.note or None) if paper else None,
                difference=accuracy - paper.accuracy if paper and paper.accuracy is not None else None,
                p_value_vs_above=p_value,
                significant_vs_above=None if p_value is None else p_value < SIGNIFICANCE_LEVEL,
                preset=run.preset,
                meta_steps=run.meta_steps,
                budget=run.budget,
                seed=run.seed,
                device=run.device_name,
                train_time_s=run.train_time_s,
                transductive=run.transductive,
                run_id=run.run_id,
                finished_at=run.finished_at,
            )
        )
    return rows


def _pairable(
    a: tuple[tuple[float, ...], FinishedRun], b: tuple[tuple[float, ...], FinishedRun], episodes: int
) -> bool:
    """Episode i of both runs is the same task only when both recorded the same drawn test episodes
    (classes and drawings: the digest) on the same data, with complete results."""
    (a_accuracies, a_run), (b_accuracies, b_run) = a, b
    return (
        len(a_accuracies) == len(b_accuracies) == episodes >= 2
        and a_run.test_episodes_digest != ""
        and a_run.test_episodes_digest == b_run.test_episodes_digest
        and a_run.data_digest == b_run.data_digest
    )
