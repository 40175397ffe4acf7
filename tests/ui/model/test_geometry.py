"""Plane geometry of marks and measures: areas, hit tests, ROI statistics, millimetres."""

from __future__ import annotations

import numpy as np
import pytest

from ui.model.geometry import (
    box_mask, distance_mm, ellipse_polygon, point_in_polygon, polygon_area, roi_stats,
)


def test_an_ellipse_polygon_has_the_ellipses_area_and_stays_in_its_box():
    outline = ellipse_polygon((10.0, 20.0), (30.0, 60.0))
    assert polygon_area(outline) == pytest.approx(np.pi * 10 * 20, rel=0.01)
    rows, cols = zip(*outline)
    assert min(rows) == pytest.approx(10.0) and max(cols) == pytest.approx(60.0)


def test_point_in_polygon_and_distance_in_millimetres():
    square = [(0.0, 0.0), (0.0, 4.0), (4.0, 4.0), (4.0, 0.0)]
    assert point_in_polygon((2.0, 2.0), square) and not point_in_polygon((5.0, 2.0), square)
    assert distance_mm((0.0, 0.0), (3.0, 4.0), (1.0, 1.0)) == 5.0
    assert distance_mm((0.0, 0.0), (3.0, 4.0), (2.0, 0.5)) == pytest.approx(np.hypot(6.0, 2.0))


def test_roi_stats_of_a_box_include_both_corner_pixels():
    image = np.arange(25, dtype=float).reshape(5, 5)
    mask = box_mask(image.shape, (1.2, 1.0), (2.9, 3.4))  # pixels rows 1-3, cols 1-3
    stats = roi_stats(image, mask, (0.5, 2.0))
    inside = image[1:4, 1:4]
    assert stats.pixels == 9 and stats.mean == inside.mean() and stats.sd == pytest.approx(inside.std(ddof=1))
    assert stats.area_mm2 == 9 * 0.5 * 2.0 and (stats.minimum, stats.maximum) == (6.0, 18.0)
    assert roi_stats(image, np.zeros_like(image, dtype=bool), (1.0, 1.0)) is None
