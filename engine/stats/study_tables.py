"""The tables of a ``StudyReport`` as plain text cells, shared by the HTML, the PDF and the dashboard.

``report_tables(report)`` gives one ``ReportSection`` per section in report order: its title,
the one-line reason when it does not apply, and its tables (caption, header, rows of strings).
Every estimate is printed as ``0.761 (0.652 to 0.870)`` with the level and method named in the
caption, so a table can be pasted into a paper as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.stats.results import Estimate
from engine.stats.study_report import HELPFULNESS_SCALE, NotApplicable, StudyReport


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ReportSection:
    """One section: ``note`` is the reason it does not apply (then ``tables`` is empty), or remarks."""

    key: str
    title: str
    tables: tuple[Table, ...]
    note: str | None = None
    applies: bool = True


def number(value, digits: int = 3) -> str:
    """A number for a table: fixed digits, "-" for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def interval(estimate: Estimate | None, digits: int = 3) -> str:
    """``estimate (low to high)``, or the estimate alone when it has no interval."""
    if estimate is None:
        return "-"
    if estimate.ci_low is None or estimate.ci_high is None:
        return number(estimate.estimate, digits)
    return f"{number(estimate.estimate, digits)} ({number(estimate.ci_low, digits)} to {number(estimate.ci_high, digits)})"


def _table(caption: str, header, rows) -> Table:
    return Table(caption, tuple(header), tuple(tuple(str(cell) for cell in row) for row in rows))


def design_tables(report: StudyReport) -> tuple[Table, ...]:
    """The study design, the frozen model and the software, as the report's first section."""
    f = report.facts
    positive = report.positive
    facts = [
        ("study", f"{f.name} (id {f.study_id})"), ("description", f.description or "-"), ("task", f.task),
        ("design", f.design.replace("_", " ")), ("status", f.status), ("closed at", f.closed_at or "-"),
        ("readers", str(len(f.readers))), ("cases", str(f.n_cases)),
        ("submitted reads", str(report.n_reads)), ("repeat reads", str(report.n_repeats)),
        ("drafts left out (never submitted)", str(report.n_drafts)),
        ("washout (days)", str(f.washout_days)), ("repeat fraction", number(f.repeat_fraction, 2)),
        ("positive class", positive.reason if isinstance(positive, NotApplicable) else f"{positive.name} ({positive.rule})"),
        ("confidence level", f"{report.level:.0%}"),
        ("software", f"Salience {f.software_version}"), ("generated at", f.generated_at or "-"),
    ]
    arms = [(a.name, "yes" if a.shows_prediction else "no", a.cam_method or "-",
             ("yes" if a.show_uncertainty else "no") if a.shows_prediction else "-") for a in f.arms]
    questions = [(q.key, q.kind, q.prompt, ", ".join(q.options) or "-", "yes" if q.required else "no",
                  ", ".join(q.arms) if q.arms else "all", ", ".join(map(str, q.phases)) if q.phases else "all")
                 for q in f.questions]
    bundles = [(b.name, b.version, b.sha256, str(b.cases)) for b in f.bundles] or [("-", "-", "no frozen AI output", "0")]
    return (
        _table("Study", ("", "value"), facts),
        _table("Arms", ("arm", "shows the AI's prediction", "map shown", "uncertainty shown"), arms),
        _table("Questions", ("key", "kind", "prompt", "options", "required", "arms", "phases"), questions),
        _table("Frozen AI output (bundle)", ("bundle", "version", "sha256", "cases"), bundles),
    )


def _performance(report: StudyReport) -> tuple[Table, ...]:
    s = report.performance
    level = f"{report.level:.0%}"
    rows = [(r.reader, r.condition, int(r.matrix.sum()), interval(r.accuracy), interval(r.sensitivity), interval(r.specificity))
            for r in s.rows]
    tables = [_table(f"Answers to {s.question!r} against the ground truth; positive class {s.positive or '-'}; "
                     f"{level} Wilson score intervals", ("reader", "condition", "cases", "accuracy", "sensitivity", "specificity"), rows)]
    for r in s.rows:
        header = ("truth \\ answer", *r.labels)
        tables.append(_table(f"Confusion matrix: {r.reader}, {r.condition}", header,
                             [(label, *map(str, r.matrix[i])) for i, label in enumerate(r.labels)]))
    return tuple(tables)


def _roc(report: StudyReport) -> tuple[Table, ...]:
    s = report.roc
    rows = [(c.reader, c.condition, c.auc.n, interval(c.auc), number(c.auc.se)) for c in s.curves]
    return (_table(f"Empirical AUC by {s.score}, positive class {s.positive}; DeLong SE, {report.level:.0%} Wald CI",
                   ("reader", "condition", "cases", "AUC (CI)", "SE"), rows),)


def _agreement(report: StudyReport) -> tuple[Table, ...]:
    s = report.agreement
    rows = [(c.condition, len(c.readers), c.n_cases, interval(c.percent), interval(c.fleiss), interval(c.ac1), interval(c.alpha))
            for c in s.conditions]
    tables = [_table(f"Agreement on {s.question!r} (categories {', '.join(s.categories)}); {report.level:.0%} CIs: "
                     "Gwet (2014) SEs with t intervals, Krippendorff's alpha by bootstrap over cases",
                     ("condition", "readers", "cases", "percent agreement", "Fleiss' kappa", "Gwet's AC1",
                      "Krippendorff's alpha (nominal)"), rows)]
    for c in s.conditions:
        tables.append(_table(f"Cohen's kappa between readers: {c.condition}", ("", *c.readers),
                             [(reader, *(number(v) for v in c.kappa[i])) for i, reader in enumerate(c.readers)]))
    return tuple(tables)


def _spatial(report: StudyReport) -> tuple[Table, ...]:
    entries = report.spatial.entries
    first = entries[0].result
    rows = [(e.question, e.condition, e.method, e.result.n_cases, interval(e.result.cam_vs_reader),
             interval(e.result.reader_vs_reader), interval(e.result.difference)) for e in entries]
    return (_table(f"{first.measure.upper()} of the map cut at {first.threshold:g} of its range with each reader's region, "
                   f"against readers with each other; means over cases with {report.level:.0%} t CIs",
                   ("question", "condition", "map", "cases", "map vs reader", "reader vs reader", "difference"), rows),)


def _mrmc(report: StudyReport) -> tuple[Table, ...]:
    result = report.mrmc.result
    averaged = [(m.modality, number(m.estimate), number(m.se), f"{number(m.ci_low)} to {number(m.ci_high)}")
                for m in result.rrrc.modalities]
    tests = []
    for test in (result.rrrc, result.frrc, result.rrfc):
        for c in test.comparisons:
            tests.append((test.analysis, f"{c.first} - {c.second}", number(c.estimate), number(c.se),
                          f"{number(c.ci_low)} to {number(c.ci_high)}", number(test.statistic), number(test.df1, 2),
                          number(test.df2, 2), number(test.p_value, 4)))
    readers = [(reader, *(f"{result.auc[i, j]:.3f}" for i in range(len(result.modalities))))
               for j, reader in enumerate(result.readers)]
    caption = (f"{report.mrmc.score}, positive class {report.mrmc.positive}; {result.n_normal} normal and "
               f"{result.n_abnormal} abnormal cases; Obuchowski-Rockette with jackknife covariances and Hillis ddf")
    return (
        _table(f"Reader-averaged AUC per condition, RRRC {report.level:.0%} CI. {caption}", ("condition", "AUC", "SE", "CI"), averaged),
        _table("Difference of reader-averaged AUCs: random readers and cases (RRRC), fixed readers (FRRC), fixed cases (RRFC)",
               ("analysis", "difference", "estimate", "SE", "CI", "statistic", "df1", "df2", "p"), tests),
        _table("Empirical AUC of each reader", ("reader", *result.modalities), readers),
    )


def _ai_effect(report: StudyReport) -> tuple[Table, ...]:
    labels = (("reads", None), ("changed answer", "changed"), ("switched to a right AI", "toward_right_ai"),
              ("switched to a wrong AI", "toward_wrong_ai"), ("right first, wrong final", "away_from_right_answer"),
              ("accuracy before the AI", "accuracy_first"), ("accuracy with the AI", "accuracy_final"),
              ("accuracy before, AI wrong", "accuracy_first_ai_wrong"), ("accuracy with, AI wrong", "accuracy_final_ai_wrong"))
    arms = report.ai_effect.arms
    rows = [(label, *(str(effect.n_reads) if field is None else interval(getattr(effect, field)) for _, effect in arms))
            for label, field in labels]
    return (_table(f"Answers to {report.ai_effect.question!r} before (phase 1) and after (phase 2) the AI was shown; "
                   f"{report.level:.0%} Wilson intervals, reads treated as independent", ("", *(arm for arm, _ in arms)), rows),)


def _ai_reliance(report: StudyReport) -> tuple[Table, ...]:
    section = report.ai_reliance
    rows = []
    for entry in section.conditions:
        for split in (entry.result.sure, entry.result.unsure):
            rows.append((entry.condition, "yes" if entry.uncertainty_shown else "no (hidden from readers)",
                         "uncertain" if split.flagged else "sure", split.n_cases, split.n_reads, split.n_readers,
                         interval(split.agreement), interval(split.accuracy), interval(split.ai_accuracy),
                         split.too_few or "-"))
    unmeasured = [f"{e.condition}: {e.result.unmeasured}" for e in section.conditions if e.result.unmeasured]
    caption = (f"Answers to {section.question!r} where the AI was shown, split by whether its frozen uncertainty "
               f"flagged the case answer uncertain; {report.level:.0%} Wilson intervals, reads treated as independent")
    if unmeasured:
        caption += f"; reads left out because the AI's uncertainty was not measured: {', '.join(unmeasured)}"
    return (_table(caption, ("condition", "uncertainty shown", "AI was", "cases", "reads", "readers",
                             "agreement with the AI", "reader accuracy", "AI accuracy (cases)", "note"), rows),)


def _retest(report: StudyReport) -> tuple[Table, ...]:
    rows = [(condition, r.reader, r.n_cases, interval(r.agreement)) for condition, readers in report.retest.conditions for r in readers]
    return (_table(f"Each reader's repeat read of {report.retest.question!r} against their first (Cohen's kappa, "
                   f"{report.level:.0%} CI)", ("condition", "reader", "cases read twice", "kappa (CI)"), rows),)


def _reading_times(report: StudyReport) -> tuple[Table, ...]:
    rows = [(t.arm, t.n, number(t.median, 1), f"{number(t.q1, 1)} to {number(t.q3, 1)}") for t in report.reading_times.times]
    return (_table("Seconds each case was open, by condition", ("condition", "reads", "median", "IQR"), rows),)


def _helpfulness(report: StudyReport) -> tuple[Table, ...]:
    rows = [(h.question, h.condition, h.mean.n, interval(h.mean, 2), *map(str, h.counts)) for h in report.helpfulness]
    return (_table(f"Helpfulness ratings; mean with {report.level:.0%} t CI (reads treated as independent)",
                   ("question", "condition", "reads", "mean (CI)", *(f"{v:+d}" for v in HELPFULNESS_SCALE)), rows),)


def _pairwise(report: StudyReport) -> tuple[Table, ...]:
    rows = [(p.question, p.condition, f"{p.methods[0]} vs {p.methods[1]}", p.preferred[p.methods[0]], p.preferred[p.methods[1]],
             p.preferred["equal"], interval(p.share_first), p.left, p.right, p.first_on_left) for p in report.pairwise]
    return (_table(f"Which map explains better; share preferring the first method among decisive answers "
                   f"({report.level:.0%} Wilson); the side each map was shown on was drawn at random and recorded",
                   ("question", "condition", "methods", "first preferred", "second preferred", "equal",
                    "share first (CI)", "left picked", "right picked", "first shown left"), rows),)


_TABLES = {
    "performance": _performance, "roc": _roc, "agreement": _agreement, "spatial": _spatial, "mrmc": _mrmc,
    "ai_effect": _ai_effect, "ai_reliance": _ai_reliance, "retest": _retest, "reading_times": _reading_times,
    "helpfulness": _helpfulness, "pairwise": _pairwise,
}


def _remarks(section) -> str | None:
    skipped = getattr(section, "skipped", ())
    return ("Left out: " + "; ".join(skipped)) if skipped else None


def report_tables(report: StudyReport) -> tuple[ReportSection, ...]:
    """The design section, then one section per report section (with its reason when it does not apply)."""
    out = [ReportSection("design", "Study design", design_tables(report), "; ".join(report.notes) or None)]
    for key, title, section in report.sections():
        if isinstance(section, NotApplicable):
            out.append(ReportSection(key, title, (), f"Does not apply: {section.reason}", applies=False))
        else:
            out.append(ReportSection(key, title, _TABLES[key](report), _remarks(section)))
    return tuple(out)
