"""How far a half-precision analysis is from the float32 analysis of the same case.

``--half bf16|fp16`` runs the network under ``torch.autocast``: convolutions and matrix products
in 16 bits, the maps computed in float32 from what was captured. Each run that uses it measures
the cost on one case by analysing it in both precisions (``analyse_in_precision``):
``precision_difference`` compares the probabilities and every method's maps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.analysis.result import CaseAnalysis
from engine.progress import NullProgress, Progress, ScaledProgress

if TYPE_CHECKING:
    from engine.imaging.volume import ImageVolume
    from engine.models.bundle import Bundle

#: Share of the progress the half-precision run takes when the float32 run follows it.
HALF_SHARE = 0.7


@dataclass(frozen=True)
class PrecisionDifference:
    """The half-precision analysis of one case against its float32 analysis.

    Attributes:
        half: the autocast dtype's name ("bf16" or "fp16").
        source: the case compared.
        max_abs_probability: largest ``|p_half - p_fp32|`` over every item and class.
        changed_predictions: items whose most likely class differs between the two.
        map_max_abs: per method, the largest ``|map_half - map_fp32|`` (NaN off a slide's tissue
            is left out).
        map_relative: per method, ``map_max_abs`` over the largest ``|map_fp32|`` (the plain
            difference where the float32 map is all zero): the share of the map's range that moved.
        half_seconds, float32_seconds: how long each analysis took (0 when not timed).
    """

    half: str
    source: str
    max_abs_probability: float
    changed_predictions: int
    map_max_abs: dict[str, float]
    map_relative: dict[str, float]
    half_seconds: float = 0.0
    float32_seconds: float = 0.0

    @property
    def max_map_relative(self) -> float:
        """The largest relative map difference over the methods (0 with no maps)."""
        return max(self.map_relative.values(), default=0.0)

    def to_dict(self) -> dict:
        return {
            "half": self.half,
            "source": self.source,
            "max_abs_probability": self.max_abs_probability,
            "changed_predictions": self.changed_predictions,
            "map_max_abs": dict(self.map_max_abs),
            "map_relative": dict(self.map_relative),
            "seconds": {self.half: round(self.half_seconds, 3), "fp32": round(self.float32_seconds, 3)},
        }


def _largest(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.abs(finite).max()) if finite.size else 0.0


def precision_difference(reference: CaseAnalysis, other: CaseAnalysis, half: str) -> PrecisionDifference:
    """Compare a half-precision analysis (``other``) with the float32 one (``reference``).

    Args:
        reference: the case analysed in float32.
        other: the same case, bundle, methods and classes analysed under autocast.
        half: the dtype name ``other`` ran in, for the report.

    Raises:
        ValueError: the two analyses differ in their items, classes or methods.
    """
    if reference.probabilities.shape != other.probabilities.shape or set(reference.maps) != set(other.maps):
        raise ValueError(f"{reference.source}: the analyses compared differ in their items or methods")
    probability = _largest(other.probabilities.astype(np.float64) - reference.probabilities)
    changed = 0
    if len(reference.probabilities):
        changed = int((reference.probabilities.argmax(axis=1) != other.probabilities.argmax(axis=1)).sum())
    absolute, relative = {}, {}
    for method, expected in reference.maps.items():
        got = other.maps[method]
        if got.maps.shape != expected.maps.shape or got.classes != expected.classes:
            raise ValueError(f"{reference.source}: the {method} maps compared differ in shape or classes")
        largest = _largest(got.maps.astype(np.float64) - expected.maps)
        scale = _largest(expected.maps.astype(np.float64))
        absolute[method] = largest
        relative[method] = largest / scale if scale > 0 else largest
    return PrecisionDifference(half, str(reference.source), probability, changed, absolute, relative)


def analyse_in_precision(
    volume: "ImageVolume",
    bundle: "Bundle",
    half: str | None,
    *,
    compare: bool = True,
    progress: Progress | None = None,
    **options,
) -> tuple[CaseAnalysis, PrecisionDifference | None]:
    """``analyse_case`` with the network under ``half``'s autocast (float32 when None) and, when
    ``compare`` and ``half`` are given, the same analysis in float32 and their difference.

    Args:
        volume, bundle: as ``engine.analysis.analyse_case`` takes them.
        half: "bf16", "fp16" or None (``engine.device.autocast``).
        compare: also run float32 and measure the difference (with ``half`` only).
        progress: told as each analysis goes; cancellation raises ``Cancelled``.
        **options: the rest of ``analyse_case``'s arguments (methods, classes, batch_size, ...).

    Returns:
        ``(the half-precision analysis, its PrecisionDifference or None)``.

    Raises:
        engine.device.PrecisionError: a half precision the bundle's device does not run.
    """
    from engine.analysis.case import analyse_case
    from engine.device import autocast

    progress = progress or NullProgress()
    comparing = compare and half is not None
    started = time.perf_counter()
    with autocast(bundle.device, half):
        analysis = analyse_case(volume, bundle, progress=ScaledProgress(progress, 0.0, HALF_SHARE if comparing else 1.0),
                                **options)
    if not comparing:
        return analysis, None
    middle = time.perf_counter()
    reference = analyse_case(volume, bundle, progress=ScaledProgress(progress, HALF_SHARE, 1.0), **options)
    difference = precision_difference(reference, analysis, half)
    return analysis, replace(difference, half_seconds=middle - started, float32_seconds=time.perf_counter() - middle)
