"""The plots of a ``StudyReport``: one list that the dashboard, the HTML and the PDF all draw.

``report_figures(report)`` returns ``ReportFigure(section, name, title, figure)`` for every
section that applies; a section that does not apply has no figure (its one-line reason is in
the report itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from engine.stats import figures
from engine.stats.study_report import HELPFULNESS_SCALE, NotApplicable, StudyReport


@dataclass(frozen=True)
class ReportFigure:
    """One plot of the report.

    Attributes:
        section: the report section it belongs to (``StudyReport.sections`` keys).
        name: a file-name-safe name, e.g. ``roc`` (what an exported PNG is called).
    """

    section: str
    name: str
    title: str
    figure: Figure


def _interval(estimate) -> tuple[float, float | None, float | None]:
    return estimate.estimate, estimate.ci_low, estimate.ci_high


def _performance(report: StudyReport) -> list[ReportFigure]:
    section = report.performance
    panels = [(f"{row.reader}, {row.condition}", row.labels, row.matrix) for row in section.rows]
    rows = [(f"{row.reader}, {row.condition}", *_interval(row.accuracy)) for row in section.rows]
    return [
        ReportFigure("performance", "confusion", "Confusion matrices (rows: ground truth)", figures.confusion_figure(panels)),
        ReportFigure("performance", "accuracy", "Accuracy with Wilson intervals",
                     figures.interval_figure(rows, "accuracy", xlim=(0, 1))),
    ]


def _roc(report: StudyReport) -> list[ReportFigure]:
    by_condition: dict[str, list] = {}
    for curve in report.roc.curves:
        by_condition.setdefault(curve.condition, []).append((curve.reader, curve.fpr, curve.tpr, curve.auc.estimate))
    return [ReportFigure("roc", "roc", f"Empirical ROC curves ({report.roc.score})",
                         figures.roc_figure(list(by_condition.items())))]


def _agreement(report: StudyReport) -> list[ReportFigure]:
    panels = [(c.condition, c.readers, c.kappa) for c in report.agreement.conditions]
    rows = [(f"{name}, {c.condition}", *_interval(getattr(c, field)))
            for c in report.agreement.conditions
            for name, field in (("Fleiss' kappa", "fleiss"), ("Gwet's AC1", "ac1"), ("Krippendorff's alpha", "alpha"))]
    return [
        ReportFigure("agreement", "kappa_matrix", "Cohen's kappa between readers", figures.agreement_figure(panels)),
        ReportFigure("agreement", "agreement", "Multi-reader agreement", figures.interval_figure(rows, "coefficient", 0.0, (-1, 1))),
    ]


def _spatial(report: StudyReport) -> list[ReportFigure]:
    rows = []
    for entry in report.spatial.entries:
        where = f"{entry.method}, {entry.condition}"
        rows.append((f"map vs reader: {where}", *_interval(entry.result.cam_vs_reader)))
        rows.append((f"reader vs reader: {entry.condition}", *_interval(entry.result.reader_vs_reader)))
    measure = report.spatial.entries[0].result.measure.upper()
    return [ReportFigure("spatial", "spatial", f"{measure} of regions", figures.interval_figure(rows, measure, xlim=(0, 1)))]


def _mrmc(report: StudyReport) -> list[ReportFigure]:
    result = report.mrmc.result
    means = [(m.estimate, m.ci_low, m.ci_high) for m in result.rrrc.modalities]
    differences = [(f"{c.first} - {c.second}", c.estimate, c.ci_low, c.ci_high) for c in result.rrrc.comparisons]
    return [
        ReportFigure("mrmc", "reader_auc", "Reader AUCs and reader-averaged AUC (RRRC CI)",
                     figures.auc_figure(result.modalities, result.readers, result.auc, means)),
        ReportFigure("mrmc", "auc_difference", "Difference of reader-averaged AUCs (RRRC CI)",
                     figures.interval_figure(differences, "AUC difference", 0.0)),
    ]


def _ai_effect(report: StudyReport) -> list[ReportFigure]:
    rows = []
    for arm, effect in report.ai_effect.arms:
        for label, field in (("changed answer", "changed"), ("switched to a right AI", "toward_right_ai"),
                             ("switched to a wrong AI", "toward_wrong_ai"), ("accuracy before", "accuracy_first"),
                             ("accuracy after", "accuracy_final"), ("accuracy before, AI wrong", "accuracy_first_ai_wrong"),
                             ("accuracy after, AI wrong", "accuracy_final_ai_wrong")):
            rows.append((f"{arm}: {label}", *_interval(getattr(effect, field))))
    return [ReportFigure("ai_effect", "ai_effect", "Answer changes after the AI (Wilson intervals)",
                         figures.interval_figure(rows, "share of reads", xlim=(0, 1)))]


def _reading_times(report: StudyReport) -> list[ReportFigure]:
    return [ReportFigure("reading_times", "reading_times", "Seconds per case",
                         figures.distribution_figure(report.reading_times.seconds, "seconds per case"))]


def _helpfulness(report: StudyReport) -> list[ReportFigure]:
    series = [(f"{h.question}, {h.condition}", h.counts) for h in report.helpfulness]
    return [ReportFigure("helpfulness", "helpfulness", "Helpfulness ratings",
                         figures.counts_figure([f"{v:+d}" for v in HELPFULNESS_SCALE], series, "rating"))]


def _pairwise(report: StudyReport) -> list[ReportFigure]:
    out = []
    for p in report.pairwise:
        series = [("preferred", [p.preferred[p.methods[0]], p.preferred[p.methods[1]], p.preferred["equal"]])]
        out.append(ReportFigure("pairwise", f"pairwise_{len(out) + 1}", f"{p.question}, {p.condition}",
                                figures.counts_figure([*p.methods, "equal"], series, "preferred map")))
    return out


_BUILDERS = {
    "performance": _performance, "roc": _roc, "agreement": _agreement, "spatial": _spatial, "mrmc": _mrmc,
    "ai_effect": _ai_effect, "reading_times": _reading_times, "helpfulness": _helpfulness, "pairwise": _pairwise,
}


def report_figures(report: StudyReport) -> tuple[ReportFigure, ...]:
    """Every plot of the report, in section order (none for sections that do not apply)."""
    out: list[ReportFigure] = []
    for key, _title, section in report.sections():
        if key in _BUILDERS and not isinstance(section, NotApplicable):
            out.extend(_BUILDERS[key](report))
    return tuple(out)
