"""Diagnostic performance of binary answers against ground truth, with Wilson intervals.

Accuracy, sensitivity and specificity are proportions; their CIs are Wilson score intervals
(Wilson, JASA 22:209-212, 1927), which keep their coverage near 0 and 1 where the Wald interval
fails (Brown, Cai & DasGupta, Stat Sci 16:101-133, 2001). The empirical ROC AUC with DeLong's
SE is ``engine.stats.roc.roc_auc``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.stats.results import Estimate, StatsInputError, check_level, z_critical


def wilson_interval(successes: int, trials: int, level: float = 0.95, what: str = "proportion") -> Estimate:
    """A proportion with its Wilson score interval (SE is the binomial ``sqrt(p(1-p)/n)``).

    With no trials the proportion is NaN and has no interval.
    """
    level = check_level(level)
    if trials < 0 or successes < 0 or successes > trials:
        raise StatsInputError(f"{what}: {successes} successes out of {trials} trials is not a proportion")
    method = f"{what}, Wilson score interval"
    if trials == 0:
        return Estimate(float("nan"), None, None, None, level, method, 0)
    p = successes / trials
    z = z_critical(level)
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return Estimate(p, math.sqrt(p * (1 - p) / trials), max(0.0, centre - half), min(1.0, centre + half), level, method, trials)


@dataclass(frozen=True)
class DiagnosticPerformance:
    """A reader's (or the AI's) binary answers against the truth.

    Attributes:
        tp, fp, tn, fn: the confusion matrix.
        accuracy, sensitivity, specificity: proportions with Wilson CIs.
    """

    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: Estimate
    sensitivity: Estimate
    specificity: Estimate

    def to_dict(self) -> dict:
        return asdict(self)


def _binary(values, what: str) -> np.ndarray:
    array = np.asarray(values).ravel()
    if not np.isin(array, (0, 1, True, False)).all():
        raise StatsInputError(f"{what} must be 0/1 (or False/True)")
    return array.astype(bool)


def diagnostic_performance(answers, truth, level: float = 0.95) -> DiagnosticPerformance:
    """Confusion matrix, accuracy, sensitivity and specificity of 0/1 ``answers`` against 0/1 ``truth``.

    Raises:
        StatsInputError: answers and truth of different lengths or not 0/1.
    """
    said, actual = _binary(answers, "answers"), _binary(truth, "truth")
    if said.shape != actual.shape:
        raise StatsInputError(f"{said.size} answers but {actual.size} truth values")
    tp, fp = int((said & actual).sum()), int((said & ~actual).sum())
    tn, fn = int((~said & ~actual).sum()), int((~said & actual).sum())
    return DiagnosticPerformance(
        tp, fp, tn, fn,
        wilson_interval(tp + tn, said.size, level, "accuracy"),
        wilson_interval(tp, tp + fn, level, "sensitivity"),
        wilson_interval(tn, tn + fp, level, "specificity"),
    )
