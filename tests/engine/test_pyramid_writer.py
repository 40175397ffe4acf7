"""The pyramid writer's files read back as slides with the levels, pixels and pixel size written."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.pyramid_writer import halve, write_pyramid
from engine.imaging.slide import SlideReader


def test_a_written_pyramid_reads_back_level_by_level(tmp_path):
    rng = np.random.default_rng(0)
    level0 = rng.integers(0, 256, (300, 520, 3)).astype(np.uint8)
    written = write_pyramid(tmp_path / "p.tif", level0, levels=3, mpp=0.25)
    assert [w.shape[:2] for w in written] == [(300, 520), (150, 260), (75, 130)]
    np.testing.assert_array_equal(written[1][4, 7], np.round(level0[8:10, 14:16].reshape(4, 3).mean(axis=0) + 1e-9))
    with SlideReader(tmp_path / "p.tif") as slide:
        assert slide.dimensions == ((520, 300), (260, 150), (130, 75)) and slide.downsamples == (1.0, 2.0, 4.0)
        assert slide.mpp == pytest.approx((0.25, 0.25))
        for k, level in enumerate(written):
            np.testing.assert_array_equal(slide.read_region(k, (0, 0), level.shape[1::-1]), level)


def test_halve_drops_an_odd_edge_and_refuses_grey(tmp_path):
    assert halve(np.zeros((5, 7, 3), np.uint8)).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="must be \\(h, w, 3\\) uint8"):
        write_pyramid(tmp_path / "g.tif", np.zeros((64, 64), np.uint8))
