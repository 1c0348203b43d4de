"""Accuracy statistics in pure Python: mean with a 95% interval, the spread over seeds, and paired t-tests
over episodes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SIGNIFICANCE_LEVEL = 0.05


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width 1.96 * std / sqrt(n) (sample std); the width is None below two values."""
    if not values:
        raise ValueError("no values to average")
    n = len(values)
    mean = math.fsum(values) / n
    std = sample_std(values)
    return mean, None if std is None else 1.96 * std / math.sqrt(n)


def sample_std(values: Sequence[float]) -> float | None:
    """The sample standard deviation (n - 1 in the denominator); None below two values."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def seed_means(runs: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Each episode's accuracy averaged over the runs (seeds) tested on the same episodes, in order."""
    if not runs:
        raise ValueError("no runs to average")
    if len({len(run) for run in runs}) != 1:
        raise ValueError(f"runs of different lengths cannot be averaged by episode: {[len(r) for r in runs]}")
    return tuple(math.fsum(values) / len(runs) for values in zip(*runs, strict=True))


@dataclass(frozen=True)
class PairedTest:
    """The paired t-test of a against b over the same episodes (two-sided)."""

    n: int
    mean_difference: float  # mean of a - b
    t: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Student's paired t-test; a and b are per-episode accuracies of two methods on the same episodes.

    Pairing removes the episode-to-episode difficulty that both methods share, so it detects far
    smaller differences than comparing two confidence intervals would.
    """
    if len(a) != len(b):
        raise ValueError(f"paired test needs equal lengths, got {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        raise ValueError("paired test needs at least two episodes")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean = math.fsum(differences) / n
    variance = math.fsum((d - mean) ** 2 for d in differences) / (n - 1)
    if variance == 0.0:
        # Identical differences on every episode: no doubt at all, either way.
        return PairedTest(
            n, mean, 0.0 if mean == 0 else math.copysign(math.inf, mean), 1.0 if mean == 0 else 0.0
        )
    t = mean / math.sqrt(variance / n)
    return PairedTest(n, mean, t, student_t_two_sided_p(t, n - 1))


@dataclass(frozen=True)
class SeedPairedTest:
    """A paired t-test of two groups of seeds over the same episodes, and the seeds it matched."""

    test: PairedTest
    matched: tuple[int, ...]  # the seeds both groups have; () when none, and all seeds were averaged


def seed_paired_t_test(a: Mapping[int, Sequence[float]], b: Mapping[int, Sequence[float]]) -> SeedPairedTest:
    """The paired t-test of two groups of runs, {seed: per-episode accuracies}, tested on the same episodes.

    Each episode's accuracy is averaged over the seeds both groups have, then the two are paired by
    episode: n is the number of episodes. Pairing every (seed, episode) instead would count each episode
    once per seed as if they were independent draws, though every seed is tested on the same episodes
    and shares their difficulty, and each seed's model touches all of its episodes: the n would be
    inflated and the p-value too small. Averaging first keeps one independent difference per episode.
    The test is then over the test episodes for these trained seeds; the variation from training (the
    seeds' spread) is not in it, which is why the boards show the spread beside it. Groups that share
    no seed are compared on each one's average over all its seeds, episode by episode.
    """
    matched = tuple(sorted(a.keys() & b.keys()))
    a_seeds, b_seeds = (matched, matched) if matched else (sorted(a), sorted(b))
    test = paired_t_test(seed_means([a[s] for s in a_seeds]), seed_means([b[s] for s in b_seeds]))
    return SeedPairedTest(test, matched)


def student_t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if df < 1:
        raise ValueError("degrees of freedom must be positive")
    x = df / (df + t * t)
    return min(1.0, max(0.0, regularized_incomplete_beta(x, df / 2.0, 0.5)))


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by Lentz's continued fraction (Numerical Recipes, section 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The fraction converges fast only for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float, iterations: int = 300, eps: float = 1e-15) -> float:
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iterations + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            delta = c * d
            h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h
