"""The slide viewer's tile decisions: grids, levels for a zoom, tiles in view, the byte-bounded
cache, the scale bar, and the heatmap layer drawn over tiles."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.explain.summary import MapRange
from engine.imaging.render import OverlaySpec, colormap, overlay_rgba, render_slice
from engine.imaging.slide_tiles import TileCache, TileGrid, TileKey, microns_label, region_colour, scale_bar

#: The 3-level mosaic of tests/engine/test_slide.py: 896 x 672 at level 0, halved twice.
GRID = TileGrid(((896, 672), (448, 336), (224, 168)), (1.0, 2.0, 4.0), 256)


def test_each_level_has_its_own_tile_grid_clipped_at_the_edge():
    assert [GRID.shape(k) for k in range(3)] == [(4, 3), (2, 2), (1, 1)]
    assert GRID.region(TileKey(0, 3, 2)) == ((768, 512), (128, 160))  # the corner tile is cut
    assert GRID.region(TileKey(1, 1, 0)) == ((512, 0), (192, 256))  # level-1 pixels from level-0 x 512
    assert GRID.rect0(TileKey(1, 1, 1)) == (512.0, 512.0, 384.0, 160.0)
    with pytest.raises(ValueError, match="outside the 2 x 2 grid of level 1"):
        GRID.region(TileKey(1, 2, 0))


def test_the_level_read_is_the_coarsest_still_as_sharp_as_the_screen():
    assert GRID.level_for_scale(4.0) == 0  # zoomed in past full resolution
    assert GRID.level_for_scale(1.0) == 0
    assert GRID.level_for_scale(0.6) == 0  # level 1 (2 level-0 px per pixel) would be blurred
    assert GRID.level_for_scale(0.5) == 1
    assert GRID.level_for_scale(0.3) == 1
    assert GRID.level_for_scale(0.25) == 2 and GRID.level_for_scale(0.01) == 2
    with pytest.raises(ValueError, match="positive"):
        GRID.level_for_scale(0.0)


def test_tiles_in_view_cover_the_viewport_nearest_the_centre_first():
    keys = GRID.tiles_in_view(0, (300.0, 100.0, 300.0, 200.0))  # x 300..600, y 100..300
    assert set(keys) == {TileKey(0, c, r) for c in (1, 2) for r in (0, 1)}
    assert GRID.tiles_in_view(0, (-500.0, -500.0, 100.0, 100.0)) == []  # off the slide
    whole = GRID.tiles_in_view(0, (-10.0, -10.0, 2000.0, 2000.0))
    assert len(whole) == 12
    centred = GRID.tiles_in_view(0, (0.0, 0.0, 896.0, 672.0))
    assert centred[0] in {TileKey(0, 1, 1), TileKey(0, 2, 1)} and centred[-1].col in (0, 3)
    # A viewport edge on a tile boundary does not pull in the next tile.
    assert GRID.tiles_in_view(1, (0.0, 0.0, 512.0, 512.0)) == [TileKey(1, 0, 0)]


def test_the_cache_keeps_the_most_recently_used_tiles_within_its_bytes():
    tile = np.zeros((256, 256, 3), np.uint8)  # 196,608 bytes
    cache = TileCache(max_bytes=3 * tile.nbytes)
    for col in range(3):
        cache.put(TileKey(0, col, 0), tile.copy())
    assert cache.get(TileKey(0, 0, 0)) is not None  # now the most recent
    cache.put(TileKey(0, 3, 0), tile.copy())
    assert TileKey(0, 1, 0) not in cache and TileKey(0, 0, 0) in cache
    assert len(cache) == 3 and cache.bytes_used == 3 * tile.nbytes
    cache.put(TileKey(0, 0, 0), tile, nbytes=10)  # replacing a tile counts its new size only
    assert cache.bytes_used == 2 * tile.nbytes + 10
    cache.put("huge", tile, nbytes=10 * tile.nbytes)
    assert "huge" not in cache
    cache.clear()
    assert len(cache) == 0 and cache.bytes_used == 0


def test_the_cache_stays_within_its_bound_under_threads():
    cache = TileCache(max_bytes=1000)

    def fill(offset: int) -> None:
        for i in range(500):
            cache.put((offset, i), np.zeros(37, np.uint8))
            cache.get((offset, i - 3))

    threads = [threading.Thread(target=fill, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.bytes_used == 37 * len(cache) and cache.bytes_used <= 1000 and len(cache) == 1000 // 37


def test_the_scale_bar_shows_the_longest_round_length_that_fits():
    bar = scale_bar(mpp=0.5, scale=1.0, longest=150)  # 75 um fit: 50 um
    assert (bar.microns, bar.pixels, bar.label) == (50.0, 100.0, "50 \u00b5m")
    bar = scale_bar(mpp=0.5, scale=0.01, longest=150)  # 7500 um fit: 5 mm
    assert (bar.microns, bar.label) == (5000.0, "5 mm") and bar.pixels == pytest.approx(100.0)
    assert scale_bar(mpp=0.25, scale=1.0, longest=100).label == "20 \u00b5m"
    with pytest.raises(ValueError):
        scale_bar(mpp=0.0, scale=1.0)


@pytest.mark.parametrize("threshold, contour", [(0.0, False), (0.4, False), (0.0, True)])
def test_the_overlay_layer_drawn_over_an_image_is_the_blended_slice(threshold, contour):
    """Composited with the "over" rule onto the image, the layer gives ``render_slice``'s pixels
    (within one grey level of rounding; a contour pixel on two levels' rims takes the higher
    level's colour once, where ``render_slice`` blends both, 10% of the lower one showing)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (20, 30, 3)).astype(np.float32)
    saliency = rng.normal(0, 1, (20, 30)).astype(np.float32)
    saliency[:3] = np.nan
    spec = OverlaySpec(saliency, MapRange(-1.0, 2.0), colormap("inferno"), 0.7, threshold, contour)
    expected = render_slice(image, 127.5, 255.0, spec)[..., :3].astype(np.float64)
    layer = overlay_rgba(spec).astype(np.float64)
    alpha = layer[..., 3:4] / 255.0
    composited = image * (1 - alpha) + layer[..., :3] * alpha
    assert np.abs(composited - expected).max() <= (0.1 * 255 if contour else 1.0)
    assert ((layer[..., 3] > 0) == (np.abs(expected - image).max(axis=2) > 0.5)).mean() > 0.97
    assert (layer[:3, :, 3] == 0).all()  # no map (NaN): nothing drawn


class LevelReader:
    """Level k of a 1024 x 1024 slide is uniform grey 10 * (k + 1), downsamples 1, 4, 16."""

    downsamples = (1.0, 4.0, 16.0)

    def __init__(self) -> None:
        self.reads: list[tuple[int, tuple[int, int], tuple[int, int]]] = []

    def read_region(self, level, location, size):
        self.reads.append((level, tuple(location), tuple(size)))
        return np.full((size[1], size[0], 3), 10 * (level + 1), np.uint8)


def test_a_region_colour_is_read_at_the_sharpest_level_that_keeps_it_small():
    reader = LevelReader()
    small = region_colour(reader, (100.0, 200.0, 300.0, 100.0))
    assert (small.level, small.pixels, small.rgb) == (0, 300 * 100, (10.0, 10.0, 10.0))
    assert reader.reads[-1] == (0, (100, 200), (300, 100))
    middle = region_colour(reader, (0.0, 0.0, 1024.0, 600.0), max_side=512)  # level 1: 256 x 150
    assert (middle.level, middle.pixels) == (1, 256 * 150)
    whole = region_colour(reader, (0.0, 0.0, 1024.0, 1024.0), max_side=32)  # no level that coarse: the coarsest
    assert whole.level == 2 and whole.rgb == (30.0, 30.0, 30.0)
    with pytest.raises(ValueError, match="empty"):
        region_colour(reader, (5.0, 5.0, 0.0, 10.0))


def test_lengths_read_in_micrometres_below_a_millimetre():
    assert [microns_label(v) for v in (0.5, 150.0, 999.0, 1000.0, 1234.0)] == [
        "0.5 \u00b5m", "150 \u00b5m", "999 \u00b5m", "1 mm", "1.23 mm"]
