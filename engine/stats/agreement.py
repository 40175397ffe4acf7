"""Chance-corrected agreement between readers on categorical answers.

* ``percent_agreement``: share of agreeing reader pairs per case, averaged over cases;
* ``cohen_kappa``: two readers, unweighted or with linear/quadratic weights (Cohen 1960, 1968),
  large-sample SE of Fleiss, Cohen & Everitt (Psychol Bull 72:323-327, 1969);
* ``fleiss_kappa``: any number of readers, unequal numbers per case allowed (Fleiss, Psychol
  Bull 76:378-382, 1971, in Gwet's generalisation);
* ``gwet_ac1``: Gwet's first-order agreement coefficient, stable when one answer dominates
  (Gwet, Br J Math Stat Psychol 61:29-48, 2008).

The multi-reader statistics and their standard errors follow Gwet, *Handbook of Inter-Rater
Reliability*, 4th ed. (2014), chapters 2 and 5, for an infinite population of cases. Every CI is
``estimate +- t(n - 1) * SE`` over the n rated cases, as in Gwet (2014), clipped to the
coefficient's range; the tests reproduce the outputs printed by Gwet's R package irrCAC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.stats.categories import MISSING, CodedRatings, code_ratings
from engine.stats.results import Estimate, StatsInputError, check_level, wald

WEIGHTS = (None, "linear", "quadratic")


def agreement_weights(n_categories: int, weights: str | None) -> np.ndarray:
    """Agreement weights ``w[a, b]`` in [0, 1]: identity, ``1 - |a-b|/(q-1)`` or ``1 - (a-b)^2/(q-1)^2``."""
    if weights not in WEIGHTS:
        raise StatsInputError(f"kappa weights {weights!r} are not one of none, linear, quadratic")
    if weights is None or n_categories < 2:
        return np.eye(n_categories)
    distance = np.abs(np.subtract.outer(np.arange(n_categories), np.arange(n_categories))) / (n_categories - 1)
    return 1.0 - (distance if weights == "linear" else distance**2)


def cohen_kappa(first, second, weights: str | None = None, categories=None, level: float = 0.95) -> Estimate:
    """Cohen's kappa between two readers, with the Fleiss-Cohen-Everitt standard error.

    ``kappa = (po - pe) / (1 - pe)`` with observed and chance agreement weighted by
    ``agreement_weights`` (Cohen, Educ Psychol Meas 20:37, 1960; weighted: Psychol Bull 70:213,
    1968). Weights need ordered categories: pass ``categories`` (the full scale) so that an
    answer nobody gave still counts in the distances. Cases either reader skipped are dropped.

    The SE is the non-null large-sample SE of Fleiss, Cohen & Everitt (1969); the CI uses t with
    n - 1 df like Gwet's (statsmodels' ``kappa_low``/``kappa_upp`` use z, a hair narrower).
    scikit-learn's ``cohen_kappa_score`` gives the same estimate (it weights by the categories
    it finds, so it agrees only when every category was used); statsmodels' ``cohens_kappa``
    gives the same SE.
    """
    level = check_level(level)
    first, second = list(first), list(second)
    if len(first) != len(second):
        raise StatsInputError(f"Cohen's kappa: {len(first)} ratings from the first reader but {len(second)} from the second")
    coded = code_ratings([[a, b] for a, b in zip(first, second)], categories, "Cohen's kappa")
    both = (coded.codes != MISSING).all(axis=1)
    n = int(both.sum())
    if n < 2:
        raise StatsInputError("Cohen's kappa needs at least two cases rated by both readers")
    q = len(coded.categories)
    table = np.zeros((q, q))
    np.add.at(table, (coded.codes[both, 0], coded.codes[both, 1]), 1.0)
    return kappa_from_table(table, weights, level)


def kappa_from_table(table, weights: str | None = None, level: float = 0.95) -> Estimate:
    """Cohen's kappa from a ``(q, q)`` contingency table of counts (rows: first reader)."""
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise StatsInputError(f"Cohen's kappa needs a square table, not one of shape {counts.shape}")
    n = counts.sum()
    p = counts / n
    w = agreement_weights(counts.shape[0], weights)
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(rows, cols)).sum())
    name = f"Cohen's kappa ({weights or 'unweighted'}), Fleiss-Cohen-Everitt SE, t CI"
    if pe >= 1.0:
        return Estimate(float("nan"), None, None, None, level, name + " (undefined: chance agreement is 1)", int(n))
    kappa = (po - pe) / (1.0 - pe)
    row_mean, col_mean = w @ cols, w.T @ rows
    spread = (p * (w - np.add.outer(row_mean, col_mean) * (1.0 - kappa)) ** 2).sum()
    variance = (spread - (kappa - pe * (1.0 - kappa)) ** 2) / (n * (1.0 - pe) ** 2)
    return wald(kappa, float(np.sqrt(max(variance, 0.0))), level, name, int(n), bounds=(-1.0, 1.0), df=n - 1)


@dataclass(frozen=True)
class _PerCase:
    """Per-case pieces shared by percent agreement, Fleiss' kappa and AC1 (Gwet 2014, ch. 2).

    Attributes:
        pairs: ``(n,)`` True for a case rated by two or more readers.
        agree: ``(n,)`` share of agreeing reader pairs on each case (0 where ``pairs`` is False).
        shares: ``(n, q)`` share of a case's readers choosing each category.
    """

    pairs: np.ndarray
    agree: np.ndarray
    shares: np.ndarray

    @property
    def n(self) -> int:
        """Cases rated by at least one reader."""
        return int(self.pairs.size)

    @property
    def n_pairs(self) -> int:
        """Cases rated by two or more readers."""
        return int(self.pairs.sum())

    @property
    def pa(self) -> float:
        return float(self.agree[self.pairs].mean())

    def linearised(self, per_case: np.ndarray, estimate: float) -> float:
        """Gwet's SE from per-case linearised values whose mean is ``estimate``."""
        return float(np.sqrt(((per_case - estimate) ** 2).sum() / (self.n * (self.n - 1))))


def _per_case(coded: CodedRatings) -> _PerCase:
    counts = coded.counts.astype(np.float64)
    counts = counts[counts.sum(axis=1) >= 1]
    per_case = counts.sum(axis=1)
    pairs = per_case >= 2
    if pairs.sum() < 2:
        raise StatsInputError("agreement needs at least two cases rated by two or more readers")
    agree = np.zeros(per_case.size)
    agree[pairs] = (counts[pairs] * (counts[pairs] - 1)).sum(axis=1) / (per_case[pairs] * (per_case[pairs] - 1))
    return _PerCase(pairs, agree, counts / per_case[:, None])


def percent_agreement(ratings, categories=None, level: float = 0.95) -> Estimate:
    """Share of agreeing reader pairs per case, averaged over cases rated by two or more readers.

    With two readers this is the share of cases on which they agree. SE: Gwet (2014), section 5.
    """
    level = check_level(level)
    cases = _per_case(code_ratings(ratings, categories, "percent agreement"))
    pa = cases.pa
    se = cases.linearised(np.where(cases.pairs, cases.n / cases.n_pairs * cases.agree, 0.0), pa)
    return wald(pa, se, level, "percent agreement (pairs of readers), Gwet (2014) SE, t CI", cases.n_pairs,
                bounds=(0.0, 1.0), df=cases.n - 1)


def _chance_corrected(ratings, categories, level, kind: str) -> Estimate:
    level = check_level(level)
    coded = code_ratings(ratings, categories, kind)
    cases = _per_case(coded)
    q = len(coded.categories)
    pa, shares = cases.pa, cases.shares
    pi = shares.mean(axis=0)
    if kind == "Fleiss' kappa":
        pe, pe_case = float((pi**2).sum()), shares @ pi
        name = "Fleiss' kappa (Gwet's generalisation, unequal readers per case), Gwet (2008) SE, t CI"
    else:
        if q < 2:
            raise StatsInputError("Gwet's AC1 needs at least two categories (pass the full answer scale)")
        pe, pe_case = float((pi * (1 - pi)).sum() / (q - 1)), shares @ (1 - pi) / (q - 1)
        name = "Gwet's AC1, Gwet (2008) SE, t CI"
    if pe >= 1.0:
        return Estimate(float("nan"), None, None, None, level, name + " (undefined: chance agreement is 1)", cases.n_pairs)
    coefficient = (pa - pe) / (1 - pe)
    per_case = np.where(cases.pairs, cases.n / cases.n_pairs * (cases.agree - pe) / (1 - pe), 0.0)
    se = cases.linearised(per_case - 2 * (1 - coefficient) * (pe_case - pe) / (1 - pe), coefficient)
    return wald(coefficient, se, level, name, cases.n_pairs, bounds=(-1.0, 1.0), df=cases.n - 1)


def fleiss_kappa(ratings, categories=None, level: float = 0.95) -> Estimate:
    """Fleiss' kappa for any number of readers; cases may have different numbers of readers.

    ``kappa = (pa - pe) / (1 - pe)`` where ``pa`` averages, over cases with two or more readers,
    the share of agreeing reader pairs, and ``pe = sum_k pi_k^2`` with ``pi_k`` the mean share of
    a case's readers choosing category k (Fleiss 1971; unequal readers per case and the SE:
    Gwet 2014, ch. 2 and 5). With equal readers per case it is Fleiss' kappa exactly (as
    statsmodels' ``fleiss_kappa``); Fleiss' own SE assumes kappa = 0, which is why it is not used.

    Args:
        ratings: ``(cases, readers)``; ``None``/NaN for a missing rating.
        categories: the full answer scale (optional for kappa, it only labels the codes).
        level: confidence level.
    """
    return _chance_corrected(ratings, categories, level, "Fleiss' kappa")


def gwet_ac1(ratings, categories=None, level: float = 0.95) -> Estimate:
    """Gwet's AC1: chance agreement ``pe = sum_k pi_k (1 - pi_k) / (q - 1)``.

    Unlike kappa it does not collapse when one answer dominates (the "kappa paradox" of high
    agreement with low kappa; Gwet 2008). ``q`` is the number of categories, so pass the full
    answer scale in ``categories`` when some answer was never given.
    """
    return _chance_corrected(ratings, categories, level, "Gwet's AC1")
