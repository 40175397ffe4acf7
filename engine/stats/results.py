"""The small result every statistic returns, the error bad input raises, and the interval helpers.

An ``Estimate`` is a figure with its standard error (where one is defined), its confidence
interval and the name of the method that produced them, so a report can print "kappa 0.61
(95% CI 0.48 to 0.74; Fleiss-Cohen-Everitt SE, Wald CI)" without guessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from engine.errors import SalienceError


class StatsInputError(SalienceError):
    """Data handed to a statistic cannot be analysed (wrong shape, too few cases, one class only).

    The message names what is wrong in one line, e.g. ``"ratings: reader 3 has no score for case
    17 in modality B (the OR analysis needs a fully crossed design)"``.
    """


@dataclass(frozen=True)
class Estimate:
    """One figure with its uncertainty.

    Attributes:
        estimate: the point estimate (NaN when undefined, e.g. kappa when chance agreement is 1).
        se: its standard error, or None when the method defines none.
        ci_low: lower end of the confidence interval, or None.
        ci_high: upper end of the confidence interval, or None.
        level: the confidence level of the interval (0.95 for a 95% CI).
        method: how the estimate, SE and CI were obtained, with the paper's short name.
        n: the number of units (cases, subjects, pairs) the figure rests on.
    """

    estimate: float
    se: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    method: str
    n: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_level(level: float) -> float:
    """The confidence level as a float strictly between 0 and 1, or StatsInputError."""
    if not 0.0 < float(level) < 1.0:
        raise StatsInputError(f"confidence level {level!r} must lie strictly between 0 and 1")
    return float(level)


def z_critical(level: float) -> float:
    """The two-sided standard-normal quantile for ``level`` (1.959964 for 0.95)."""
    return float(stats.norm.ppf(0.5 + check_level(level) / 2.0))


def t_critical(level: float, df: float) -> float:
    """The two-sided Student-t quantile for ``level`` with ``df`` (possibly fractional) df."""
    return float(stats.t.ppf(0.5 + check_level(level) / 2.0, df))


def wald(estimate: float, se: float, level: float, method: str, n: int | None = None, bounds=None, df: float | None = None) -> Estimate:
    """``estimate +- z * se`` (or ``t(df) * se`` when ``df`` is given) as an Estimate, clipped to
    ``bounds`` (low, high) when given."""
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return Estimate(float(estimate), float(se), None, None, level, method, n)
    half = (z_critical(level) if df is None else t_critical(level, df)) * se
    low, high = estimate - half, estimate + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Estimate(float(estimate), float(se), float(low), float(high), level, method, n)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The equal-tailed percentile interval of bootstrap ``samples`` (NaNs dropped)."""
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1.0 - check_level(level)) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)
