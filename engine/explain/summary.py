"""The one summary of a raw map and the one rule that turns raw values into a colour range.

A map stays raw and signed until it is drawn. Two things are decided about it here, once for the
database, the command line and the window alike:

* ``map_summary``: what is stored next to a map so a reader (and a study's colour scale) can judge
  its scale without reading the map: min, max, mean, std, the share of finite values (a slide's
  map is NaN off tissue), the share above zero and a few percentiles, all flat numbers.
* ``colour_range`` / ``map_range``: which raw values map to the bottom and the top of the colour
  map, over a slice, a volume, or a study (every stored map of the same weights, method and class).
  The range is an increasing affine map of the raw values, so nothing is ever inverted (MONAI's
  ``default_normalizer`` maps (min, max) to (1, 0); ours does not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

NormalisationScope = Literal["volume", "slice", "study"]  # "study": a range given from outside

#: Percentiles in a ``MapSummary`` (keys "p1", "p5", ..., "p99").
SUMMARY_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


@dataclass(frozen=True)
class MapSummary:
    """Summary of one raw map over its finite values.

    Attributes:
        min, max, mean, std: of the finite values (all 0 when there are none).
        finite_fraction: share of values that are finite (a slide's map is NaN off tissue).
        positive_fraction: share of finite values above zero.
        percentiles: value at each of ``SUMMARY_PERCENTILES``, keyed "p1" ... "p99".
    """

    min: float
    max: float
    mean: float
    std: float
    finite_fraction: float
    positive_fraction: float
    percentiles: dict[str, float]

    def to_dict(self) -> dict[str, float]:
        """Flat, JSON-ready: the same keys in the database, the CLI JSON and the window."""
        flat = asdict(self)
        return {**{k: v for k, v in flat.items() if k != "percentiles"}, **self.percentiles}


def as_numpy(array) -> np.ndarray:
    """A numpy view of a numpy array or a (detached, CPU) torch tensor, without importing torch."""
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def map_summary(array) -> MapSummary:
    """``MapSummary`` of every finite value of ``array`` (numpy or torch, any shape)."""
    values = as_numpy(array).astype(np.float64).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return MapSummary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, {f"p{p}": 0.0 for p in SUMMARY_PERCENTILES})
    levels = np.percentile(finite, SUMMARY_PERCENTILES)
    return MapSummary(
        min=float(finite.min()),
        max=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std()),
        finite_fraction=float(finite.size / values.size),
        positive_fraction=float((finite > 0).mean()),
        percentiles={f"p{p}": float(v) for p, v in zip(SUMMARY_PERCENTILES, levels)},
    )


@dataclass(frozen=True)
class MapRange:
    """The raw saliency values that map to the bottom and top of the colour map."""

    low: float
    high: float


def colour_range(low: float, high: float, show_negative: bool) -> MapRange:
    """The colour map's range for raw values spanning ``[low, high]``: from 0 when negatives are
    hidden, from the minimum when shown; ``high > low`` always (a flat map renders cold)."""
    low = low if show_negative else 0.0
    high = max(high, low)
    return MapRange(low, high if high > low else low + 1.0)


def map_range(maps: np.ndarray, slice_index: int, scope: NormalisationScope, show_negative: bool) -> MapRange:
    """The normalisation range of one class's map, over the volume or over one slice.

    Per-volume ranges make slices comparable (the same colour means the same saliency on every
    slice); per-slice ranges stretch every slice to the full colour map. With negatives hidden the
    range starts at 0 and negative saliency is treated as none; with negatives shown it starts at
    the minimum, so the coldest colour marks the most negative value. A study's range comes from
    the stored summaries (``colour_range`` of their min and max), not from here.

    Args:
        maps: ``(N, H, W)`` raw signed map of one class.
        slice_index: the slice shown (used when ``scope == "slice"``).
        scope: ``"volume"`` or ``"slice"``.
        show_negative: whether negative values take part in the range.

    Returns:
        The range; ``high > low`` always (a flat map gets a unit range so it renders cold).
    """
    if scope not in ("volume", "slice"):
        raise ValueError(f"normalisation scope must be 'volume' or 'slice', got {scope!r}")
    region = maps if scope == "volume" else maps[slice_index]
    finite = region[np.isfinite(region)]
    if finite.size == 0:
        return MapRange(0.0, 1.0)
    return colour_range(float(finite.min()), float(finite.max()), show_negative)
