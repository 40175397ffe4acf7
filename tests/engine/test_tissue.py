"""Tissue detection and tile grid on a real pyramidal TIFF whose cell labels are known."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.slide import SlideReader
from engine.imaging.tissue import (
    TissueMap,
    detect_tissue,
    otsu_threshold,
    read_tile,
    tile_grid,
    tissue_mask,
)
from tests.engine.test_slide import CELL, LAYOUT, MPP, build_pyramid


@pytest.fixture(scope="module")
def slide_and_mosaic(shared_data, tmp_path_factory):
    lc25000 = shared_data / "histopathology-lc25000"
    if not lc25000.is_dir():
        pytest.skip(f"{lc25000} is missing")
    mosaic = build_pyramid(tmp_path_factory.mktemp("tissue") / "mosaic.tif", lc25000)
    with SlideReader(mosaic.path) as slide:
        yield slide, mosaic


def _cell_means(tissue: TissueMap) -> np.ndarray:
    cells = np.zeros((len(LAYOUT), len(LAYOUT[0])))
    for r in range(cells.shape[0]):
        for c in range(cells.shape[1]):
            cells[r, c] = tissue.fraction(c * CELL, r * CELL, CELL, CELL)
    return cells


def test_otsu_splits_two_populations():
    values = np.concatenate([np.full(300, 0.02), np.full(100, 0.6)]) + np.linspace(0, 0.01, 400)
    threshold = otsu_threshold(values)
    assert values[:300].max() < threshold <= values[300:].min()


def test_blank_glass_has_no_tissue():
    glass = np.clip(np.random.default_rng(0).normal(240, 4, (128, 128, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(glass).any()
    assert not tissue_mask(glass, method="optical_density").any()


@pytest.mark.parametrize("method", ["saturation", "optical_density"])
def test_tissue_marks_the_patches_and_not_the_glass(slide_and_mosaic, method):
    slide, _ = slide_and_mosaic
    tissue = detect_tissue(slide, method=method, view_size=448)
    assert tissue.downsample == 2.0 and tissue.mask.shape == (336, 448)
    cells = _cell_means(tissue)
    is_patch = np.array([[label is not None for label in row] for row in LAYOUT])
    # one benign patch is half alveolar air space (white): it is glass-like there, truly
    assert cells[is_patch].min() > 0.6, cells
    assert cells[is_patch].mean() > 0.9, cells
    assert cells[~is_patch].max() < 0.05, cells


def test_tile_grid_at_level_zero_maps_back_to_the_known_labels(slide_and_mosaic):
    slide, mosaic = slide_and_mosaic
    tiles = tile_grid(slide, CELL, level=0, min_tissue_fraction=0.5)
    assert len(tiles) == len(mosaic.labels)
    for tile in tiles:
        assert (tile.level, tile.w, tile.h) == (0, CELL, CELL)
        cell = (tile.y // CELL, tile.x // CELL)
        assert cell in mosaic.labels  # every tile lands on a patch of known class
        assert tile.tissue_fraction > 0.6
        np.testing.assert_array_equal(read_tile(slide, tile), mosaic.patches[cell])
    assert sorted({mosaic.labels[(t.y // CELL, t.x // CELL)] for t in tiles}) == ["lung_aca", "lung_n", "lung_scc"]
    all_tiles = tile_grid(slide, CELL, level=0, min_tissue_fraction=0.0)
    assert len(all_tiles) == len(LAYOUT) * len(LAYOUT[0])


def test_tile_grid_at_a_target_magnification(slide_and_mosaic):
    slide, mosaic = slide_and_mosaic
    tissue = detect_tissue(slide)
    # 1.0 um/px is level 1 exactly: 112-px tiles there cover one 224-px cell each
    tiles = tile_grid(slide, CELL // 2, target_mpp=2 * MPP, tissue=tissue)
    assert {(t.level, t.w, t.h) for t in tiles} == {(1, CELL // 2, CELL // 2)}
    assert {(t.y // CELL, t.x // CELL) for t in tiles} == set(mosaic.labels)
    assert tiles[0].footprint(slide) == (tiles[0].y, tiles[0].x, CELL, CELL)
    # 0.75 um/px lies between levels: read from level 0 and resize
    between = tile_grid(slide, 112, target_mpp=1.5 * MPP, tissue=tissue, min_tissue_fraction=0.0)
    assert {(t.level, t.w) for t in between} == {(0, 168)}
    assert read_tile(slide, between[0], 112).shape == (112, 112, 3)
    with pytest.raises(ValueError, match="sharper"):
        tile_grid(slide, 112, target_mpp=0.25, tissue=tissue)
    with pytest.raises(ValueError, match="not both"):
        tile_grid(slide, 112, target_mpp=1.0, level=1, tissue=tissue)
