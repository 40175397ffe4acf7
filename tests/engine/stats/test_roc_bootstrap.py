"""The stratified bootstrap CI of the AUC: reproducible, consistent with DeLong where both hold, and
honest (wider, asymmetric) with few cases."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.results import StatsInputError
from engine.stats.roc import roc_auc, roc_auc_bootstrap


def test_bootstrap_ci_agrees_with_delong_on_many_cases_and_repeats_with_its_seed():
    rng = np.random.default_rng(3)
    truth = np.r_[np.ones(400), np.zeros(400)]
    scores = rng.normal(truth * 0.8)
    boot, delong = roc_auc_bootstrap(scores, truth, seed=5), roc_auc(scores, truth)
    assert boot.estimate == pytest.approx(delong.estimate, abs=1e-12)
    assert boot.se == pytest.approx(delong.se, rel=0.12)
    assert boot.ci_low == pytest.approx(delong.ci_low, abs=0.01) and boot.ci_high == pytest.approx(delong.ci_high, abs=0.01)
    assert boot == roc_auc_bootstrap(scores, truth, seed=5)
    assert boot.ci_low != roc_auc_bootstrap(scores, truth, seed=6).ci_low
    assert "bootstrap" in boot.method and boot.n == 800 and boot.level == 0.95


def test_every_replicate_keeps_both_classes_so_few_cases_still_give_an_interval():
    truth = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.4, 0.5, 0.2, 0.1])  # one of 6 pairs ranked wrongly
    result = roc_auc_bootstrap(scores, truth, n_resamples=500)
    assert result.estimate == pytest.approx(5 / 6)
    assert 0.0 <= result.ci_low < result.estimate and result.ci_high == 1.0  # bounded, lopsided
    perfect = roc_auc_bootstrap(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]), n_resamples=50)
    assert (perfect.ci_low, perfect.ci_high) == (1.0, 1.0)


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(StatsInputError, match="both normal and abnormal"):
        roc_auc_bootstrap([0.2, 0.3], [1, 1])
    with pytest.raises(StatsInputError, match="at least 2 replicates"):
        roc_auc_bootstrap([0.2, 0.3], [1, 0], n_resamples=1)
