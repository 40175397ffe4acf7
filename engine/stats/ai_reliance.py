"""Did readers follow the AI more when it was sure? Reader accuracy and agreement with the AI,
split by whether the AI's frozen uncertainty rule flagged its case answer uncertain.

Showing a model's confidence is meant to calibrate trust: readers should lean on the AI where it
is sure and check it where it is not (Zhang, Liao & Bellamy, FAT* 2020:295, "Effect of confidence
and explanation on accuracy and trust calibration in AI-assisted decision making"). From
``(reader, case, answer, AI answer, truth, AI flagged uncertain)`` records of the reads that
showed the AI, this gives for the cases the AI was sure of and those it flagged uncertain:

* how often readers' answers agreed with the AI's (reliance);
* how often readers were right, and how often the AI was (over cases).

Proportions carry Wilson score intervals (Wilson, JASA 22:209, 1927) with reads treated as
independent (a reader-clustered analysis is the MRMC module's job). A split resting on fewer than
``MIN_CASES`` cases is reported with a plain warning rather than hidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from engine.stats.ai_effect import answer_text
from engine.stats.categories import is_missing
from engine.stats.diagnostic import wilson_interval
from engine.stats.results import Estimate, StatsInputError, check_level

#: Below this many distinct cases a split is said to have too few cases to compare.
MIN_CASES = 10


@dataclass(frozen=True)
class RelianceSplit:
    """The reads of the cases the AI flagged uncertain (``flagged``) or not.

    Attributes:
        n_reads, n_cases, n_readers: what the split rests on.
        agreement: share of reads whose answer equals the AI's.
        accuracy: share of reads (of cases with a ground truth) whose answer is right.
        ai_accuracy: share of the split's cases (with a ground truth) the AI got right.
        too_few: one plain line when the split has fewer than ``min_cases`` cases, else None.
    """

    flagged: bool
    n_reads: int
    n_cases: int
    n_readers: int
    agreement: Estimate
    accuracy: Estimate
    ai_accuracy: Estimate
    too_few: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AIReliance:
    """Reliance on the AI where it was sure and where it flagged itself uncertain.

    Attributes:
        sure: reads of cases whose frozen AI answer was not flagged uncertain.
        unsure: reads of cases whose frozen AI answer was flagged uncertain.
        unmeasured: reads left out because the AI output shown had no uncertainty measured.
    """

    sure: RelianceSplit
    unsure: RelianceSplit
    unmeasured: int

    def to_dict(self) -> dict:
        return asdict(self)


def _split(rows: list[tuple], flagged: bool, level: float, min_cases: int) -> RelianceSplit:
    mine = [row for row in rows if row[5] is flagged]
    name = "flagged uncertain" if flagged else "not flagged uncertain"
    answer = np.array([row[2] for row in mine], dtype=object)
    ai = np.array([row[3] for row in mine], dtype=object)
    truth = np.array([row[4] for row in mine], dtype=object)
    known = np.array([t is not None for t in truth], dtype=bool)
    cases = {row[1]: (row[3], row[4]) for row in mine}
    judged = [(said, right) for said, right in cases.values() if right is not None]
    too_few = None
    if len(cases) < min_cases:
        too_few = (f"too few cases to compare: {len(cases)} case(s) {name} (fewer than {min_cases}); "
                   "the intervals are wide and a difference between the splits means little")
    return RelianceSplit(
        flagged=flagged, n_reads=len(mine), n_cases=len(cases), n_readers=len({row[0] for row in mine}),
        agreement=wilson_interval(int((answer == ai).sum()), len(mine), level, f"agreement with the AI, AI {name}"),
        accuracy=wilson_interval(int(((answer == truth) & known).sum()), int(known.sum()), level,
                                 f"reader accuracy, AI {name}"),
        ai_accuracy=wilson_interval(sum(said == right for said, right in judged), len(judged), level,
                                    f"AI accuracy over cases, AI {name}"),
        too_few=too_few,
    )


def ai_reliance(records: Iterable[tuple], level: float = 0.95, min_cases: int = MIN_CASES) -> AIReliance:
    """Agreement with the AI and accuracy, split by whether the AI flagged its answer uncertain.

    Args:
        records: ``(reader, case, answer, ai answer, truth, ai flagged uncertain)`` of reads that
            showed the AI; the flag is True, False, or None when the uncertainty was not measured
            (such reads are counted in ``unmeasured`` and left out). A missing truth leaves the
            read out of the accuracies only. Answers compare as text (``1`` and ``"1"`` agree).
        level: confidence level of the Wilson intervals.
        min_cases: the fewest cases a split may rest on without the ``too_few`` warning.

    Raises:
        StatsInputError: a record without six fields, a flag that is not True, False or None, or
            no read with an answer, the AI's answer and a measured flag.
    """
    level = check_level(level)
    rows, unmeasured = [], 0
    for number, record in enumerate(records, start=1):
        if len(record) != 6:
            raise StatsInputError(f"AI reliance: record {number} has {len(record)} fields, "
                                  "expected reader, case, answer, ai, truth, ai flagged uncertain")
        reader, case, answer, ai, truth, flagged = record
        if flagged is not None and not isinstance(flagged, (bool, np.bool_)):
            raise StatsInputError(f"AI reliance: record {number} has flag {flagged!r}; expected true, false or none")
        if is_missing(answer) or is_missing(ai):
            continue
        if flagged is None:
            unmeasured += 1
            continue
        rows.append((str(reader), str(case), answer_text(answer), answer_text(ai),
                     None if is_missing(truth) else answer_text(truth), bool(flagged)))
    if not rows:
        raise StatsInputError("AI reliance: no read with an answer, the AI's answer and its uncertainty measured"
                              + (f" ({unmeasured} read(s) showed an AI output whose uncertainty was not measured)"
                                 if unmeasured else ""))
    return AIReliance(_split(rows, False, level, min_cases), _split(rows, True, level, min_cases), unmeasured)
