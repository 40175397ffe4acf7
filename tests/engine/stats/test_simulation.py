"""Simulated studies whose true AUC or agreement is known: the CIs cover the truth about as often
as they claim.

Each test draws many small studies from a fixed seed, so the outcome is deterministic, and checks
the share of 95% intervals that contain the true value. With 200-400 replications the binomial
SD of that share is about 0.015, so the bounds (0.90 to 0.99) fail only for a real bias in the
estimate or its SE, not by chance.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from engine.stats.agreement import cohen_kappa, fleiss_kappa, gwet_ac1
from engine.stats.alpha import krippendorff_alpha
from engine.stats.icc import icc
from engine.stats.mrmc import or_analysis
from engine.stats.ratings import RatingArray
from engine.stats.roc import roc_auc


def _coverage(intervals, truth) -> float:
    return float(np.mean([low <= truth <= high for low, high in intervals]))


def test_delong_ci_covers_the_binormal_auc():
    """Binormal scores with separation d: true AUC = Phi(d / sqrt(2)) = 0.760 for d = 1."""
    rng = np.random.default_rng(10)
    true_auc = stats.norm.cdf(1 / np.sqrt(2))
    truth = np.r_[np.ones(60), np.zeros(60)]
    intervals = []
    for _ in range(400):
        scores = np.r_[rng.normal(1, 1, 60), rng.normal(0, 1, 60)]
        result = roc_auc(scores, truth)
        intervals.append((result.ci_low, result.ci_high))
    assert 0.92 <= _coverage(intervals, true_auc) <= 0.98


def _mrmc_study(rng, separation, readers=5, normal=40, abnormal=40):
    """Roe-Metz-like scores: case, modality x case, reader x case and residual effects, each a
    normal variable; every reader has the same AUC in a modality, Phi(d_i / sqrt(2 * 1.04))."""
    m, cases = len(separation), normal + abnormal
    truth = np.r_[np.zeros(normal, bool), np.ones(abnormal, bool)]
    scores = (np.asarray(separation)[:, None, None] * truth + rng.normal(0, 0.6, cases)
              + rng.normal(0, 0.4, (m, 1, cases)) + rng.normal(0, 0.4, (1, readers, cases)) + rng.normal(0, 0.6, (m, readers, cases)))
    return RatingArray(tuple("AB"[:m]), tuple(str(j) for j in range(readers)), tuple(str(k) for k in range(cases)), truth, scores)


@pytest.mark.parametrize("covariance", ["jackknife", "delong"])
def test_or_analysis_cis_cover_the_true_aucs(covariance):
    """RRRC and FRRC intervals for the difference and for each modality cover the true AUCs
    (0.797 and 0.865); the RRRC p-value rejects a true difference of 0.07 more often than a
    level-0.05 test rejects a null, i.e. the test has power."""
    rng = np.random.default_rng(11)
    separation = (1.2, 1.6)
    true = stats.norm.cdf(np.array(separation) / np.sqrt(2 * 1.04))
    rrrc_diff, frrc_diff, single_a, single_b, rejections = [], [], [], [], 0
    for _ in range(250):
        result = or_analysis(_mrmc_study(rng, separation), covariance=covariance)
        diff = result.rrrc.comparisons[0]
        rrrc_diff.append((diff.ci_low, diff.ci_high))
        frrc_diff.append((result.frrc.comparisons[0].ci_low, result.frrc.comparisons[0].ci_high))
        single_a.append((result.rrrc.modalities[0].ci_low, result.rrrc.modalities[0].ci_high))
        single_b.append((result.rrrc.modalities[1].ci_low, result.rrrc.modalities[1].ci_high))
        rejections += result.rrrc.p_value < 0.05
    for intervals, value in ((rrrc_diff, true[0] - true[1]), (frrc_diff, true[0] - true[1]), (single_a, true[0]), (single_b, true[1])):
        assert 0.90 <= _coverage(intervals, value) <= 0.995
    assert rejections / 250 > 0.2


def test_rrrc_test_holds_its_size_under_the_null():
    """Equal modalities: the RRRC F test rejects at about its nominal 5% (Hillis' ddf is built
    for this; the test is known to be slightly conservative)."""
    rng = np.random.default_rng(12)
    p_values = [or_analysis(_mrmc_study(rng, (1.4, 1.4))).rrrc.p_value for _ in range(300)]
    assert 0.01 <= np.mean(np.array(p_values) < 0.05) <= 0.09


def _agreement_study(rng, theta, pi, cases, readers, missing=0.0):
    """Each reader copies the case's true category with probability theta, else draws from pi:
    every reader's marginal is pi, pairwise agreement is theta^2 + (1 - theta^2) sum(pi^2), so
    Cohen's and Fleiss' kappa are theta^2."""
    q = len(pi)
    true = rng.choice(q, size=cases, p=pi)
    copy = rng.random((cases, readers)) < theta
    ratings = np.where(copy, true[:, None], rng.choice(q, size=(cases, readers), p=pi)).astype(object)
    ratings[rng.random((cases, readers)) < missing] = None
    return ratings.tolist()


def test_cohen_kappa_ci_covers_theta_squared():
    rng = np.random.default_rng(13)
    pi = np.array([0.5, 0.3, 0.2])
    intervals = []
    for _ in range(300):
        ratings = _agreement_study(rng, 0.8, pi, 120, 2)
        result = cohen_kappa([r[0] for r in ratings], [r[1] for r in ratings], categories=range(3))
        intervals.append((result.ci_low, result.ci_high))
    assert 0.91 <= _coverage(intervals, 0.64) <= 0.99


def test_fleiss_and_ac1_cis_cover_the_truth_with_unequal_readers_per_case():
    """Five readers, a fifth of ratings missing at random; prevalence skewed (0.8/0.15/0.05),
    where kappa and AC1 differ: AC1's true value is (pa - pe1) / (1 - pe1), pe1 = sum pi(1-pi)/(q-1)."""
    rng = np.random.default_rng(14)
    pi = np.array([0.8, 0.15, 0.05])
    theta = 0.7
    pa = theta**2 + (1 - theta**2) * (pi**2).sum()
    pe1 = (pi * (1 - pi)).sum() / 2
    true_ac1 = (pa - pe1) / (1 - pe1)
    kappas, ac1s = [], []
    for _ in range(250):
        ratings = _agreement_study(rng, theta, pi, 100, 5, missing=0.2)
        k, a = fleiss_kappa(ratings, categories=range(3)), gwet_ac1(ratings, categories=range(3))
        kappas.append((k.ci_low, k.ci_high))
        ac1s.append((a.ci_low, a.ci_high))
    assert 0.90 <= _coverage(kappas, theta**2) <= 0.99
    assert 0.90 <= _coverage(ac1s, true_ac1) <= 0.99


def test_krippendorff_bootstrap_ci_covers_the_truth():
    """Nominal alpha estimates theta^2 as well (its small-sample correction vanishes in the
    population); 60 studies with a 200-replicate bootstrap each keep this fast."""
    rng = np.random.default_rng(15)
    pi = np.array([0.4, 0.35, 0.25])
    intervals = []
    for _ in range(60):
        ratings = _agreement_study(rng, 0.75, pi, 80, 3, missing=0.1)
        result = krippendorff_alpha(ratings, "nominal", categories=range(3), n_bootstrap=200, seed=1)
        intervals.append((result.ci_low, result.ci_high))
    assert _coverage(intervals, 0.75**2) >= 0.85


def test_icc_cis_cover_the_variance_ratios():
    """x_ij = case_i + reader_j + e_ij with variances 4, 1, 1: ICC(A,1) = 4/6, ICC(C,1) = 4/5.

    Eight readers: the Satterthwaite interval of ICC(A,1) is approximate and covers less than it
    claims when a large reader variance is estimated from few readers (about 0.90 with 4 readers
    here, 0.86 with 4 readers and 100 cases; 0.94 with 8; 0.95 with 20), as the icc module says."""
    rng = np.random.default_rng(16)
    absolute, consistency = [], []
    for _ in range(300):
        x = rng.normal(0, 2, (30, 1)) + rng.normal(0, 1, (1, 8)) + rng.normal(0, 1, (30, 8))
        result = icc(x)
        absolute.append((result["ICC2"].ci_low, result["ICC2"].ci_high))
        consistency.append((result["ICC3"].ci_low, result["ICC3"].ci_high))
    assert 0.90 <= _coverage(absolute, 4 / 6) <= 0.995
    assert 0.92 <= _coverage(consistency, 4 / 5) <= 0.98
