"""Uncertainty of the grid's results: the confidence interval of a mean over seeds, and the paired
difference of two models over the seeds both ran (experiments/tables.py uses both).

Both intervals come from Student's t-distribution with n - 1 degrees of freedom:
mean ± t_{(1 + level) / 2, n - 1} · s / √n, s the sample standard deviation (ddof=1)."""
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scipy.stats import t

LEVEL = 0.95
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no significant difference"
TOO_FEW = "fewer than 2 paired seeds: no CI"


@dataclass(frozen=True)
class Interval:
    """A mean over n values with its sample standard deviation and confidence interval [low, high]
    (std, low and high are NaN when n < 2)."""

    mean: float
    std: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Paired:
    """The paired difference a - b over ``seeds`` (the seeds both have): the mean of the per-seed
    differences, its confidence interval [low, high] (NaN when n < 2), n and the verdict."""

    mean: float
    low: float
    high: float
    n: int
    verdict: str
    seeds: tuple = ()

    @property
    def ci(self) -> tuple[float, float]:
        return self.low, self.high


def t_quantile(level: float, n: int) -> float:
    """The two-sided t quantile t_{(1 + level) / 2, n - 1} of a level-``level`` interval from n values."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), not {level}")
    return float(t.ppf((1 + level) / 2, n - 1))


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean, sample standard deviation (ddof=1) and the level-``level`` confidence interval of the
    mean of ``values`` (t-distribution, n - 1 degrees of freedom). One value: no std, no interval."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_ci of no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan, math.nan, len(values))
    std = statistics.stdev(values)
    half = t_quantile(level, len(values)) * std / math.sqrt(len(values))
    return Interval(mean, std, mean - half, mean + half, len(values))


def verdict(low: float, high: float) -> str:
    """better: the interval lies above 0; worse: below 0; otherwise (it contains 0) no significant difference."""
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return NO_DIFFERENCE


def paired_difference(a_by_seed: Mapping, b_by_seed: Mapping, level: float = LEVEL) -> Paired:
    """a - b paired by seed (only the seeds both have): the mean difference, the level-``level``
    confidence interval of the per-seed differences (t-distribution, n - 1 degrees of freedom) and
    the verdict for a against b. Fewer than 2 paired seeds: no interval (NaN), verdict TOO_FEW;
    no paired seed at all: the mean is NaN too."""
    seeds = tuple(sorted(a_by_seed.keys() & b_by_seed.keys()))
    differences = [float(a_by_seed[s]) - float(b_by_seed[s]) for s in seeds]
    if len(differences) < 2:
        mean = differences[0] if differences else math.nan
        return Paired(mean, math.nan, math.nan, len(differences), TOO_FEW, seeds)
    ci = mean_ci(differences, level)
    return Paired(ci.mean, ci.low, ci.high, ci.n, verdict(ci.low, ci.high), seeds)
