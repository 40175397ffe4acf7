"""Plane geometry of marks and measurements in image coordinates ``(row, col)``, no Qt.

Pixel ``(r, c)`` covers ``[r - 0.5, r + 0.5] x [c - 0.5, c + 0.5]``. Distances and areas in
millimetres use the volume's in-plane spacing ``(dy, dx)`` (row step, column step), so a ruler
on an anisotropic image measures anatomy, not pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]

#: Vertices of the polygon an ellipse is stored as (the database keeps points, boxes, polygons).
ELLIPSE_VERTICES = 36


def ellipse_polygon(corner_a: Point, corner_b: Point, vertices: int = ELLIPSE_VERTICES) -> tuple[Point, ...]:
    """The ellipse inscribed in the box between two corners, as ``vertices`` points on its outline
    (first at the top, clockwise on screen)."""
    (r0, c0), (r1, c1) = corner_a, corner_b
    centre_r, centre_c = (r0 + r1) / 2.0, (c0 + c1) / 2.0
    half_r, half_c = abs(r1 - r0) / 2.0, abs(c1 - c0) / 2.0
    angles = np.linspace(0.0, 2.0 * math.pi, vertices, endpoint=False)
    return tuple((float(centre_r - half_r * math.cos(a)), float(centre_c + half_c * math.sin(a))) for a in angles)


def polygon_area(points: Sequence[Point]) -> float:
    """Area enclosed by a polygon in squared pixel units (shoelace formula)."""
    rows = np.array([p[0] for p in points], dtype=float)
    cols = np.array([p[1] for p in points], dtype=float)
    return float(abs(np.dot(rows, np.roll(cols, -1)) - np.dot(cols, np.roll(rows, -1))) / 2.0)


def distance_mm(a: Point, b: Point, spacing: tuple[float, float]) -> float:
    """Length of the segment from ``a`` to ``b`` in millimetres (``spacing`` = (dy, dx) in mm)."""
    dy, dx = spacing
    return float(math.hypot((b[0] - a[0]) * dy, (b[1] - a[1]) * dx))


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd rule: True when ``point`` lies inside ``polygon``."""
    row, col = point
    inside = False
    count = len(polygon)
    for i in range(count):
        (r0, c0), (r1, c1) = polygon[i], polygon[(i + 1) % count]
        if (r0 > row) != (r1 > row):
            crossing = c0 + (row - r0) * (c1 - c0) / (r1 - r0)
            if col < crossing:
                inside = not inside
    return inside


def box_mask(shape: tuple[int, int], corner_a: Point, corner_b: Point) -> np.ndarray:
    """The pixels of the box between two corners, both corner pixels included (a corner is taken
    as the pixel it lies on, so a box dragged from pixel A to pixel B covers A and B)."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    top, bottom = sorted(int(np.floor(v + 0.5)) for v in (corner_a[0], corner_b[0]))
    left, right = sorted(int(np.floor(v + 0.5)) for v in (corner_a[1], corner_b[1]))
    return (rows >= top) & (rows <= bottom) & (cols >= left) & (cols <= right)


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the pixel values inside a region.

    Attributes:
        mean, sd: of the values (``sd`` the sample standard deviation, ddof 1; 0 for one pixel).
        minimum, maximum: of the values.
        pixels: how many pixel centres lie inside.
        area_mm2: the region's area: pixels times the pixel area ``dy * dx``.
    """

    mean: float
    sd: float
    minimum: float
    maximum: float
    pixels: int
    area_mm2: float


def roi_stats(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> RoiStats | None:
    """``RoiStats`` of ``image`` (``(H, W)``, or ``(H, W, 3)``: the mean of the channels) where
    ``mask`` is True; None when no pixel centre lies inside."""
    values = np.asarray(image, dtype=np.float64)
    if values.ndim == 3:
        values = values.mean(axis=2)
    inside = values[mask]
    inside = inside[np.isfinite(inside)]
    if inside.size == 0:
        return None
    sd = float(inside.std(ddof=1)) if inside.size > 1 else 0.0
    dy, dx = spacing
    return RoiStats(float(inside.mean()), sd, float(inside.min()), float(inside.max()), int(inside.size),
                    float(inside.size * dy * dx))
