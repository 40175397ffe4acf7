"""Geometry of DICOM image planes and stacks: ordering, spacing, affine, display orientation.

DICOM places each 2-D plane in patient space (LPS, mm) with Image Position (Patient), the centre
of the first transmitted pixel, and Image Orientation (Patient), two direction cosines: the first
triplet points along a row (the way the column index grows), the second down a column (the way
the row index grows). Pixel Spacing is ``(between rows, between columns)``. A stack of planes is
ordered by projecting each position onto the plane normal (row cosine x column cosine), as the
DICOM standard (PS3.3 C.7.6.2.1.1) and every careful reader do; instance numbers and file names
say nothing reliable about where a slice lies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Positions closer than this along the normal (mm) are the same slice position.
DUPLICATE_TOLERANCE_MM = 1e-3
#: A gap longer than this multiple of the typical spacing means slices are missing.
GAP_FACTOR = 1.5


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    """Unit slice normal (row cosine x column cosine) of an Image Orientation (Patient)."""
    cosines = np.asarray(orientation, dtype=np.float64)
    normal = np.cross(cosines[:3], cosines[3:6])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise ValueError("row and column direction cosines are parallel")
    return normal / norm


def plane_affine(
    orientation: Sequence[float] | None,
    position: Sequence[float] | None,
    pixel_spacing: tuple[float, float],
    slice_step: np.ndarray,
) -> np.ndarray:
    """Index ``(slice, row, col)`` to LPS affine of a stack of parallel planes.

    Args:
        orientation: Image Orientation (Patient), or None for an image with no patient frame
            (then rows run along +y and columns along +x, as ``volume.plain_affine`` does).
        position: Image Position (Patient) of the first plane, or None for the origin.
        pixel_spacing: ``(dy, dx)`` in mm.
        slice_step: vector in mm from one plane to the next.
    """
    cosines = (
        np.asarray(orientation, dtype=np.float64)
        if orientation is not None
        else np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    )
    affine = np.eye(4)
    affine[:3, 0] = slice_step
    affine[:3, 1] = cosines[3:6] * pixel_spacing[0]
    affine[:3, 2] = cosines[:3] * pixel_spacing[1]
    if position is not None:
        affine[:3, 3] = np.asarray(position, dtype=np.float64)
    return affine


@dataclass
class StackOrder:
    """Where each plane of a stack goes.

    Attributes:
        order: indices of the input planes to keep, in slice order.
        slice_step: vector (mm) between consecutive kept planes.
        spacing: distance (mm) between planes along the normal (median gap).
        origin: position of the first kept plane, or None when positions were missing.
        warnings: plain sentences for the header (missing slices, duplicates, fallbacks).
        positions_mm: each kept plane's distance along the normal, for the viewer.
    """

    order: list[int]
    slice_step: np.ndarray
    spacing: float
    origin: np.ndarray | None
    warnings: list[str] = field(default_factory=list)
    positions_mm: list[float] = field(default_factory=list)


def order_stack(
    positions: Sequence[Sequence[float] | None],
    orientation: Sequence[float] | None,
    instance_numbers: Sequence[int | None],
    fallback_spacing: float,
) -> StackOrder:
    """Order planes by their position along the normal and measure the stack.

    Duplicated positions keep the first plane (lowest instance number) and are reported; gaps
    longer than ``GAP_FACTOR`` times the median spacing are reported as missing slices (the
    planes are not moved: the viewer sees real pixels only). Without positions for every plane
    (or without an orientation), planes are ordered by instance number and that is reported.

    Args:
        positions: Image Position (Patient) of each plane, None where absent.
        orientation: the common Image Orientation (Patient), or None.
        instance_numbers: Instance Number (or frame number) of each plane, None where absent.
        fallback_spacing: slice spacing to use when positions cannot give one (mm).
    """
    count = len(positions)
    ranks = [(n if n is not None else 10**9, k) for k, n in enumerate(instance_numbers)]
    by_instance = [k for _, k in sorted(ranks)]
    if count == 1 or orientation is None or any(p is None for p in positions):
        warnings = []
        if count > 1:
            warnings.append(
                "slice positions are missing: slices ordered by Instance Number, "
                f"spacing {fallback_spacing:g} mm taken from the header"
            )
        normal = normal_of(orientation) if orientation is not None else np.array([0.0, 0.0, 1.0])
        first = positions[by_instance[0]]
        return StackOrder(
            order=by_instance,
            slice_step=normal * fallback_spacing,
            spacing=float(fallback_spacing),
            origin=np.asarray(first, dtype=np.float64) if first is not None else None,
            warnings=warnings,
            positions_mm=[float(k * fallback_spacing) for k in range(count)],
        )
    normal = normal_of(orientation)
    points = np.asarray(positions, dtype=np.float64)
    distance = points @ normal
    rank_of = {k: r for r, k in enumerate(by_instance)}
    ordered = sorted(range(count), key=lambda k: (round(float(distance[k]), 3), rank_of[k]))
    kept, warnings = _drop_duplicates(ordered, distance)
    steps = np.diff(distance[kept])
    spacing = float(np.median(steps)) if len(steps) else float(fallback_spacing)
    if spacing <= 0:
        spacing = float(fallback_spacing)
    warnings += _gap_warnings(distance[kept], steps, spacing)
    regular = [k for k in range(len(steps)) if abs(steps[k] - spacing) <= 0.1 * spacing]
    if regular:
        vectors = np.diff(points[kept], axis=0)[regular]
        slice_step = vectors.mean(axis=0)
    else:
        slice_step = normal * spacing
    return StackOrder(
        order=kept,
        slice_step=slice_step,
        spacing=spacing,
        origin=points[kept[0]],
        warnings=warnings,
        positions_mm=[round(float(d), 4) for d in distance[kept]],
    )


def _drop_duplicates(ordered: list[int], distance: np.ndarray) -> tuple[list[int], list[str]]:
    kept: list[int] = []
    repeats: dict[float, int] = {}
    for k in ordered:
        if kept and abs(distance[k] - distance[kept[-1]]) < DUPLICATE_TOLERANCE_MM:
            key = round(float(distance[kept[-1]]), 3)
            repeats[key] = repeats.get(key, 1) + 1
            continue
        kept.append(k)
    warnings = []
    if repeats:
        where = ", ".join(f"{d:g} mm ({n} images)" for d, n in list(repeats.items())[:5])
        more = f" and {len(repeats) - 5} more" if len(repeats) > 5 else ""
        warnings.append(
            f"duplicate slice positions at {where}{more}: kept the first image of each"
        )
    return kept, warnings


def _gap_warnings(distance: np.ndarray, steps: np.ndarray, spacing: float) -> list[str]:
    warnings = []
    for k in np.nonzero(steps > GAP_FACTOR * spacing)[0]:
        missing = int(round(steps[k] / spacing)) - 1
        warnings.append(
            f"gap of {steps[k]:.4g} mm between slices at {distance[k]:.4g} and "
            f"{distance[k + 1]:.4g} mm (spacing {spacing:.4g} mm): about {max(missing, 1)} "
            "slice(s) missing"
        )
    return warnings


def is_axial(affine: np.ndarray) -> bool:
    """True when the slice axis runs mostly head-to-foot (an axial stack)."""
    column = np.abs(affine[:3, 0])
    if not np.any(column):
        return False
    return int(np.argmax(column)) == 2


def to_radiological(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip and transpose an axial ``(C, N, H, W)`` stack into the display orientation.

    Columns end up running right to left (+x), rows anterior to posterior (+y) and slices
    inferior to superior (+z); the affine follows every flip so index-to-patient stays true.
    Non-axial stacks are returned unchanged (they keep their acquisition plane).
    """
    if not is_axial(affine):
        return array, affine
    affine = affine.copy()
    if abs(affine[0, 1]) > abs(affine[0, 2]):  # rows run along x: swap the in-plane axes
        array = np.swapaxes(array, 2, 3)
        affine[:, [1, 2]] = affine[:, [2, 1]]
    for axis, world in ((0, 2), (1, 1), (2, 0)):
        if affine[world, axis] < 0:
            length = array.shape[axis + 1]
            affine[:3, 3] += affine[:3, axis] * (length - 1)
            affine[:3, axis] = -affine[:3, axis]
            array = np.flip(array, axis=axis + 1)
    return np.ascontiguousarray(array), affine
