"""Whole-slide analysis: a real pyramidal TIFF of held-out LC25000 patches laid out in class regions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.imaging.open import read_image
from engine.imaging.pyramid import write_pyramid
from engine.imaging.slide import SlideReader
from engine.models import load_bundle
from engine.tasks.histopathology.data import CLASS_FOLDERS
from engine.tasks.histopathology.mosaic import patch_pool
from engine.analysis import add_methods, analyse_case
from engine.analysis.slide import analyse_slide, plan_tiles, thumbnail_grid
from engine.progress import Cancelled
from tests.engine.tasks.test_histopathology import lc25000  # noqa: F401 (fixture)

CELL = 224
MPP = 0.5
#: Class region per cell: folder name, or None for glass. Two cells of each class, glass between.
LAYOUT = (
    ("lung_aca", "lung_aca", None, "lung_scc", "lung_scc", None, "lung_n", "lung_n"),
    ("lung_aca", "lung_aca", None, "lung_scc", "lung_scc", None, "lung_n", "lung_n"),
)


@dataclass
class Mosaic:
    path: Path
    cells: dict[tuple[int, int], Path]  # (row, col) -> the patch file placed there
    labels: dict[tuple[int, int], int]  # (row, col) -> class index


def held_out_patches(lc25000: Path, per_class: int) -> dict[str, list[Path]]:
    """The first ``per_class`` test-split patches of each class folder of the shipped bundle."""
    pool = patch_pool(lc25000, load_bundle("histopathology").metadata["split"]["test"])
    return {folder: pool[k][:per_class] for k, folder in enumerate(CLASS_FOLDERS)}


def build_slide(path: Path, lc25000: Path, layout=LAYOUT, levels: int = 3) -> Mosaic:
    """Write a tiled pyramidal TIFF (subIFDs, zlib, 0.5 um/px) of held-out patches on white glass."""
    rng = np.random.default_rng(11)
    level0 = np.clip(rng.normal(243, 3, (len(layout) * CELL, len(layout[0]) * CELL, 3)), 0, 255).astype(np.uint8)
    pool = held_out_patches(lc25000, per_class=max(sum(row.count(f) for row in layout) for f in CLASS_FOLDERS))
    cells, labels = {}, {}
    for r, row in enumerate(layout):
        for c, folder in enumerate(row):
            if folder is None:
                continue
            source = pool[folder].pop(0)
            level0[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = np.asarray(Image.open(source).convert("RGB"))
            cells[(r, c)], labels[(r, c)] = source, list(CLASS_FOLDERS).index(folder)
    write_pyramid(path, level0, MPP, levels)
    return Mosaic(path, cells, labels)


@pytest.fixture(scope="module")
def mosaic(lc25000: Path, tmp_path_factory) -> Mosaic:
    return build_slide(tmp_path_factory.mktemp("slide") / "regions.tif", lc25000)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("histopathology")


@pytest.fixture(scope="module")
def analysis(bundle, mosaic):
    return analyse_slide(bundle, mosaic.path, grid_shape=(112, 448), batch_size=5)


def test_tiles_are_the_tissue_cells_read_at_the_training_magnification(analysis, mosaic):
    tiling = analysis.slide
    cells = sorted((int(r) // CELL, int(c) // CELL) for r, c in tiling.tile_boxes[:, :2])
    assert cells == sorted(mosaic.cells)
    assert (tiling.tile_boxes[:, 2:] == CELL).all() and tiling.level == 0 and tiling.tile_mpp == MPP
    assert analysis.probabilities.shape == (len(mosaic.cells), 3) and analysis.item_axis == "tile"
    np.testing.assert_allclose(analysis.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The verdict's probabilities are the tile shares (four cells of each class); the mean is its detail.
    np.testing.assert_allclose(analysis.verdict.probabilities, [1 / 3, 1 / 3, 1 / 3], atol=1e-6)
    mean = analysis.probabilities.mean(axis=0)
    assert analysis.verdict.details == ("Mean tile probability: " + ", ".join(
        f"{name} {p:.0%}" for name, p in zip(analysis.class_names, mean)),)


def test_tile_probabilities_equal_the_patch_predictions(analysis, mosaic, bundle):
    """A tile that is exactly a patch gets exactly the patch's probabilities."""
    for (row0, col0), probabilities in zip(analysis.slide.tile_boxes[:, :2], analysis.probabilities):
        patch = read_image(mosaic.cells[(row0 // CELL, col0 // CELL)])
        np.testing.assert_allclose(probabilities, bundle.predict(patch).probabilities[0], atol=1e-4)


def test_probability_map_puts_each_class_where_its_patches_are(analysis):
    # 112 x 448 grid: each cell is 56 x 56 grid pixels; class regions are columns 0-1, 3-4, 6-7.
    regions = {0: slice(0, 112), 1: slice(168, 280), 2: slice(336, 448)}
    for k, columns in regions.items():
        region = analysis.slide.probability_maps[:, 0, :, columns]
        assert np.isfinite(region).all()
        assert int(np.argmax(region.mean(axis=(1, 2)))) == k
    for glass in (slice(112, 168), slice(280, 336)):
        assert np.isnan(analysis.slide.probability_maps[:, 0, :, glass]).all()


def test_stitched_maps_land_on_tissue_only(analysis):
    gradcam = analysis.maps["gradcam"]
    maps = gradcam.maps[:, 0]  # one item: the thumbnail grid
    assert maps.shape == (3, 112, 448) and gradcam.classes == (0, 1, 2)
    tissue = np.zeros((112, 448), dtype=bool)
    tissue[:, :112] = tissue[:, 168:280] = tissue[:, 336:] = True
    assert np.isfinite(maps[:, tissue]).all()
    assert np.isnan(maps[:, ~tissue]).all()
    assert gradcam.tile_maps.shape[:2] == (3, 12) and min(gradcam.tile_maps.shape[2:]) >= 7
    assert float(np.nanstd(maps[0])) > 0


def test_default_grid_is_the_thumbnail_and_one_class_can_be_asked_for(bundle, mosaic):
    volume = read_image(mosaic.path)
    try:
        with SlideReader(mosaic.path) as slide:
            assert thumbnail_grid(slide) == volume.shape[1:]
    finally:
        volume.extras["slide"].close()
    one = analyse_slide(bundle, mosaic.path, classes=[1], tile_mpp=1.0)
    assert one.maps["gradcam"].maps[:, 0].shape == (1,) + tuple(volume.shape[1:]) and one.maps["gradcam"].classes == (1,)
    # At 1.0 um/px a 224-px tile covers 448 level-0 pixels, read from level 1 (half resolution).
    assert one.slide.level == 1 and (one.slide.tile_boxes[:, 2:] == 2 * CELL).all()


def test_slide_without_pixel_size_is_tiled_at_level_zero(tmp_path, lc25000):
    path = tmp_path / "nompp.tif"
    rgb = np.asarray(Image.open(next((lc25000 / "lung_scc").iterdir())).convert("RGB"))
    tifffile.imwrite(path, np.tile(rgb, (1, 2, 1)), tile=(256, 256), photometric="rgb", metadata=None)
    with SlideReader(path) as slide:
        plan, mpp, notes = plan_tiles(slide, 224, 0.5)
    assert plan == {"tile_size": 224, "level": 0} and mpp is None and "no pixel size" in notes[0]


def test_progress_is_reported_per_batch_and_cancellation_stops(bundle, mosaic):
    class Recorder:
        def __init__(self, cancel_after: int | None = None):
            self.fractions, self.cancel_after = [], cancel_after

        def report(self, fraction, message=""):
            self.fractions.append(fraction)

        def cancelled(self):
            return self.cancel_after is not None and len(self.fractions) >= self.cancel_after

    recorder = Recorder()
    analyse_slide(bundle, mosaic.path, classes=[0], batch_size=4, grid_shape=(28, 112), progress=recorder)
    batch_reports = [f for f in recorder.fractions if 0.05 < f < 1.0]
    assert len(batch_reports) >= 3 and recorder.fractions == sorted(recorder.fractions) and recorder.fractions[-1] == 1.0
    with pytest.raises(Cancelled):
        analyse_slide(bundle, mosaic.path, batch_size=4, progress=Recorder(cancel_after=2))
    with pytest.raises(ValueError, match="unknown CAM method"):
        analyse_slide(bundle, mosaic.path, methods=["nonsense"])


def test_a_slide_through_analyse_case_adds_methods_from_its_capture(bundle, mosaic):
    """The slide volume (its thumbnail) goes through ``analyse_case``: tiles in batches of 5, one
    forward pass each; LayerCAM afterwards needs none and equals LayerCAM analysed directly.
    Without a kept capture the same tiles are read and captured again, and a note says so."""
    volume = read_image(mosaic.path)
    try:
        calls = []
        hook = bundle.network.register_forward_hook(lambda *_: calls.append(1))
        try:
            analysis = analyse_case(volume, bundle, "gradcam", batch_size=5)
            assert len(calls) == 3  # 12 tissue tiles
            added = add_methods(analysis, volume, bundle, "layercam")
            assert len(calls) == 3
            unkept = analyse_case(volume, bundle, "gradcam", batch_size=5, keep_capture=False)
            recaptured = add_methods(unkept, volume, bundle, "layercam")
            assert len(calls) == 9
        finally:
            hook.remove()
    finally:
        volume.extras["slide"].close()
    assert analysis.kind == "slide" and analysis.slide.grid_shape == tuple(volume.shape[1:])
    # Four cells of each class: both carcinomas present, the likelier named first, the other beside it.
    assert analysis.verdict.label in ("Slide: Adenocarcinoma in 4 of 12 tissue tiles (33%) (also Squamous cell carcinoma in 4)",
                                      "Slide: Squamous cell carcinoma in 4 of 12 tissue tiles (33%) (also Adenocarcinoma in 4)")
    np.testing.assert_allclose(analysis.item_probabilities, analysis.verdict.probabilities[None], atol=1e-7)
    direct = analyse_slide(bundle, mosaic.path, methods=["layercam"], grid_shape=analysis.slide.grid_shape, batch_size=5)
    for result in (added, recaptured):
        np.testing.assert_allclose(result.maps["layercam"].tile_maps, direct.maps["layercam"].tile_maps, atol=1e-5)
        np.testing.assert_allclose(result.maps["layercam"].maps, direct.maps["layercam"].maps, atol=1e-5, equal_nan=True)
    assert any("captured again" in note for note in recaptured.notes)


def test_a_slides_map_is_checked_on_the_tile_likeliest_to_show_the_class(bundle, mosaic, analysis):
    from engine.analysis import check_map

    volume = read_image(mosaic.path)
    try:
        measured = check_map(analysis, volume, bundle, "gradcam", 1)
    finally:
        volume.extras["slide"].close()
    assert measured.item == int(np.argmax(analysis.probabilities[:, 1]))
    tile = measured.report["tile"]
    assert mosaic.labels[(tile["row0"] // CELL, tile["col0"] // CELL)] == 1  # a squamous cell carcinoma cell
    assert tile["probability"] == pytest.approx(float(analysis.probabilities[measured.item, 1]))
    assert 0.0 <= measured.report["deletion"]["auc"] <= 1.0
