"""Explicit normalisation of raw CAMs, so that maps can be shown and compared.

CAM methods return raw, signed maps. How they are scaled for display is a choice a reader must be
able to see and repeat, so it is made here, explicitly, with the range that was used:

* ``scope`` says over what the range is taken: each 2-D image (the last two axes, i.e. every
  slice or frame on its own), each volume (one batch item over all its spatial axes), or the
  whole study (one range for every map, from ``reference`` or from the maps given), which is the
  only scope in which two maps' colours mean the same thing.
* ``mode`` says how: ``minmax`` maps [min, max] to [0, 1]; ``percentile`` maps the
  [low, high] percentiles to [0, 1] and clips; ``signed`` divides by the largest magnitude, so 0
  stays 0 and the result lies in [-1, 1].

Every mode is an increasing affine map of the raw values (followed at most by clipping): the
order of values is kept and nothing is ever inverted. (MONAI's ``default_normalizer`` maps
(min, max) to (1, 0); ours does not.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

SCOPES = ("image", "volume", "study")
MODES = ("minmax", "percentile", "signed")
#: Percentiles reported by ``map_stats``.
STAT_PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


@dataclass(frozen=True)
class MapStats:
    """Summary of one raw map, stored next to it so a reader can judge its scale.

    Attributes:
        min, max, mean, std: of all finite values.
        positive_fraction: share of finite values above zero.
        percentiles: value at each of ``STAT_PERCENTILES`` (keys are the percent as text, "50").
    """

    min: float
    max: float
    mean: float
    std: float
    positive_fraction: float
    percentiles: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ValueRange:
    """The raw range ``[low, high]`` that a normalisation maps to its output range."""

    low: float
    high: float
    mode: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NormalisedMaps:
    """Normalised maps with the ranges that were used and the stats of the raw maps.

    Attributes:
        maps: normalised maps, same shape as the input (numpy float32, or torch if given torch).
        ranges: one ``ValueRange`` per normalised unit (per image, per volume, or one for a study),
            in C order of the unit axes.
        stats: ``MapStats`` of each raw volume (one per leading batch item).
        scope, mode: as asked.
    """

    maps: np.ndarray | torch.Tensor
    ranges: list[ValueRange]
    stats: list[MapStats]
    scope: str
    mode: str

    def to_dict(self) -> dict:
        """JSON-ready description (without the maps themselves)."""
        return {
            "scope": self.scope,
            "mode": self.mode,
            "ranges": [r.to_dict() for r in self.ranges],
            "stats": [s.to_dict() for s in self.stats],
        }


def as_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """A numpy view of a numpy array or a (detached, CPU) torch tensor."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def map_stats(array: np.ndarray | torch.Tensor) -> MapStats:
    """``MapStats`` of every finite value of ``array`` (all zeros for an empty or all-NaN map)."""
    values = as_numpy(array).astype(np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return MapStats(0.0, 0.0, 0.0, 0.0, 0.0, {f"{p:g}": 0.0 for p in STAT_PERCENTILES})
    levels = np.percentile(values, STAT_PERCENTILES)
    return MapStats(
        min=float(values.min()),
        max=float(values.max()),
        mean=float(values.mean()),
        std=float(values.std()),
        positive_fraction=float((values > 0).mean()),
        percentiles={f"{p:g}": float(v) for p, v in zip(STAT_PERCENTILES, levels)},
    )


def value_range(values: np.ndarray, mode: str, percentiles: Sequence[float] = (1.0, 99.0)) -> ValueRange:
    """The raw range a ``mode`` maps to its output range, from the finite ``values``.

    Raises:
        ValueError: for an unknown mode or percentiles that are not ``0 <= low < high <= 100``.
    """
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return ValueRange(0.0, 0.0, mode)
    if mode == "minmax":
        return ValueRange(float(finite.min()), float(finite.max()), mode)
    if mode == "percentile":
        low_q, high_q = percentiles
        if not 0.0 <= low_q < high_q <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {tuple(percentiles)}")
        low, high = np.percentile(finite, [low_q, high_q])
        return ValueRange(float(low), float(high), mode)
    if mode == "signed":
        magnitude = float(np.abs(finite).max())
        return ValueRange(-magnitude, magnitude, mode)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def study_range(
    maps: Iterable[np.ndarray | torch.Tensor], mode: str = "minmax", percentiles: Sequence[float] = (1.0, 99.0)
) -> ValueRange:
    """One reference range over several maps, for ``normalise(..., scope="study", reference=...)``."""
    values = [as_numpy(m).astype(np.float64).ravel() for m in maps]
    if not values:
        raise ValueError("study_range needs at least one map")
    return value_range(np.concatenate(values), mode, percentiles)


def apply_range(values: np.ndarray, span: ValueRange) -> np.ndarray:
    """Map raw ``values`` through ``span`` (increasing; a zero-width range gives zeros)."""
    values = np.asarray(values, dtype=np.float64)
    if span.mode == "signed":
        scale = span.high
        out = values / scale if scale > 0 else np.zeros_like(values)
        return np.clip(out, -1.0, 1.0)
    width = span.high - span.low
    out = (values - span.low) / width if width > 0 else np.zeros_like(values)
    return np.clip(out, 0.0, 1.0)


def normalise(
    maps: np.ndarray | torch.Tensor,
    scope: str = "volume",
    mode: str = "minmax",
    reference: ValueRange | None = None,
    percentiles: Sequence[float] = (1.0, 99.0),
) -> NormalisedMaps:
    """Scale raw maps ``(B, *spatial)`` for display, never inverting them.

    Args:
        maps: raw maps ``(B, *spatial)``, numpy or torch; ``spatial`` has one to three axes.
        scope: "image" (each 2-D plane of the last two axes), "volume" (each batch item) or
            "study" (one range for all maps: ``reference`` if given, else computed over ``maps``).
        mode: "minmax", "percentile" or "signed" (see the module docstring).
        reference: a study range from ``study_range`` (only with ``scope="study"``; its mode wins).
        percentiles: ``(low, high)`` percent for the percentile mode.

    Returns:
        ``NormalisedMaps`` with the scaled maps, the ranges used and the raw maps' stats.

    Raises:
        ValueError: for an unknown scope or mode, a reference outside the study scope, or maps
            with fewer than two axes.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if reference is not None and scope != "study":
        raise ValueError(f"a reference range applies to the study scope, not {scope!r}")
    raw = as_numpy(maps).astype(np.float64)
    if raw.ndim < 2:
        raise ValueError(f"maps must be (batch, *spatial), got shape {raw.shape}")
    if scope == "study":
        ranges = [reference if reference is not None else value_range(raw, mode, percentiles)]
        out = apply_range(raw, ranges[0])
    else:
        unit_axes = raw.ndim - 2 if scope == "image" and raw.ndim > 2 else 1
        units = raw.reshape((-1,) + raw.shape[unit_axes:])
        ranges = [value_range(unit, mode, percentiles) for unit in units]
        out = np.stack([apply_range(unit, span) for unit, span in zip(units, ranges)]).reshape(raw.shape)
    out = out.astype(np.float32)
    result = torch.from_numpy(out) if isinstance(maps, torch.Tensor) else out
    return NormalisedMaps(result, ranges, [map_stats(item) for item in raw], scope, mode)
