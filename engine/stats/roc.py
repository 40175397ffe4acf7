"""Empirical ROC AUC (Mann-Whitney, ties count 1/2) and DeLong's structural components.

The structural components are the per-case pieces of the Mann-Whitney statistic that DeLong's
variance, the case jackknife of the OR analysis and the MRMC covariances are all built from:

* ``v10[a]``: for abnormal case ``a``, the share of normal cases it outranks (ties 1/2);
* ``v01[b]``: for normal case ``b``, the share of abnormal cases that outrank it (ties 1/2).

Their means are the AUC. Computed from sorted scores, so one AUC costs ``O(n log n)``, not
``O(n0 * n1)`` (Sun & Xu, "Fast implementation of DeLong's algorithm", IEEE SPL 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.stats.results import Estimate, StatsInputError, percentile_interval, wald


@dataclass(frozen=True)
class StructuralComponents:
    """DeLong's structural components of one empirical AUC.

    Attributes:
        v10: ``(n1,)`` one value per abnormal (truth 1) case.
        v01: ``(n0,)`` one value per normal (truth 0) case.
    """

    v10: np.ndarray
    v01: np.ndarray

    @property
    def auc(self) -> float:
        return float(self.v10.mean())


def split_by_truth(scores, truth, what: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """``(abnormal, normal)`` scores from a score vector and a 0/1 truth vector of the same length."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(truth).ravel()
    if values.shape != labels.shape:
        raise StatsInputError(f"{what}: {values.size} scores but {labels.size} truth values")
    if not np.isfinite(values).all():
        raise StatsInputError(f"{what}: scores must be finite numbers (found NaN or infinity)")
    if not np.isin(labels, (0, 1, True, False)).all():
        raise StatsInputError(f"{what}: truth must be 0 (normal) or 1 (abnormal)")
    positive = labels.astype(bool)
    if positive.all() or not positive.any():
        raise StatsInputError(f"{what}: the AUC needs both normal and abnormal cases")
    return values[positive], values[~positive]


def structural_components(abnormal: np.ndarray, normal: np.ndarray) -> StructuralComponents:
    """DeLong's components of the Mann-Whitney AUC of ``abnormal`` over ``normal`` scores."""
    sorted_normal, sorted_abnormal = np.sort(normal), np.sort(abnormal)
    below = np.searchsorted(sorted_normal, abnormal, side="left")
    tied = np.searchsorted(sorted_normal, abnormal, side="right") - below
    v10 = (below + 0.5 * tied) / normal.size
    above_start = np.searchsorted(sorted_abnormal, normal, side="right")
    tied = above_start - np.searchsorted(sorted_abnormal, normal, side="left")
    v01 = (abnormal.size - above_start + 0.5 * tied) / abnormal.size
    return StructuralComponents(v10, v01)


def roc_auc(scores, truth, level: float = 0.95) -> Estimate:
    """Empirical (trapezoidal) ROC AUC with DeLong's standard error and a Wald CI.

    The AUC is the Mann-Whitney statistic: the chance that an abnormal case scores above a normal
    one, ties counting 1/2 (Bamber, J Math Psychol 1975). Its variance is DeLong's
    ``S10 / n1 + S01 / n0`` from the structural components (DeLong, DeLong & Clarke-Pearson,
    Biometrics 44:837-845, 1988). The CI is ``AUC +- z * SE`` clipped to [0, 1].

    Args:
        scores: one score per case, higher meaning "more likely abnormal".
        truth: one 0/1 label per case (1 = abnormal).
        level: confidence level.
    """
    abnormal, normal = split_by_truth(scores, truth)
    parts = structural_components(abnormal, normal)
    variance = _delong_variance(parts)
    return wald(parts.auc, float(np.sqrt(variance)), level, "empirical AUC (Mann-Whitney), DeLong SE, Wald CI",
                abnormal.size + normal.size, bounds=(0.0, 1.0))


def _delong_variance(parts: StructuralComponents) -> float:
    s10 = parts.v10.var(ddof=1) if parts.v10.size > 1 else 0.0
    s01 = parts.v01.var(ddof=1) if parts.v01.size > 1 else 0.0
    return float(s10 / parts.v10.size + s01 / parts.v01.size)


def roc_curve(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    """The empirical ROC curve ``(fpr, tpr)`` from (0, 0) to (1, 1), one point per distinct score.

    Cutting at each distinct score from the highest down ("abnormal" when score >= cut) gives the
    curve whose trapezoidal area is ``roc_auc``'s Mann-Whitney estimate: tied scores move both
    rates at once, a diagonal step that counts the ties 1/2.
    """
    abnormal, normal = split_by_truth(scores, truth)
    cuts = np.unique(np.concatenate([abnormal, normal]))[::-1]
    tpr = (abnormal[None, :] >= cuts[:, None]).mean(axis=1)
    fpr = (normal[None, :] >= cuts[:, None]).mean(axis=1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def roc_auc_bootstrap(scores, truth, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Empirical ROC AUC with a stratified percentile-bootstrap CI.

    Abnormal and normal cases are resampled with replacement separately (each stratum keeps its
    size, so every replicate has both), the AUC is recomputed on each replicate, and the CI is the
    equal-tailed percentile interval of the replicates; the SE is their standard deviation
    (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13; stratified resampling
    as in Carpenter & Bithell, Stat Med 19:1141-1164, 2000). With few cases it is wider and less
    symmetric than DeLong's Wald interval, and honest about it.

    Args:
        scores: one score per case, higher meaning "more likely abnormal".
        truth: one 0/1 label per case (1 = abnormal).
        level: confidence level.
        n_resamples: bootstrap replicates (at least 2).
        seed: seeds the resampling, so the interval is reproducible.

    Raises:
        StatsInputError: fewer than 2 replicates, or scores and labels that ``split_by_truth`` refuses.
    """
    if n_resamples < 2:
        raise StatsInputError(f"the bootstrap needs at least 2 replicates, got {n_resamples}")
    abnormal, normal = split_by_truth(scores, truth)
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_resamples)
    for r in range(n_resamples):
        replicates[r] = structural_components(rng.choice(abnormal, abnormal.size), rng.choice(normal, normal.size)).auc
    low, high = percentile_interval(replicates, level)
    return Estimate(structural_components(abnormal, normal).auc, float(replicates.std(ddof=1)), low, high, level,
                    f"empirical AUC (Mann-Whitney), stratified percentile bootstrap ({n_resamples} replicates, seed {seed})",
                    abnormal.size + normal.size)
