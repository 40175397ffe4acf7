"""AUC, DeLong variance, Wilson intervals and the confusion-matrix figures against independent references."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.diagnostic import diagnostic_performance, wilson_interval
from engine.stats.results import StatsInputError
from engine.stats.roc import roc_auc, structural_components
from tests.engine.stats.helpers import printed


def test_auc_with_ties_equals_sklearn():
    """Ratings on a 1-5 scale tie often; ties count 1/2, as in scikit-learn's trapezoidal AUC."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 150)
    scores = np.clip(np.round(2.5 + truth + rng.normal(0, 1.2, 150)), 1, 5)
    assert roc_auc(scores, truth).estimate == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


def test_delong_components_equal_the_pairwise_definition():
    """V10, V01 from sorted scores equal the means of the n1 x n0 matrix of psi(X, Y) (DeLong
    1988, eq. 2 and 3), and the variance is S10/n1 + S01/n0 computed from them."""
    rng = np.random.default_rng(1)
    abnormal = np.round(rng.normal(1, 1, 37), 1)
    normal = np.round(rng.normal(0, 1, 52), 1)
    psi = (abnormal[:, None] > normal[None, :]) + 0.5 * (abnormal[:, None] == normal[None, :])
    parts = structural_components(abnormal, normal)
    np.testing.assert_allclose(parts.v10, psi.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(parts.v01, psi.mean(axis=0), atol=1e-12)
    expected = psi.mean(axis=1).var(ddof=1) / 37 + psi.mean(axis=0).var(ddof=1) / 52
    result = roc_auc(np.concatenate([abnormal, normal]), np.r_[np.ones(37), np.zeros(52)])
    assert result.se == pytest.approx(np.sqrt(expected), rel=1e-12)
    assert result.ci_low < result.estimate < result.ci_high


def test_van_dyke_reader_auc_matches_or_dbm(van_dyke):
    """A single reader's AUC from roc_auc equals OR-DBM's 0.91964573 (reader 1, treatment 1)."""
    printed(roc_auc(van_dyke.scores[0, 0], van_dyke.truth).estimate, "0.91964573")


@pytest.mark.parametrize(
    "successes, trials, low, high",
    [(81, 263, "0.2553", "0.3662"), (15, 148, "0.0624", "0.1605"), (0, 20, "0.0000", "0.1611"), (1, 29, "0.0061", "0.1718")],
)
def test_wilson_matches_newcombe_and_statsmodels(successes, trials, low, high):
    """Newcombe (Stat Med 17:857-872, 1998), table II, method 3 (score interval without continuity
    correction), printed to 4 decimals; statsmodels' ``proportion_confint(method="wilson")`` to 1e-12."""
    from statsmodels.stats.proportion import proportion_confint

    result = wilson_interval(successes, trials)
    printed(result.ci_low, low)
    printed(result.ci_high, high)
    reference = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    assert (result.ci_low, result.ci_high) == pytest.approx(reference, abs=1e-12)


def test_confusion_matrix_and_rates():
    answers = [1, 1, 1, 0, 0, 0, 0, 1, 0, 0]
    truth = [1, 1, 0, 0, 0, 0, 1, 1, 0, 0]
    result = diagnostic_performance(answers, truth)
    assert (result.tp, result.fp, result.tn, result.fn) == (3, 1, 5, 1)
    assert result.sensitivity.estimate == pytest.approx(0.75)
    assert result.specificity.estimate == pytest.approx(5 / 6)
    assert result.accuracy.estimate == pytest.approx(0.8)
    assert result.sensitivity.n == 4 and result.specificity.n == 6


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: roc_auc([0.1, 0.2], [1, 1]), "both normal and abnormal"),
        (lambda: roc_auc([0.1, np.nan], [1, 0]), "finite"),
        (lambda: roc_auc([0.1, 0.2], [1, 2]), "0 \\(normal\\) or 1"),
        (lambda: wilson_interval(5, 3), "not a proportion"),
        (lambda: diagnostic_performance([1, 0], [1]), "2 answers but 1 truth"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(StatsInputError, match=message):
        call()
