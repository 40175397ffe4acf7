"""Ratings of a fully crossed reader study as one array: modality x reader x case, with truth.

Long-format records ``(reader, case, modality, score)`` and a truth per case, the shape a
database query or an iMRMC file yields, become a ``RatingArray`` that the ROC and MRMC
functions take. Identifiers keep the order in which they first appear, unless they are all
integers, in which case they are sorted numerically (reader 10 after reader 9).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from engine.stats.results import StatsInputError


@dataclass(frozen=True)
class RatingArray:
    """Scores of a fully crossed study.

    Attributes:
        modalities: modality (arm, treatment) names, in array order.
        readers: reader names, in array order.
        cases: case names, in array order.
        truth: ``(cases,)`` bool, True for an abnormal (diseased) case.
        scores: ``(modalities, readers, cases)`` float, higher meaning "more likely abnormal".
    """

    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    truth: np.ndarray
    scores: np.ndarray

    @property
    def n_abnormal(self) -> int:
        return int(self.truth.sum())

    @property
    def n_normal(self) -> int:
        return int(self.truth.size - self.truth.sum())

    def records(self) -> list[tuple[str, str, str, float]]:
        """The ratings back as ``(reader, case, modality, score)`` records."""
        return [
            (reader, case, modality, float(self.scores[i, j, k]))
            for i, modality in enumerate(self.modalities)
            for j, reader in enumerate(self.readers)
            for k, case in enumerate(self.cases)
        ]


def _ordered(names: Iterable[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(names))
    try:
        return tuple(sorted(unique, key=int))
    except ValueError:
        return tuple(unique)


def _truth_label(value, case: str, what: str) -> bool:
    """True for an abnormal case: 1, 1.0, "1" or True; False for 0, 0.0, "0" or False."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number not in (0.0, 1.0):
        raise StatsInputError(f"{what}: truth of case {case} is {value!r}, expected 0 or 1")
    return number == 1.0


def rating_array(records: Iterable[tuple], truth: Mapping, what: str = "ratings") -> RatingArray:
    """Build a ``RatingArray`` from ``(reader, case, modality, score)`` records and case truths.

    Args:
        records: one record per reading; identifiers are compared as strings.
        truth: case -> 0/1 (or False/True), 1 meaning abnormal.
        what: the name of the source (a file name) for error messages.

    Raises:
        StatsInputError: when a score is not a number, a case has no truth, a reading is
            repeated, or a reader did not read every case in every modality.
    """
    truth_by_case = {str(case): value for case, value in truth.items()}
    rows = []
    for number, record in enumerate(records, start=1):
        if len(record) != 4:
            raise StatsInputError(f"{what}: record {number} has {len(record)} fields, expected reader, case, modality, score")
        reader, case, modality, score = (str(record[0]), str(record[1]), str(record[2]), record[3])
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise StatsInputError(f"{what}: record {number} has score {score!r}, which is not a number") from None
        if not np.isfinite(value):
            raise StatsInputError(f"{what}: record {number} has a score that is not finite")
        rows.append((reader, case, modality, value))
    if not rows:
        raise StatsInputError(f"{what}: no ratings")
    modalities = _ordered(r[2] for r in rows)
    readers = _ordered(r[0] for r in rows)
    cases = _ordered(r[1] for r in rows)
    missing_truth = [case for case in cases if case not in truth_by_case]
    if missing_truth:
        raise StatsInputError(f"{what}: case {missing_truth[0]} has ratings but no truth")
    labels = [_truth_label(truth_by_case[case], case, what) for case in cases]
    index_m = {name: i for i, name in enumerate(modalities)}
    index_r = {name: i for i, name in enumerate(readers)}
    index_c = {name: i for i, name in enumerate(cases)}
    scores = np.full((len(modalities), len(readers), len(cases)), np.nan)
    for reader, case, modality, value in rows:
        where = (index_m[modality], index_r[reader], index_c[case])
        if not np.isnan(scores[where]):
            raise StatsInputError(f"{what}: reader {reader} rated case {case} in modality {modality} twice")
        scores[where] = value
    holes = np.argwhere(np.isnan(scores))
    if holes.size:
        i, j, k = holes[0]
        raise StatsInputError(
            f"{what}: reader {readers[j]} has no score for case {cases[k]} in modality {modalities[i]} "
            f"({len(holes)} readings missing; the analysis needs every reader to read every case in every modality)"
        )
    truth_array = np.array(labels, dtype=bool)
    if truth_array.all() or not truth_array.any():
        raise StatsInputError(f"{what}: the ROC analysis needs both normal and abnormal cases")
    return RatingArray(modalities, readers, cases, truth_array, scores)
