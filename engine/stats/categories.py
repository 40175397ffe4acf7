"""Ratings of cases by readers as a coded matrix: the input every agreement statistic shares.

A ratings matrix has one row per case and one column per reader; a missing rating is ``None``
or NaN. Category values are coded as positions in an ordered tuple of categories: the
categories given by the caller (the full answer scale, including answers nobody gave) or else
the values found, sorted numerically when they are all numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.stats.results import StatsInputError

MISSING = -1


def is_missing(value) -> bool:
    """True for ``None``, NaN and the empty string."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _sort_key(value):
    return (0, float(value), "") if _is_number(value) else (1, 0.0, str(value))


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CodedRatings:
    """A ratings matrix coded as category positions.

    Attributes:
        codes: ``(cases, readers)`` int, the category's position, ``MISSING`` (-1) where absent.
        categories: the ordered categories the codes point into.
    """

    codes: np.ndarray
    categories: tuple

    @property
    def counts(self) -> np.ndarray:
        """``(cases, categories)``: how many readers put each case in each category."""
        out = np.zeros((self.codes.shape[0], len(self.categories)), dtype=np.int64)
        rows, cols = np.nonzero(self.codes != MISSING)
        np.add.at(out, (rows, self.codes[rows, cols]), 1)
        return out

    def numeric_categories(self, what: str) -> np.ndarray:
        """The categories as floats, or StatsInputError when one is not a number."""
        if not all(_is_number(c) for c in self.categories):
            raise StatsInputError(f"{what} needs numeric ratings; found {[c for c in self.categories if not _is_number(c)][:3]}")
        return np.array([float(c) for c in self.categories])


def code_ratings(ratings: Sequence[Sequence] | np.ndarray, categories: Iterable | None = None, what: str = "ratings") -> CodedRatings:
    """Code a ``(cases, readers)`` ratings matrix against ``categories``.

    Args:
        ratings: rows of ratings, one column per reader; ``None``/NaN for a missing rating.
        categories: the full ordered answer scale. When omitted, the values found, sorted.
        what: the name of the data for error messages.

    Raises:
        StatsInputError: a ragged matrix, no ratings at all, or a value outside ``categories``.
    """
    rows = [list(row) for row in (ratings.tolist() if isinstance(ratings, np.ndarray) else ratings)]
    if not rows:
        raise StatsInputError(f"{what}: no cases")
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        raise StatsInputError(f"{what}: every case needs one column per reader (rows of different lengths)")
    found = {_canonical(v) for row in rows for v in row if not is_missing(v)}
    if not found:
        raise StatsInputError(f"{what}: no ratings")
    if categories is None:
        ordered = tuple(sorted(found, key=_sort_key))
    else:
        ordered = tuple(dict.fromkeys(_canonical(c) for c in categories))
        outside = found - set(ordered)
        if outside:
            raise StatsInputError(f"{what}: rating {sorted(outside, key=_sort_key)[0]!r} is not one of the categories {list(ordered)}")
    index = {c: k for k, c in enumerate(ordered)}
    codes = np.array([[MISSING if is_missing(v) else index[_canonical(v)] for v in row] for row in rows], dtype=np.int64)
    return CodedRatings(codes, ordered)


def _canonical(value):
    """Numbers compare by value (2, 2.0 and "2" are one category); other values as text."""
    if _is_number(value):
        number = float(value)
        return int(number) if number.is_integer() else number
    return str(value).strip()


def ratings_matrix(records: Iterable[tuple], what: str = "ratings") -> tuple[tuple[str, ...], tuple[str, ...], list[list]]:
    """Long-format ``(reader, case, value)`` records as ``(readers, cases, matrix)``.

    The matrix has one row per case and one column per reader, ``None`` where a reader gave no
    value. Readers and cases keep the order in which they first appear.

    Raises:
        StatsInputError: a record without three fields, or a reader rating a case twice.
    """
    rows = []
    for number, record in enumerate(records, start=1):
        if len(record) != 3:
            raise StatsInputError(f"{what}: record {number} has {len(record)} fields, expected reader, case, value")
        rows.append((str(record[0]), str(record[1]), record[2]))
    readers = tuple(dict.fromkeys(r[0] for r in rows))
    cases = tuple(dict.fromkeys(r[1] for r in rows))
    column = {name: j for j, name in enumerate(readers)}
    row_of = {name: i for i, name in enumerate(cases)}
    matrix: list[list] = [[None] * len(readers) for _ in cases]
    for reader, case, value in rows:
        if matrix[row_of[case]][column[reader]] is not None:
            raise StatsInputError(f"{what}: reader {reader} rated case {case} twice")
        matrix[row_of[case]][column[reader]] = None if is_missing(value) else value
    return readers, cases, matrix
