"""Reliance on the AI split by its frozen uncertainty: counts, Wilson intervals (checked against
statsmodels' independent implementation), the too-few-cases warning and the input checks."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.proportion import proportion_confint

from engine.stats.ai_reliance import MIN_CASES, ai_reliance
from engine.stats.results import StatsInputError


def _records():
    """Two readers; the AI says "pos" everywhere. It is sure of c1..c3 and flags c4, c5 uncertain.
    Reader a follows it everywhere; reader b follows it where it is sure and answers the truth
    where it is not; one read without an answer and two reads of an unmeasured case are skipped."""
    truth = {"c1": "pos", "c2": "neg", "c3": "pos", "c4": "neg", "c5": "pos", "c6": "neg"}
    flagged = {"c1": False, "c2": False, "c3": False, "c4": True, "c5": True, "c6": None}
    rows = []
    for case, right in truth.items():
        rows.append(("a", case, "pos", "pos", right, flagged[case]))
        rows.append(("b", case, "pos" if flagged[case] is False else right, "pos", right, flagged[case]))
    rows.append(("c", "c1", None, "pos", "pos", False))
    return rows


def _wilson(successes: int, trials: int):
    return pytest.approx(proportion_confint(successes, trials, alpha=0.05, method="wilson"), abs=1e-9)


def test_splits_count_reads_cases_and_readers_and_give_wilson_intervals() -> None:
    result = ai_reliance(_records())
    sure, unsure = result.sure, result.unsure
    assert (sure.flagged, sure.n_reads, sure.n_cases, sure.n_readers) == (False, 6, 3, 2)
    assert (unsure.flagged, unsure.n_reads, unsure.n_cases, unsure.n_readers) == (True, 4, 2, 2)
    assert result.unmeasured == 2
    # sure: every read agrees with the AI; right on c1 and c3 (4 of 6 reads); the AI right on 2 of 3 cases
    assert (sure.agreement.estimate, sure.agreement.n) == (1.0, 6)
    assert (sure.agreement.ci_low, sure.agreement.ci_high) == _wilson(6, 6)
    assert sure.accuracy.estimate == pytest.approx(4 / 6) and (sure.accuracy.ci_low, sure.accuracy.ci_high) == _wilson(4, 6)
    assert sure.ai_accuracy.estimate == pytest.approx(2 / 3) and sure.ai_accuracy.n == 3
    # uncertain: a agrees twice, b once (on c5, where the truth is the AI's answer); a is wrong on c4
    assert unsure.agreement.estimate == pytest.approx(3 / 4) and (unsure.agreement.ci_low, unsure.agreement.ci_high) == _wilson(3, 4)
    assert unsure.accuracy.estimate == pytest.approx(3 / 4) and (unsure.accuracy.ci_low, unsure.accuracy.ci_high) == _wilson(3, 4)
    assert unsure.ai_accuracy.estimate == pytest.approx(1 / 2) and unsure.ai_accuracy.n == 2
    assert "Wilson" in sure.agreement.method and "not flagged" in sure.agreement.method


def test_a_split_with_too_few_cases_says_so_and_a_large_one_does_not() -> None:
    result = ai_reliance(_records())
    assert "too few cases" in result.unsure.too_few and "2 case(s) flagged uncertain" in result.unsure.too_few
    assert result.sure.too_few is not None and str(MIN_CASES) in result.sure.too_few
    many = [("a", f"c{k}", "pos", "pos", "pos", k % 2 == 0) for k in range(2 * MIN_CASES)]
    found = ai_reliance(many)
    assert found.sure.too_few is None and found.unsure.too_few is None
    assert found.sure.n_cases == found.unsure.n_cases == MIN_CASES


def test_an_empty_split_has_no_interval_rather_than_a_made_up_one() -> None:
    result = ai_reliance([("a", "c1", "pos", "pos", "pos", False)])
    assert result.unsure.n_reads == 0 and math.isnan(result.unsure.agreement.estimate)
    assert result.unsure.agreement.ci_low is None and result.unsure.too_few is not None


def test_reads_without_truth_count_for_agreement_but_not_accuracy() -> None:
    result = ai_reliance([("a", "c1", "pos", "pos", None, False), ("a", "c2", "neg", "pos", "neg", False)])
    assert result.sure.agreement.n == 2 and result.sure.accuracy.n == 1 and result.sure.accuracy.estimate == 1.0
    assert result.sure.ai_accuracy.n == 1 and result.sure.ai_accuracy.estimate == 0.0


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(StatsInputError, match="record 1 has 5 fields"):
        ai_reliance([("a", "c1", "pos", "pos", "pos")])
    with pytest.raises(StatsInputError, match="flag 'yes'"):
        ai_reliance([("a", "c1", "pos", "pos", "pos", "yes")])
    with pytest.raises(StatsInputError, match="1 read\\(s\\) showed an AI output whose uncertainty was not measured"):
        ai_reliance([("a", "c1", "pos", "pos", "pos", None)])
