"""Answer changes after the AI, reading times, and test-retest agreement on records counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.agreement import cohen_kappa
from engine.stats.ai_effect import ai_effect, reading_times
from engine.stats.icc import icc
from engine.stats.results import StatsInputError
from engine.stats.retest import intra_reader_agreement

# reader, case, first, final, ai, truth
READS = [
    ("r1", "c1", "benign", "malignant", "malignant", "malignant"),  # disagreed with a right AI, switched
    ("r1", "c2", "benign", "benign", "malignant", "malignant"),  # disagreed with a right AI, stayed
    ("r1", "c3", "benign", "malignant", "malignant", "benign"),  # disagreed with a wrong AI, switched
    ("r1", "c4", "benign", "benign", "benign", "benign"),  # agreed with a right AI
    ("r2", "c1", "malignant", "malignant", "malignant", "malignant"),
    ("r2", "c2", "malignant", "malignant", "malignant", "malignant"),
    ("r2", "c3", "benign", "benign", "malignant", "benign"),  # resisted a wrong AI
    ("r2", "c4", "malignant", "benign", "benign", "benign"),  # disagreed with a right AI, switched
    ("r2", "c5", "malignant", None, "benign", "benign"),  # no final answer: skipped
]


def test_changes_toward_right_and_wrong_ai():
    result = ai_effect(READS)
    assert result.n_reads == 8
    assert (result.changed.estimate, result.changed.n) == (3 / 8, 8)
    assert (result.toward_right_ai.estimate, result.toward_right_ai.n) == (2 / 3, 3)
    assert (result.toward_wrong_ai.estimate, result.toward_wrong_ai.n) == (1 / 2, 2)
    assert result.away_from_right_answer.estimate == pytest.approx(1 / 8)  # r1 c3
    assert result.accuracy_first.estimate == pytest.approx(5 / 8)
    assert result.accuracy_final.estimate == pytest.approx(6 / 8)
    assert (result.accuracy_first_ai_wrong.estimate, result.accuracy_final_ai_wrong.estimate) == (1.0, 0.5)
    assert result.toward_wrong_ai.ci_low < 0.5 < result.toward_wrong_ai.ci_high


def test_numbers_and_their_text_are_one_answer():
    result = ai_effect([("r", "c", 1, 1.0, "1", 1), ("r", "d", 0, "0", 1.0, 0)])
    assert result.changed.estimate == 0.0 and result.accuracy_final.estimate == 1.0


def test_reading_times_by_arm():
    times = [("unaided", s) for s in (30, 40, 50, 60, 70)] + [("aided", s) for s in (20, 22, 24, 26)]
    summary = {t.arm: t for t in reading_times(times)}
    assert (summary["unaided"].median, summary["unaided"].q1, summary["unaided"].q3) == (50, 40, 60)
    assert (summary["aided"].n, summary["aided"].median) == (4, 23)


def test_test_retest_uses_the_first_and_second_read_of_each_case():
    """Reader a rereads four cases (a third read of c1 is ignored); reader b rereads one case only
    and is left out. Nominal answers give unweighted kappa; interval ones ICC(A,1)."""
    records = [("a", "c1", 1), ("a", "c2", 2), ("a", "c3", 3), ("a", "c4", 1), ("b", "c1", 2),
               ("a", "c1", 1), ("a", "c2", 2), ("a", "c3", 2), ("a", "c4", 1), ("b", "c1", 2), ("a", "c1", 3)]
    (result,) = intra_reader_agreement(records, "nominal")
    assert (result.reader, result.n_cases) == ("a", 4)
    assert result.agreement.estimate == pytest.approx(cohen_kappa([1, 2, 3, 1], [1, 2, 2, 1]).estimate)
    (interval,) = intra_reader_agreement(records, "interval")
    assert interval.agreement.estimate == pytest.approx(icc(np.array([[1, 1], [2, 2], [3, 2], [1, 1]]))["ICC2"].estimate)
    (ordinal,) = intra_reader_agreement(records, "ordinal")
    assert ordinal.agreement.estimate == pytest.approx(cohen_kappa([1, 2, 3, 1], [1, 2, 2, 1], weights="quadratic").estimate)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ai_effect([("r", "c", 1, 1, 1)]), "expected reader, case, first, final, ai, truth"),
        (lambda: ai_effect([("r", "c", None, 1, 1, 1)]), "no reads"),
        (lambda: reading_times([("aided", -3)]), "zero or more seconds"),
        (lambda: reading_times([("aided", "soon")]), "not a number"),
        (lambda: intra_reader_agreement([("a", "c1", 1), ("a", "c1", 1)]), "no reader read two or more cases twice"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(StatsInputError, match=message):
        call()
