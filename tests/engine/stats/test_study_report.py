"""The study report from long-format records (no database): figures right within their CIs on a
binormal study with known truth, sections that do not apply say why, the plots are drawn."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.figures import figure_bytes
from engine.stats.roc import roc_auc
from engine.stats.study_figures import report_figures
from engine.stats.study_reads import ArmFacts
from engine.stats.study_report import NotApplicable, study_report
from engine.stats.study_tables import report_tables
from tests.engine.stats.study_simulation import (
    CASES,
    CLASSES,
    POSITIVE,
    QUESTIONS,
    READERS,
    SEPARATION,
    binormal_records,
    diseased,
    study_facts,
    true_auc,
    true_kappa,
    true_sensitivity,
)
from tests.engine.stats.study_simulation import record as _record

@pytest.fixture(scope="module")
def binormal():
    answers, records = binormal_records()
    return answers, study_report(study_facts(), records)


def test_arm_aucs_and_their_difference_lie_within_the_mrmc_intervals(binormal) -> None:
    """True AUCs Phi(mu / sqrt 2) = 0.760 and 0.921 lie in the RRRC single-arm CIs; so does -0.161.

    Over seeds 0-11 these five intervals (with the kappa ones below) covered the truth 59 times in
    60, as 95% intervals should; the seed is fixed so the test is reproducible.
    """
    _, report = binormal
    result = report.mrmc.result
    assert result.modalities == ("unaided", "ai+gradcam")
    assert report.positive.name == POSITIVE and "p_lesion" in report.positive.rule
    for interval in result.rrrc.modalities:
        truth = true_auc(SEPARATION[interval.modality])
        assert interval.ci_low < truth < interval.ci_high, (interval, truth)
    difference = result.rrrc.comparisons[0]
    assert (difference.first, difference.second) == ("unaided", "ai+gradcam")
    assert difference.ci_low < true_auc(1.0) - true_auc(2.0) < difference.ci_high
    assert difference.ci_high < 0  # 60 cases, 5 readers: the AI arm is better, and the test says so


def test_reader_rocs_match_roc_auc_and_their_curves_integrate_to_it(binormal) -> None:
    """Each reader's AUC is roc_auc of their scores; the plotted curve's trapezoid area equals it."""
    answers, report = binormal
    assert len(report.roc.curves) == READERS * 2
    for curve in report.roc.curves:
        j = int(curve.reader[1:])
        scores = [answers[j, k, curve.condition].probability for k in range(CASES)]
        assert curve.auc.estimate == pytest.approx(roc_auc(scores, [diseased(k) for k in range(CASES)]).estimate)
        assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(curve.auc.estimate)
        assert curve.auc.estimate == pytest.approx(report.mrmc.result.auc[result_index(report, curve.condition), j])


def result_index(report, condition):
    return report.mrmc.result.modalities.index(condition)


def test_sensitivity_specificity_and_kappa_cover_their_true_values(binormal) -> None:
    """Wilson intervals of sensitivity and specificity cover Phi(mu/2) for most readers (95% each);
    Fleiss' kappa's CI covers (2s - 1)^2 in both arms; confusion matrices add up to the cases."""
    _, report = binormal
    rows = [r for r in report.performance.rows if r.reader != "AI"]
    assert len(rows) == READERS * 2
    covered = 0
    for row in rows:
        truth = true_sensitivity(SEPARATION[row.condition])
        assert row.matrix.sum() == CASES and row.matrix[0].sum() == CASES // 2
        assert row.accuracy.estimate == pytest.approx(np.trace(row.matrix) / CASES)
        covered += (row.sensitivity.ci_low < truth < row.sensitivity.ci_high) + (row.specificity.ci_low < truth < row.specificity.ci_high)
    assert covered >= 0.85 * 2 * len(rows)
    for condition in report.agreement.conditions:
        truth = true_kappa(SEPARATION[condition.condition])
        assert condition.fleiss.ci_low < truth < condition.fleiss.ci_high, (condition.condition, condition.fleiss, truth)
        assert condition.kappa.shape == (READERS, READERS) and np.allclose(np.diag(condition.kappa), 1)


def test_times_helpfulness_and_pairwise_count_what_was_answered(binormal) -> None:
    _, report = binormal
    times = {t.arm: t for t in report.reading_times.times}
    assert times["unaided"].n == READERS * CASES and times["unaided"].median > times["ai+gradcam"].median
    (helpful,) = report.helpfulness
    assert helpful.condition == "ai+gradcam" and sum(helpful.counts) == READERS * CASES
    assert helpful.mean.estimate == pytest.approx(np.mean([(j + k) % 7 - 3 for j in range(READERS) for k in range(CASES)]))
    (pairwise,) = report.pairwise
    # "left" when k % 3; gradcam is on the left when k is odd
    gradcam = sum(1 for k in range(CASES) if k % 3 and k % 2) * READERS
    eigencam = sum(1 for k in range(CASES) if k % 3 and not k % 2) * READERS
    assert pairwise.preferred == {"gradcam": gradcam, "eigencam": eigencam, "equal": sum(1 for k in range(CASES) if not k % 3) * READERS}
    assert (pairwise.left, pairwise.right, pairwise.first_on_left) == (gradcam + eigencam, 0, READERS * CASES // 2)
    assert pairwise.share_first.estimate == pytest.approx(gradcam / (gradcam + eigencam))


def test_sections_that_do_not_apply_say_why(binormal) -> None:
    _, report = binormal
    assert isinstance(report.ai_effect, NotApplicable) and "sequential" in report.ai_effect.reason
    assert isinstance(report.spatial, NotApplicable) and "regions" in report.spatial.reason
    assert isinstance(report.retest, NotApplicable)
    sections = report_tables(report)
    assert [s.key for s in sections][:3] == ["design", "performance", "roc"]
    for section in sections:
        assert section.tables or section.note.startswith("Does not apply: ")


def test_a_counterbalanced_study_gets_no_mrmc_and_says_it_is_not_fully_crossed() -> None:
    _, records = binormal_records()
    half = [r for r in records if (int(r["reader"][1:]) + int(r["case"][4:]) // 2) % 2 == (r["arm"] == "unaided")]
    report = study_report(study_facts("counterbalanced"), half)
    assert isinstance(report.mrmc, NotApplicable) and "every reader to read every case" in report.mrmc.reason
    assert not isinstance(report.roc, NotApplicable) and not isinstance(report.agreement, NotApplicable)


def test_without_ground_truth_the_scored_sections_say_so() -> None:
    _, records = binormal_records()
    report = study_report(study_facts(), [{**r, "ground_truth": None} for r in records])
    for section in (report.performance, report.roc, report.mrmc):
        assert isinstance(section, NotApplicable) and "ground truth" in section.reason
    assert not isinstance(report.agreement, NotApplicable)


def test_sequential_answer_changes_pair_the_locked_first_read_with_the_aided_one() -> None:
    """Reader r0 switches to the AI on every case; r1 never changes. The AI is wrong on case 3."""
    arm = "ai+gradcam"
    truth = {f"S1-C{k}": CLASSES[k % 2] for k in range(4)}
    ai = {case: t for case, t in truth.items()}
    ai["S1-C3"] = CLASSES[0]  # wrong (truth is CLASSES[1])
    first = {"S1-C0": CLASSES[1], "S1-C1": CLASSES[1], "S1-C2": CLASSES[0], "S1-C3": CLASSES[1]}
    records = []
    for reader in ("r0", "r1"):
        for case in truth:
            final = ai[case] if reader == "r0" else first[case]
            records.append(_record(reader, case, arm, "diagnosis", first[case], phase=1, truth=truth[case]))
            records.append(_record(reader, case, arm, "diagnosis", final, phase=2, truth=truth[case], ai=ai[case]))
    facts = study_facts("sequential", (ArmFacts(arm, True, "gradcam"),), QUESTIONS[:1], readers=2, cases=4)
    report = study_report(facts, records)
    ((name, effect),) = report.ai_effect.arms
    assert name == arm and effect.n_reads == 8
    # r0 first disagreed with a right AI on C0 and switched; with the wrong AI on C3 and switched
    assert (effect.toward_right_ai.estimate, effect.toward_wrong_ai.estimate) == (0.5, 0.5)
    assert effect.accuracy_first_ai_wrong.estimate == 1.0 and effect.accuracy_final_ai_wrong.estimate == 0.5
    assert [c.condition for c in report.agreement.conditions] == [f"{arm} (phase 1)", f"{arm} (phase 2)"]
    assert isinstance(report.mrmc, NotApplicable)  # no score question


def test_every_plot_is_drawn_and_encodes(binormal) -> None:
    _, report = binormal
    plots = report_figures(report)
    names = [p.name for p in plots]
    assert {"confusion", "accuracy", "roc", "kappa_matrix", "reader_auc", "auc_difference", "reading_times",
            "helpfulness", "pairwise_1"} <= set(names)
    roc = next(p for p in plots if p.name == "roc").figure
    assert len(roc.axes) == 2 and all(len(ax.lines) == READERS + 1 for ax in roc.axes)
    assert figure_bytes(roc, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in figure_bytes(roc, "svg")[:400]


def test_repeat_reads_give_each_readers_test_retest_kappa() -> None:
    """r0 repeats every answer (kappa 1); r1 flips one of four (kappa 0.5). Repeats stay out of
    the primary figures."""
    cases = [f"S1-C{k}" for k in range(4)]
    truth = {case: CLASSES[k % 2] for k, case in enumerate(cases)}
    records = []
    for reader in ("r0", "r1"):
        for k, case in enumerate(cases):
            records.append(_record(reader, case, "unaided", "diagnosis", truth[case], truth=truth[case]))
            again = truth[case] if reader == "r0" or k else CLASSES[1]
            records.append({**_record(reader, case, "unaided", "diagnosis", again, truth=truth[case], repeat=True), "session": 2})
    facts = study_facts(arms=(ArmFacts("unaided"),), questions=QUESTIONS[:1], readers=2, cases=4)
    report = study_report(facts, records)
    ((condition, retests),) = report.retest.conditions
    assert condition == "unaided" and [(r.reader, r.n_cases) for r in retests] == [("r0", 4), ("r1", 4)]
    assert retests[0].agreement.estimate == 1.0 and retests[1].agreement.estimate == pytest.approx(0.5)
    assert (report.n_reads, report.n_repeats) == (8, 8)
    assert all(row.accuracy.estimate == 1.0 for row in report.performance.rows)
