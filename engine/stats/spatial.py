"""Where readers point and where a class-activation map points: overlap, pointing, energy.

Per pair of regions (boolean masks of one shape, any number of axes):

* ``dice``: ``2|A & B| / (|A| + |B|)`` (Dice, Ecology 26:297, 1945);
* ``iou``: ``|A & B| / |A | B|`` (Jaccard 1912).

Both are NaN when both masks are empty: there is nothing to agree on, and a case like that is
left out of averages rather than counted as perfect agreement.

Map against a reader's region:

* ``pointing_hit``: the map's maximum lies in the region (Zhang et al., IJCV 126:1084, 2018);
* ``energy_inside``: share of the map's positive part inside the region (Wang et al.,
  Score-CAM, CVPR Workshops 2020);
* ``threshold_map`` + ``iou``/``dice``: the map cut at a stated fraction of its range.

``cam_vs_reader_agreement`` sets the map-vs-reader overlap against the reader-vs-reader overlap
on the same cases: readers disagree too, so the honest question is whether the map agrees with
a reader about as well as another reader does.

This module is numpy only; ``engine.explain.quality`` has tensor-aware pointing and energy
measures for single maps with tolerances and spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np

from engine.stats.results import Estimate, StatsInputError, check_level, wald

MEASURES = ("iou", "dice")


def _pair(first, second) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(first).astype(bool), np.asarray(second).astype(bool)
    if a.shape != b.shape:
        raise StatsInputError(f"regions of shapes {a.shape} and {b.shape} cannot be compared")
    return a, b


def dice(first, second) -> float:
    """Dice coefficient of two masks; NaN when both are empty."""
    a, b = _pair(first, second)
    total = int(a.sum() + b.sum())
    return 2.0 * int((a & b).sum()) / total if total else float("nan")


def iou(first, second) -> float:
    """Intersection over union (Jaccard index) of two masks; NaN when both are empty."""
    a, b = _pair(first, second)
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else float("nan")


def _map_and_region(saliency, region) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(saliency, dtype=np.float64)
    mask = np.asarray(region).astype(bool)
    if values.shape != mask.shape:
        raise StatsInputError(f"a map of shape {values.shape} cannot be compared with a region of shape {mask.shape}")
    if not np.isfinite(values).all():
        raise StatsInputError("the map has NaN or infinite values")
    return values, mask


def pointing_hit(saliency, region) -> bool:
    """True when the map's maximum lies inside the region (the first maximum when tied)."""
    values, mask = _map_and_region(saliency, region)
    if not mask.any():
        raise StatsInputError("the pointing game needs a non-empty region")
    return bool(mask.flat[int(np.argmax(values))])


def energy_inside(saliency, region) -> float:
    """``sum(relu(map) inside) / sum(relu(map))``; NaN for a map with no positive part."""
    values, mask = _map_and_region(saliency, region)
    positive = np.clip(values, 0.0, None)
    total = float(positive.sum())
    return float(positive[mask].sum()) / total if total > 0 else float("nan")


def threshold_map(saliency, threshold: float) -> np.ndarray:
    """The region where the map is at least ``threshold`` of the way from its minimum to its maximum.

    ``threshold`` is a fraction in [0, 1] of the map's own range on this case, so 0.5 keeps the
    upper half of the range. A constant map gives an empty region.
    """
    if not 0.0 <= threshold <= 1.0:
        raise StatsInputError(f"the map threshold {threshold!r} must be a fraction between 0 and 1")
    values = np.asarray(saliency, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=bool)
    return (values - low) / (high - low) >= threshold


@dataclass(frozen=True)
class CamVsReaderAgreement:
    """Map-vs-reader overlap set against reader-vs-reader overlap on the same cases.

    Attributes:
        cam_vs_reader: per case, the mean overlap of the thresholded map with each reader's
            region; averaged over cases, with a t CI over cases.
        reader_vs_reader: per case, the mean overlap of every pair of readers; averaged likewise.
        difference: mean over cases of (cam_vs_reader - reader_vs_reader), paired t CI. A CI that
            lies below 0 says the map agrees with readers less than readers agree with each other.
        measure: ``iou`` or ``dice``; threshold: the map threshold (fraction of its range).
        n_cases: cases where both figures were defined.
    """

    cam_vs_reader: Estimate
    reader_vs_reader: Estimate
    difference: Estimate
    measure: str
    threshold: float
    n_cases: int

    def to_dict(self) -> dict:
        return asdict(self)


def _t_mean(values: np.ndarray, level: float, method: str) -> Estimate:
    n = values.size
    mean = float(values.mean())
    se = float(values.std(ddof=1) / np.sqrt(n))
    return wald(mean, se, level, method, n, df=n - 1)


def cam_vs_reader_agreement(
    cases: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]],
    threshold: float = 0.5,
    measure: str = "iou",
    level: float = 0.95,
) -> CamVsReaderAgreement:
    """Compare a map's agreement with readers to the readers' agreement with each other.

    Args:
        cases: per case, ``(map, [region of reader 1, region of reader 2, ...])``; a case needs
            two or more readers' regions.
        threshold: the map is cut at this fraction of its range (``threshold_map``).
        measure: ``iou`` or ``dice``.
        level: confidence level of the t intervals over cases.

    Raises:
        StatsInputError: an unknown measure, fewer than two usable cases, or mismatched shapes.
    """
    level = check_level(level)
    if measure not in MEASURES:
        raise StatsInputError(f"overlap measure {measure!r} is not one of {', '.join(MEASURES)}")
    overlap = iou if measure == "iou" else dice
    cam_scores, reader_scores = [], []
    for number, (saliency, regions) in enumerate(cases, start=1):
        if len(regions) < 2:
            raise StatsInputError(f"case {number}: reader-vs-reader agreement needs two or more readers' regions")
        cut = threshold_map(saliency, threshold)
        with np.errstate(invalid="ignore"):
            cam = np.nanmean([overlap(cut, region) for region in regions])
            readers = np.nanmean([overlap(a, b) for a, b in combinations(regions, 2)])
        cam_scores.append(cam)
        reader_scores.append(readers)
    cam_values, reader_values = np.array(cam_scores, float), np.array(reader_scores, float)
    usable = np.isfinite(cam_values) & np.isfinite(reader_values)
    if usable.sum() < 2:
        raise StatsInputError("map-vs-reader agreement needs at least two cases with a region drawn")
    cam_values, reader_values = cam_values[usable], reader_values[usable]
    label = f"{measure.upper()} at map threshold {threshold:g} of its range"
    return CamVsReaderAgreement(
        _t_mean(cam_values, level, f"map vs reader {label}, mean over cases, t CI"),
        _t_mean(reader_values, level, f"reader vs reader {measure.upper()}, mean over cases, t CI"),
        _t_mean(cam_values - reader_values, level, f"paired difference (map vs reader - reader vs reader), {label}, t CI"),
        measure,
        float(threshold),
        int(usable.sum()),
    )
