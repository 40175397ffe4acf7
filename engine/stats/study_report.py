"""Everything a reader-study paper reports, computed once from a closed study's records.

``study_report(facts, records, ...)`` turns the long-format records of a closed study
(``db.study_export``) into a ``StudyReport``: per reader and condition the confusion matrix,
accuracy, sensitivity and specificity with Wilson CIs; per-reader ROC curves and AUCs; the
agreement between readers; where readers and maps point; the MRMC comparison of conditions;
answer changes after the AI was shown; whether readers followed the AI more when it was sure
(its frozen uncertainty); test-retest agreement; reading times; helpfulness
ratings and pairwise explanation preferences. The window's dashboard, the HTML and the PDF
report all show this one object, so they cannot disagree.

A section that does not apply to the study (no ground truth, one reader, a design that is not
fully crossed, no region question...) is a ``NotApplicable`` with the one-line reason, never
left out. Each figure is computed by the ``engine.stats`` function that cites its method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from engine.stats.agreement import cohen_kappa, fleiss_kappa, gwet_ac1, percent_agreement
from engine.stats.ai_effect import AIEffect, ReadingTime, ai_effect, reading_times
from engine.stats.ai_reliance import AIReliance, ai_reliance
from engine.stats.alpha import krippendorff_alpha
from engine.stats.diagnostic import diagnostic_performance, wilson_interval
from engine.stats.mrmc import MRMCResult, or_analysis
from engine.stats.regions import region_mask
from engine.stats.results import Estimate, StatsInputError, check_level, wald
from engine.stats.retest import ReaderRetest, intra_reader_agreement
from engine.stats.roc import roc_auc, roc_curve
from engine.stats.spatial import CamVsReaderAgreement, cam_vs_reader_agreement
from engine.stats.study_reads import (
    PositiveClass,
    Read,
    StudyFacts,
    conditions_of,
    diagnosis_question,
    mrmc_ratings,
    positive_class,
    reads_from_records,
    score_of,
)

HELPFULNESS_SCALE = tuple(range(-3, 4))


@dataclass(frozen=True)
class NotApplicable:
    """A section that does not apply to this study, and why, in one line."""

    reason: str


@dataclass(frozen=True)
class ReaderPerformance:
    """One reader's (or the AI's) diagnoses in one condition against the ground truth.

    Attributes:
        labels: the answer options, the order of ``matrix``'s rows (truth) and columns (answer).
        matrix: counts, truth x answer.
        sensitivity, specificity: for the positive class, None when there is none.
    """

    reader: str
    condition: str
    labels: tuple[str, ...]
    matrix: np.ndarray
    accuracy: Estimate
    sensitivity: Estimate | None
    specificity: Estimate | None


@dataclass(frozen=True)
class PerformanceSection:
    question: str
    positive: str | None
    rows: tuple[ReaderPerformance, ...]


@dataclass(frozen=True)
class ReaderROC:
    """One reader's empirical ROC curve and AUC (DeLong SE) in one condition."""

    reader: str
    condition: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: Estimate


@dataclass(frozen=True)
class ROCSection:
    score: str
    positive: str
    curves: tuple[ReaderROC, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConditionAgreement:
    """Agreement between readers on the diagnosis in one condition.

    Attributes:
        kappa: ``(readers, readers)`` Cohen's kappa of each pair (1 on the diagonal, NaN where a
            pair shares fewer than two cases or kappa is undefined).
    """

    condition: str
    readers: tuple[str, ...]
    kappa: np.ndarray
    n_cases: int
    percent: Estimate
    fleiss: Estimate
    ac1: Estimate
    alpha: Estimate


@dataclass(frozen=True)
class AgreementSection:
    question: str
    categories: tuple[str, ...]
    conditions: tuple[ConditionAgreement, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpatialEntry:
    """A map method's agreement with readers' regions against the readers' own, in one condition."""

    question: str
    condition: str
    method: str
    result: CamVsReaderAgreement


@dataclass(frozen=True)
class SpatialSection:
    entries: tuple[SpatialEntry, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class MRMCSection:
    score: str
    positive: str
    result: MRMCResult


@dataclass(frozen=True)
class AIEffectSection:
    question: str
    arms: tuple[tuple[str, AIEffect], ...]


@dataclass(frozen=True)
class ConditionReliance:
    """Reliance on the AI in one condition that showed it (``engine.stats.ai_reliance``).

    Attributes:
        uncertainty_shown: whether readers saw the uncertainty (the arm's ``show_uncertainty``);
            where they did not, the split is by what the AI knew, not by what readers were told.
    """

    condition: str
    uncertainty_shown: bool
    result: AIReliance


@dataclass(frozen=True)
class AIRelianceSection:
    question: str
    conditions: tuple[ConditionReliance, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetestSection:
    question: str
    conditions: tuple[tuple[str, tuple[ReaderRetest, ...]], ...]


@dataclass(frozen=True)
class ReadingTimesSection:
    """Median and IQR of seconds per case by condition, and the seconds themselves (for plots)."""

    times: tuple[ReadingTime, ...]
    seconds: tuple[tuple[str, np.ndarray], ...]


@dataclass(frozen=True)
class HelpfulnessSummary:
    """Ratings -3..+3 of one question in one condition: counts per scale point and the mean."""

    question: str
    condition: str
    counts: tuple[int, ...]
    mean: Estimate


@dataclass(frozen=True)
class PairwisePreference:
    """Which of two maps readers preferred, and which side they picked (order drawn at random).

    Attributes:
        methods: the two methods compared (the question's options).
        preferred: how often each method was preferred, and "equal".
        share_first: of the decisive answers, the share preferring ``methods[0]`` (Wilson CI).
        left, right: how often the map on the left or right was picked (position bias).
        first_on_left: reads that drew ``methods[0]`` on the left.
    """

    question: str
    condition: str
    methods: tuple[str, str]
    preferred: Mapping[str, int]
    share_first: Estimate
    left: int
    right: int
    first_on_left: int


@dataclass(frozen=True)
class StudyReport:
    """The report of one study; every section is its result or a ``NotApplicable``.

    Attributes:
        notes: remarks on the data the report rests on (e.g. maps missing from the map store).
    """

    facts: StudyFacts
    level: float
    positive: PositiveClass | NotApplicable
    n_reads: int
    n_repeats: int
    n_drafts: int
    performance: PerformanceSection | NotApplicable
    roc: ROCSection | NotApplicable
    agreement: AgreementSection | NotApplicable
    spatial: SpatialSection | NotApplicable
    mrmc: MRMCSection | NotApplicable
    ai_effect: AIEffectSection | NotApplicable
    ai_reliance: AIRelianceSection | NotApplicable
    retest: RetestSection | NotApplicable
    reading_times: ReadingTimesSection | NotApplicable
    helpfulness: tuple[HelpfulnessSummary, ...] | NotApplicable
    pairwise: tuple[PairwisePreference, ...] | NotApplicable
    notes: tuple[str, ...] = ()

    def sections(self) -> tuple[tuple[str, str, Any], ...]:
        """``(key, title, section)`` in the order a report shows them."""
        return (
            ("performance", "Diagnostic performance against the ground truth", self.performance),
            ("roc", "ROC curves and AUCs per reader", self.roc),
            ("agreement", "Agreement between readers", self.agreement),
            ("spatial", "Map vs reader against reader vs reader (regions)", self.spatial),
            ("mrmc", "MRMC comparison of conditions (Obuchowski-Rockette)", self.mrmc),
            ("ai_effect", "Answer changes after the AI was shown", self.ai_effect),
            ("ai_reliance", "Did readers follow the AI more when it was sure?", self.ai_reliance),
            ("retest", "Test-retest agreement (repeat reads)", self.retest),
            ("reading_times", "Reading times", self.reading_times),
            ("helpfulness", "Helpfulness of the explanation", self.helpfulness),
            ("pairwise", "Pairwise explanation preference", self.pairwise),
        )


def _guard(compute: Callable[[], Any]) -> Any:
    """The section, or ``NotApplicable`` with the statistic's own one-line reason."""
    try:
        return compute()
    except StatsInputError as exc:
        return NotApplicable(str(exc))


def _by_condition(facts: StudyFacts, reads: Iterable[Read]) -> list[tuple[str, list[Read]]]:
    groups: dict[str, list[Read]] = {}
    for read in reads:
        groups.setdefault(read.condition, []).append(read)
    return [(name, groups[name]) for name in conditions_of(facts) if name in groups]


def _by_reader(facts: StudyFacts, reads: Iterable[Read]) -> list[tuple[str, list[Read]]]:
    groups: dict[str, list[Read]] = {}
    for read in reads:
        groups.setdefault(read.reader, []).append(read)
    order = [r for r in facts.readers if r in groups] + sorted(set(groups) - set(facts.readers))
    return [(name, groups[name]) for name in order]


def _performance(labels: Sequence[str], pairs: Sequence[tuple[str, str]], positive: str | None, level: float, who: str,
                 condition: str) -> ReaderPerformance:
    index = {label: k for k, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for truth, said in pairs:
        matrix[index[truth], index[said]] += 1
    accuracy = wilson_interval(int(np.trace(matrix)), len(pairs), level, "accuracy")
    sensitivity = specificity = None
    if positive is not None:
        binary = diagnostic_performance([said == positive for _, said in pairs], [t == positive for t, _ in pairs], level)
        sensitivity, specificity = binary.sensitivity, binary.specificity
    return ReaderPerformance(who, condition, tuple(labels), matrix, accuracy, sensitivity, specificity)


def performance_section(facts: StudyFacts, reads: Sequence[Read], positive: str | None, level: float) -> PerformanceSection:
    """Confusion matrices, accuracy, sensitivity and specificity per reader and condition, and the AI's."""
    question = diagnosis_question(facts, reads)
    labels = question.options
    rows = []
    for condition, group in _by_condition(facts, reads):
        for reader, mine in _by_reader(facts, group):
            pairs = [(r.truth, r.answers[question.key]) for r in mine if r.truth is not None and question.key in r.answers]
            if pairs:
                rows.append(_performance(labels, pairs, positive, level, reader, condition))
    ai = {r.case: (r.truth, r.ai) for r in reads if r.ai is not None and r.truth is not None}
    pairs = [pair for pair in ai.values() if pair[1] in labels]
    if pairs:
        rows.append(_performance(labels, pairs, positive, level, "AI", "frozen prediction"))
    if not rows:
        raise StatsInputError(f"no submitted answer to {question.key!r} on a case with a ground truth")
    return PerformanceSection(question.key, positive, tuple(rows))


def roc_section(facts: StudyFacts, reads: Sequence[Read], positive: str, level: float) -> ROCSection:
    """Per-reader empirical ROC curves and AUCs (DeLong SE) per condition."""
    score = score_of(facts, reads)
    curves, skipped = [], []
    for condition, group in _by_condition(facts, reads):
        for reader, mine in _by_reader(facts, group):
            scored = [(score.of(r, positive), r.truth == positive) for r in mine if r.truth is not None]
            scored = [(s, t) for s, t in scored if s is not None]
            try:
                values, truth = np.array([s for s, _ in scored]), np.array([t for _, t in scored])
                auc = roc_auc(values, truth, level)
                fpr, tpr = roc_curve(values, truth)
            except StatsInputError as exc:
                skipped.append(f"{reader}, {condition}: {exc}")
                continue
            curves.append(ReaderROC(reader, condition, fpr, tpr, auc))
    if not curves:
        raise StatsInputError("no reader scored both normal and abnormal cases" + (f" ({skipped[0]})" if skipped else ""))
    return ROCSection(score.description, positive, tuple(curves), tuple(skipped))


def _kappa_matrix(matrix: list[list], readers: int, categories: Sequence[str], level: float) -> np.ndarray:
    kappa = np.eye(readers)
    for a, b in combinations(range(readers), 2):
        first, second = [row[a] for row in matrix], [row[b] for row in matrix]
        try:
            kappa[a, b] = kappa[b, a] = cohen_kappa(first, second, None, categories, level).estimate
        except StatsInputError:
            kappa[a, b] = kappa[b, a] = np.nan
    return kappa


def agreement_section(facts: StudyFacts, reads: Sequence[Read], level: float) -> AgreementSection:
    """Pairwise Cohen's kappa, percent agreement, Fleiss' kappa, Gwet's AC1 and Krippendorff's
    alpha (nominal) on the diagnosis, per condition."""
    question = next(iter(facts.questions_of("single_choice")), None)
    if question is None:
        raise StatsInputError("no single-choice question to measure agreement on")
    categories = question.options
    out, skipped = [], []
    for condition, group in _by_condition(facts, reads):
        readers = [name for name, _ in _by_reader(facts, group)]
        if len(readers) < 2:
            skipped.append(f"{condition}: one reader")
            continue
        cases = sorted({r.case for r in group})
        row, column = {c: i for i, c in enumerate(cases)}, {name: j for j, name in enumerate(readers)}
        matrix: list[list] = [[None] * len(readers) for _ in cases]
        for read in group:
            matrix[row[read.case]][column[read.reader]] = read.answers.get(question.key)
        try:
            out.append(ConditionAgreement(
                condition, tuple(readers), _kappa_matrix(matrix, len(readers), categories, level), len(cases),
                percent_agreement(matrix, categories, level), fleiss_kappa(matrix, categories, level),
                gwet_ac1(matrix, categories, level), krippendorff_alpha(matrix, "nominal", categories, level),
            ))
        except StatsInputError as exc:
            skipped.append(f"{condition}: {exc}")
    if not out:
        raise StatsInputError("agreement needs two readers answering the same cases" + (f" ({skipped[0]})" if skipped else ""))
    return AgreementSection(question.key, tuple(categories), tuple(out), tuple(skipped))


def _on_grid(saliency: np.ndarray, grid: tuple[int, ...]) -> np.ndarray | None:
    values = np.asarray(saliency, dtype=np.float64)
    if values.shape == grid:
        return values
    if values.ndim == 2 and grid[0] == 1 and values.shape == grid[1:]:
        return values[None]
    return None


def spatial_section(
    facts: StudyFacts, reads: Sequence[Read], maps: Mapping[str, Mapping[str, np.ndarray]],
    grids: Mapping[str, Sequence[int]], threshold: float, measure: str, level: float,
) -> SpatialSection:
    """Each frozen map's agreement with readers' regions against reader-vs-reader agreement
    (``engine.stats.spatial.cam_vs_reader_agreement``), per region question, condition and method."""
    questions = facts.questions_of("region")
    if not questions:
        raise StatsInputError("the study asks for no regions")
    if not any(maps.values()):
        raise StatsInputError("no frozen map could be loaded for the study's cases")
    entries, skipped = [], []
    methods = sorted({method for by_method in maps.values() for method in by_method})
    for question in questions:
        for condition, group in _by_condition(facts, reads):
            regions: dict[str, list[np.ndarray]] = {}
            for read in group:
                if question.key in read.answers and read.case in grids:
                    grid = tuple(int(n) for n in grids[read.case])
                    regions.setdefault(read.case, []).append(
                        region_mask(read.answers[question.key], grid, f"{read.reader}, {read.case}, {question.key}"))
            for method in methods:
                cases = []
                for case, masks in regions.items():
                    saliency = maps.get(case, {}).get(method)
                    on_grid = None if saliency is None else _on_grid(saliency, masks[0].shape)
                    if on_grid is not None and len(masks) >= 2:
                        cases.append((on_grid, masks))
                try:
                    result = cam_vs_reader_agreement(cases, threshold, measure, level)
                except StatsInputError as exc:
                    skipped.append(f"{question.key}, {condition}, {method}: {exc}")
                    continue
                entries.append(SpatialEntry(question.key, condition, method, result))
    if not entries:
        raise StatsInputError("no condition has two or more readers' regions on cases with a map" +
                              (f" ({skipped[0]})" if skipped else ""))
    return SpatialSection(tuple(entries), tuple(skipped))


def mrmc_section(facts: StudyFacts, reads: Sequence[Read], positive: str, level: float) -> MRMCSection:
    """The OR analysis of the conditions' reader AUCs (jackknife covariances, Hillis ddf)."""
    if len(conditions_of(facts)) < 2:
        raise StatsInputError("the MRMC comparison needs two or more arms (or the two phases of a sequential design)")
    score = score_of(facts, reads)
    data = mrmc_ratings(facts, reads, score, positive)
    return MRMCSection(score.description, positive, or_analysis(data, "jackknife", level))


def ai_effect_section(facts: StudyFacts, reads: Sequence[Read], level: float) -> AIEffectSection:
    """Changes from the locked unaided answer to the aided one, per arm of a sequential design."""
    if not facts.sequential:
        raise StatsInputError(f"answer changes are measured in sequential designs; this study is {facts.design.replace('_', ' ')}")
    question = diagnosis_question(facts, reads)
    arms = []
    for arm in facts.arms:
        phases: dict[tuple, dict[int, Read]] = {}
        for read in reads:
            if read.arm == arm.name:
                phases.setdefault((read.reader, read.case, read.session), {})[read.phase] = read
        records = [
            (reader, case, pair[1].answers.get(question.key), pair[2].answers.get(question.key), pair[2].ai, pair[2].truth)
            for (reader, case, _), pair in phases.items() if 1 in pair and 2 in pair
        ]
        if records:
            arms.append((arm.name, ai_effect(records, level)))
    if not arms:
        raise StatsInputError("no reader finished both phases of a case")
    return AIEffectSection(question.key, tuple(arms))


def ai_reliance_section(facts: StudyFacts, reads: Sequence[Read], level: float) -> AIRelianceSection:
    """Per condition that showed the AI, readers' agreement with it and accuracy on the cases it
    was sure of against those it flagged uncertain (its frozen uncertainty)."""
    question = diagnosis_question(facts, reads)
    shown = {arm.name: arm.show_uncertainty for arm in facts.arms}
    out, skipped = [], []
    for condition, group in _by_condition(facts, reads):
        aided = [r for r in group if r.ai is not None]
        if not aided:
            continue
        records = [(r.reader, r.case, r.answers.get(question.key), r.ai, r.truth, r.ai_uncertain) for r in aided]
        try:
            out.append(ConditionReliance(condition, shown.get(aided[0].arm, True), ai_reliance(records, level)))
        except StatsInputError as exc:
            skipped.append(f"{condition}: {exc}")
    if not out:
        raise StatsInputError("no condition showed the AI with its uncertainty measured" +
                              (f" ({skipped[0]})" if skipped else ""))
    return AIRelianceSection(question.key, tuple(out), tuple(skipped))


def retest_section(facts: StudyFacts, reads: Sequence[Read], repeats: Sequence[Read], level: float) -> RetestSection:
    """Each reader's repeat reads against their first reads of the same cases (Cohen's kappa)."""
    if not repeats:
        raise StatsInputError("the study has no repeat reads")
    question = diagnosis_question(facts, reads)
    out = []
    for condition, again in _by_condition(facts, repeats):
        first = {(r.reader, r.case): r for r in reads if r.condition == condition}
        records = []
        for read in again:
            if (read.reader, read.case) in first:
                records.append((read.reader, read.case, first[read.reader, read.case].answers.get(question.key)))
                records.append((read.reader, read.case, read.answers.get(question.key)))
        out.append((condition, intra_reader_agreement(records, "nominal", diagnosis_question(facts, reads).options, level)))
    return RetestSection(question.key, tuple(out))


def reading_times_section(facts: StudyFacts, reads: Sequence[Read]) -> ReadingTimesSection:
    """Median and IQR of the time each case was open, by condition."""
    groups = _by_condition(facts, reads)
    if not groups:
        raise StatsInputError("no submitted reads")
    times = reading_times([(condition, r.seconds) for condition, group in groups for r in group])
    return ReadingTimesSection(times, tuple((c, np.array([r.seconds for r in g])) for c, g in groups))


def helpfulness_section(facts: StudyFacts, reads: Sequence[Read], level: float) -> tuple[HelpfulnessSummary, ...]:
    """Counts of each rating -3..+3 and the mean with a t CI (reads treated as independent)."""
    questions = facts.questions_of("helpfulness")
    if not questions:
        raise StatsInputError("the study asks no helpfulness question")
    out = []
    for question in questions:
        for condition, group in _by_condition(facts, reads):
            values = np.array([r.answers[question.key] for r in group if question.key in r.answers], dtype=float)
            if values.size == 0:
                continue
            counts = tuple(int((values == v).sum()) for v in HELPFULNESS_SCALE)
            method = "mean rating, t CI over reads (reads treated as independent)"
            mean = (wald(float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size)), level, method,
                         values.size, df=values.size - 1)
                    if values.size > 1 else Estimate(float(values.mean()), None, None, None, level, method, 1))
            out.append(HelpfulnessSummary(question.key, condition, counts, mean))
    if not out:
        raise StatsInputError("no helpfulness rating was submitted")
    return tuple(out)


def pairwise_section(facts: StudyFacts, reads: Sequence[Read], level: float) -> tuple[PairwisePreference, ...]:
    """Preferences between two maps, with the side each was shown on."""
    questions = facts.questions_of("pairwise_explanation")
    if not questions:
        raise StatsInputError("the study asks no pairwise explanation question")
    out = []
    for question in questions:
        first, second = question.options
        for condition, group in _by_condition(facts, reads):
            answered = [(r.answers[question.key], r.pairwise[question.key]) for r in group
                        if question.key in r.answers and question.key in r.pairwise]
            if not answered:
                continue
            chosen = [{"left": sides[0], "right": sides[1]}.get(answer, "equal") for answer, sides in answered]
            preferred = {first: chosen.count(first), second: chosen.count(second), "equal": chosen.count("equal")}
            share = wilson_interval(preferred[first], preferred[first] + preferred[second], level, f"share preferring {first}")
            out.append(PairwisePreference(
                question.key, condition, (first, second), preferred, share,
                sum(a == "left" for a, _ in answered), sum(a == "right" for a, _ in answered),
                sum(sides[0] == first for _, sides in answered),
            ))
    if not out:
        raise StatsInputError("no pairwise comparison was submitted")
    return tuple(out)


def study_report(
    facts: StudyFacts,
    records: Iterable[Mapping[str, Any]],
    *,
    maps: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    grids: Mapping[str, Sequence[int]] | None = None,
    positive: str | None = None,
    level: float = 0.95,
    map_threshold: float = 0.5,
    measure: str = "iou",
    notes: Sequence[str] = (),
) -> StudyReport:
    """Compute every section of a study's report.

    Args:
        facts: the study's design.
        records: its long-format records (``db.study_export.export_study_records``).
        maps: ``{case pseudonym: {cam method: map}}`` of the frozen maps, on the case's grid.
        grids: ``{case pseudonym: (N, H, W)}``, to draw region answers on.
        positive: the class an ROC analysis calls abnormal; chosen by ``positive_class`` if None.
        level: confidence level of every interval.
        map_threshold, measure: how a map becomes a region, and the overlap measure (spatial).
        notes: remarks the caller has about the data (shown with the design).

    Raises:
        StatsInputError: a malformed record or confidence level, or an unknown positive class.
    """
    level = check_level(level)
    read_set = reads_from_records(records, facts.sequential)
    reads = read_set.primary
    if positive is not None:
        chosen: PositiveClass | NotApplicable = positive_class(facts, reads, positive)
    else:
        chosen = _guard(lambda: positive_class(facts, reads))
    name = chosen.name if isinstance(chosen, PositiveClass) else None

    scored = _guard(lambda: score_of(facts, reads))

    def needs_positive(compute: Callable[[str], Any]) -> Any:
        if isinstance(scored, NotApplicable):
            return scored
        return chosen if name is None else _guard(lambda: compute(name))

    return StudyReport(
        facts=facts, level=level, positive=chosen,
        n_reads=len(reads), n_repeats=len(read_set.repeats), n_drafts=read_set.drafts,
        performance=_guard(lambda: performance_section(facts, reads, name, level)),
        roc=needs_positive(lambda p: roc_section(facts, reads, p, level)),
        agreement=_guard(lambda: agreement_section(facts, reads, level)),
        spatial=_guard(lambda: spatial_section(facts, reads, maps or {}, grids or {}, map_threshold, measure, level)),
        mrmc=needs_positive(lambda p: mrmc_section(facts, reads, p, level)),
        ai_effect=_guard(lambda: ai_effect_section(facts, reads, level)),
        ai_reliance=_guard(lambda: ai_reliance_section(facts, reads, level)),
        retest=_guard(lambda: retest_section(facts, reads, read_set.repeats, level)),
        reading_times=_guard(lambda: reading_times_section(facts, reads)),
        helpfulness=_guard(lambda: helpfulness_section(facts, reads, level)),
        pairwise=_guard(lambda: pairwise_section(facts, reads, level)),
        notes=tuple(notes),
    )
