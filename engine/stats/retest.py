"""Intra-reader (test-retest) agreement: each reader's first read of a case against the repeat.

The statistic follows the level of measurement of the answer:

* nominal: Cohen's kappa, unweighted;
* ordinal: Cohen's kappa with quadratic weights (for an ordinal scale, close to the ICC;
  Fleiss & Cohen, Educ Psychol Meas 33:613, 1973);
* interval or ratio: ICC(A,1), two-way absolute agreement, single measurement, the form Koo &
  Li (J Chiropr Med 15:155, 2016) recommend for test-retest reliability.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.stats.agreement import cohen_kappa
from engine.stats.icc import icc
from engine.stats.results import Estimate, StatsInputError, check_level

LEVELS = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True)
class ReaderRetest:
    """One reader's agreement with themself.

    Attributes:
        reader: the reader; n_cases: cases read twice.
        agreement: kappa or ICC(A,1) with its CI.
    """

    reader: str
    n_cases: int
    agreement: Estimate


def retest_agreement(first, second, level_of_measurement: str = "nominal", categories=None, level: float = 0.95) -> Estimate:
    """Agreement of one reader's first and repeat reads of the same cases (module docstring)."""
    level = check_level(level)
    if level_of_measurement not in LEVELS:
        raise StatsInputError(f"level of measurement {level_of_measurement!r} is not one of {', '.join(LEVELS)}")
    first, second = list(first), list(second)
    if len(first) != len(second):
        raise StatsInputError(f"test-retest: {len(first)} first reads but {len(second)} repeats")
    if level_of_measurement in ("nominal", "ordinal"):
        weights = None if level_of_measurement == "nominal" else "quadratic"
        return cohen_kappa(first, second, weights=weights, categories=categories, level=level)
    result = icc([[a, b] for a, b in zip(first, second)], level)
    form = result["ICC2"]
    return Estimate(form.estimate, None, form.ci_low, form.ci_high, level,
                    "ICC(A,1) of first vs repeat read, McGraw & Wong (1996) F-based CI", result.n_cases)


def intra_reader_agreement(records: Iterable[tuple], level_of_measurement: str = "nominal", categories=None, level: float = 0.95) -> tuple[ReaderRetest, ...]:
    """Per-reader test-retest agreement from ``(reader, case, value)`` records in reading order.

    A reader's first record for a case is the first read and the next one the repeat; further
    repeats are ignored. Readers with fewer than two cases read twice are left out.

    Raises:
        StatsInputError: a malformed record, or no reader with two or more repeated cases.
    """
    reads: dict[str, dict[str, list]] = {}
    for number, record in enumerate(records, start=1):
        if len(record) != 3:
            raise StatsInputError(f"test-retest: record {number} has {len(record)} fields, expected reader, case, value")
        reader, case, value = record
        reads.setdefault(str(reader), {}).setdefault(str(case), []).append(value)
    out = []
    for reader, cases in reads.items():
        repeated = [values[:2] for values in cases.values() if len(values) >= 2]
        if len(repeated) < 2:
            continue
        first, second = zip(*repeated)
        out.append(ReaderRetest(reader, len(repeated), retest_agreement(first, second, level_of_measurement, categories, level)))
    if not out:
        raise StatsInputError("test-retest: no reader read two or more cases twice")
    return tuple(out)
