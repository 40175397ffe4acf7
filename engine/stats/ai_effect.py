"""What showing the AI did to readers' answers in a sequential design, and how long reading took.

In a sequential design a reader answers, then sees the AI's answer, then answers again (Beam,
Layde & Sullivan, Radiology 199:731, 1996; the design of most AI-assistance reader studies).
From ``(reader, case, first answer, final answer, AI answer, truth)`` records:

* how often readers changed their answer at all;
* of the reads where the first answer differed from the AI's and the AI was right, how often
  the reader switched to the AI's answer (helpful changes);
* of those where the AI was wrong, how often the reader switched to it (automation bias,
  Goddard, Roudsari & Wyatt, JAMIA 19:121, 2012);
* accuracy before and after, overall and on the cases the AI got wrong.

Proportions carry Wilson intervals; reads are treated as independent (a reader-clustered
analysis is the MRMC module's job).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from engine.stats.categories import is_missing
from engine.stats.diagnostic import wilson_interval
from engine.stats.results import Estimate, StatsInputError, check_level


@dataclass(frozen=True)
class AIEffect:
    """Answer changes after the AI was shown, and accuracy before and after.

    Attributes:
        n_reads: reads with a first and a final answer.
        changed: share of reads whose final answer differs from the first.
        toward_right_ai: of reads that first disagreed with a right AI, share switched to it.
        toward_wrong_ai: of reads that first disagreed with a wrong AI, share switched to it.
        away_from_right_answer: share of reads right at first and wrong at the end.
        accuracy_first, accuracy_final: over all reads.
        accuracy_first_ai_wrong, accuracy_final_ai_wrong: over reads of cases the AI got wrong.
    """

    n_reads: int
    changed: Estimate
    toward_right_ai: Estimate
    toward_wrong_ai: Estimate
    away_from_right_answer: Estimate
    accuracy_first: Estimate
    accuracy_final: Estimate
    accuracy_first_ai_wrong: Estimate
    accuracy_final_ai_wrong: Estimate

    def to_dict(self) -> dict:
        return asdict(self)


def answer_text(value) -> str:
    """An answer as text for comparing answers: ``1``, ``1.0`` and ``"1"`` are one answer."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()


def ai_effect(records: Iterable[tuple], level: float = 0.95) -> AIEffect:
    """Answer changes and accuracy from ``(reader, case, first, final, ai, truth)`` records.

    Answers are compared as text after numbers are normalised (``1``, ``1.0`` and ``"1"`` are one
    answer). Reads without a first or final answer are skipped.

    Raises:
        StatsInputError: a record without six fields, or no complete reads.
    """
    level = check_level(level)
    rows = []
    for number, record in enumerate(records, start=1):
        if len(record) != 6:
            raise StatsInputError(f"AI effect: record {number} has {len(record)} fields, expected reader, case, first, final, ai, truth")
        _, _, first, final, ai, truth = record
        if any(is_missing(v) for v in (first, final, ai, truth)):
            continue
        rows.append(tuple(answer_text(v) for v in (first, final, ai, truth)))
    if not rows:
        raise StatsInputError("AI effect: no reads with a first answer, a final answer, the AI's answer and the truth")
    first, final, ai, truth = (np.array(column) for column in zip(*rows))
    ai_right = ai == truth
    disagreed = first != ai
    switched = final == ai

    def share(selected: np.ndarray, among: np.ndarray, what: str) -> Estimate:
        return wilson_interval(int((selected & among).sum()), int(among.sum()), level, what)

    everyone = np.ones(first.size, dtype=bool)
    return AIEffect(
        n_reads=int(first.size),
        changed=share(first != final, everyone, "changed answer"),
        toward_right_ai=share(switched, disagreed & ai_right, "switched to a right AI"),
        toward_wrong_ai=share(switched, disagreed & ~ai_right, "switched to a wrong AI"),
        away_from_right_answer=share((first == truth) & (final != truth), everyone, "right first, wrong final"),
        accuracy_first=share(first == truth, everyone, "accuracy of first answers"),
        accuracy_final=share(final == truth, everyone, "accuracy of final answers"),
        accuracy_first_ai_wrong=share(first == truth, ~ai_right, "accuracy of first answers where the AI was wrong"),
        accuracy_final_ai_wrong=share(final == truth, ~ai_right, "accuracy of final answers where the AI was wrong"),
    )


@dataclass(frozen=True)
class ReadingTime:
    """Reading time of one arm: median and interquartile range in seconds."""

    arm: str
    n: int
    median: float
    q1: float
    q3: float
    method: str = "median and IQR (linear interpolation between order statistics)"


def reading_times(records: Iterable[tuple]) -> tuple[ReadingTime, ...]:
    """Median and IQR of seconds per case by arm, from ``(arm, seconds)`` records.

    Missing or negative times are rejected rather than silently dropped, since a negative time
    means the clock or the export is wrong.
    """
    by_arm: dict[str, list[float]] = {}
    for number, record in enumerate(records, start=1):
        if len(record) != 2:
            raise StatsInputError(f"reading times: record {number} has {len(record)} fields, expected arm, seconds")
        arm, seconds = record
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            raise StatsInputError(f"reading times: record {number} has time {seconds!r}, which is not a number") from None
        if not np.isfinite(value) or value < 0:
            raise StatsInputError(f"reading times: record {number} has time {seconds!r}; times must be zero or more seconds")
        by_arm.setdefault(str(arm), []).append(value)
    out = []
    for arm, values in by_arm.items():
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        out.append(ReadingTime(arm, len(values), float(median), float(q1), float(q3)))
    return tuple(out)
