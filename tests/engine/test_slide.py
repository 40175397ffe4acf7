"""Histopathology reading: patches, patch folders, and a real pyramidal TIFF built from patches."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from engine.errors import ImageReadError
from engine.imaging.open import read_image
from engine.imaging.pyramid import halve, write_pyramid
from engine.imaging.slide import SlideReader, list_patches, read_patch, read_slide_or_patch

CELL = 224
MPP = 0.5
#: Mosaic layout: class folder per cell, None for white glass.
LAYOUT = (
    ("lung_aca", "lung_n", None, "lung_scc"),
    (None, "lung_scc", "lung_aca", None),
    ("lung_n", None, None, "lung_aca"),
)


@dataclass
class Mosaic:
    path: Path
    level0: np.ndarray
    patches: dict[tuple[int, int], np.ndarray]  # (row, col) -> RGB
    labels: dict[tuple[int, int], str]


def build_pyramid(path: Path, lc25000: Path) -> Mosaic:
    """Write a 3-level tiled pyramidal TIFF (subIFDs, zlib, 256-px tiles, 0.5 um/px)."""
    rng = np.random.default_rng(7)
    level0 = np.clip(rng.normal(243, 3, (len(LAYOUT) * CELL, len(LAYOUT[0]) * CELL, 3)), 0, 255).astype(np.uint8)
    patches, labels, used = {}, {}, {}
    for r, row in enumerate(LAYOUT):
        for c, label in enumerate(row):
            if label is None:
                continue
            index = used.get(label, 0)
            used[label] = index + 1
            source = sorted((lc25000 / label).iterdir())[index]
            rgb = np.asarray(Image.open(source).convert("RGB"))
            level0[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = rgb
            patches[(r, c)], labels[(r, c)] = rgb, label
    write_pyramid(path, level0, MPP, levels=3)
    return Mosaic(path, level0, patches, labels)


@pytest.fixture(scope="module")
def mosaic(shared_data, tmp_path_factory) -> Mosaic:
    lc25000 = shared_data / "histopathology-lc25000"
    if not lc25000.is_dir():
        pytest.skip(f"{lc25000} is missing")
    return build_pyramid(tmp_path_factory.mktemp("slide") / "mosaic.tif", lc25000)


def test_pyramid_geometry_reads_back(mosaic):
    with SlideReader(mosaic.path) as slide:
        assert slide.backend == "tiffslide"
        assert slide.levels == 3
        assert slide.dimensions == ((896, 672), (448, 336), (224, 168))
        assert slide.downsamples == (1.0, 2.0, 4.0)
        assert slide.mpp == pytest.approx((MPP, MPP))
        assert slide.best_level(3.0) == 1 and slide.best_level(0.5) == 0


def test_read_region_returns_the_placed_patches_exactly(mosaic):
    with SlideReader(mosaic.path) as slide:
        for (r, c), rgb in mosaic.patches.items():
            region = slide.read_region(0, (c * CELL, r * CELL), (CELL, CELL))
            np.testing.assert_array_equal(region, rgb)
        half = slide.read_region(1, (2 * CELL, CELL), (CELL // 2, CELL // 2))
        np.testing.assert_array_equal(half, halve(mosaic.level0)[CELL // 2 : CELL, CELL : 3 * CELL // 2])
        # a region hanging over the right edge: the slide's pixels, then white
        edge = slide.read_region(0, (896 - 20, 0), (50, 10))
        np.testing.assert_array_equal(edge[:, :20], mosaic.level0[:10, -20:])
        assert (edge[:, 20:] == 255).all()


def test_thumbnail_is_the_downsampled_slide(mosaic):
    with SlideReader(mosaic.path) as slide:
        thumb, downsample = slide.thumbnail(224)
    assert thumb.shape == (168, 224, 3) and downsample == 4.0
    np.testing.assert_array_equal(thumb, halve(halve(mosaic.level0)))


def test_read_slide_or_patch_opens_the_pyramid_as_a_slide(mosaic):
    volume = read_image(mosaic.path)
    try:
        assert volume.kind == "slide" and volume.modality == "SM"
        assert volume.channel_names == ("R", "G", "B")
        assert volume.array.shape == (3, 1, 672, 896)  # fits the thumbnail size: level 0 itself
        np.testing.assert_array_equal(np.moveaxis(volume.array[:, 0], 0, 2), mosaic.level0)
        assert volume.header["levels"] == 3 and volume.header["downsamples"] == [1.0, 2.0, 4.0]
        assert volume.spacing == pytest.approx((1.0, MPP / 1000, MPP / 1000))
        assert isinstance(volume.extras["slide"], SlideReader)
    finally:
        volume.extras["slide"].close()


@pytest.mark.needs_data
def test_small_tiff_and_jpeg_are_patches(shared_data):
    tif = shared_data / "histopathology-nct-crc" / "TUM-AACHEHDV.tif"
    if not tif.is_file():
        pytest.skip(f"{tif} is missing")
    volume = read_slide_or_patch(tif)
    assert volume.kind == "image" and volume.modality == "SM"
    assert volume.array.shape == (3, 1, 224, 224)
    np.testing.assert_array_equal(np.moveaxis(volume.array[:, 0], 0, 2), tifffile.imread(tif))
    assert volume.header["mpp"] is None  # 72 dpi is a screen default, not a pixel size
    jpeg = sorted((shared_data / "histopathology-lc25000" / "lung_scc").iterdir())[0]
    patch = read_patch(jpeg)
    np.testing.assert_array_equal(np.moveaxis(patch.array[:, 0], 0, 2), np.asarray(Image.open(jpeg).convert("RGB")))


@pytest.mark.needs_data
def test_list_patches_labels_from_folders_and_file_names(shared_data):
    nct = list_patches(shared_data / "histopathology-nct-crc")
    assert [label for _, label in nct] == ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]
    lc = list_patches(shared_data / "histopathology-lc25000")
    labels = [label for _, label in lc]
    assert len(lc) == 1800
    assert {name: labels.count(name) for name in set(labels)} == {"lung_aca": 600, "lung_n": 600, "lung_scc": 600}
    assert all(path.parent.name == label for path, label in lc)


def test_damaged_files_raise_one_line(tmp_path):
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_slide_or_patch(empty)
    noise = tmp_path / "noise.svs"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="not a readable whole-slide image") as error:
        read_slide_or_patch(noise)
    assert "\n" not in str(error.value)
    jpeg = tmp_path / "cut.jpg"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="cut.jpg: not a readable image"):
        read_patch(jpeg)


def test_openslide_is_the_fallback_when_tiffslide_cannot_open(mosaic, monkeypatch):
    pytest.importorskip("openslide")
    monkeypatch.setitem(sys.modules, "tiffslide", None)  # import fails as if not installed
    with SlideReader(mosaic.path) as slide:
        assert slide.backend == "openslide"
        assert slide.mpp == pytest.approx((MPP, MPP))
        (r, c), rgb = next(iter(mosaic.patches.items()))
        np.testing.assert_array_equal(slide.read_region(0, (c * CELL, r * CELL), (CELL, CELL)), rgb)


def test_a_grey_still_is_one_intensity_channel_of_unknown_modality(tmp_path):
    """H&E is colour; a grey PNG (an ultrasound or X-ray still) must not pose as a slide patch."""
    from PIL import Image

    from engine.imaging import read_image

    grey = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    Image.fromarray(grey).convert("RGB").save(tmp_path / "still.png")  # stored as RGB, R = G = B
    volume = read_image(tmp_path / "still.png")
    assert volume.channel_names == ("intensity",) and volume.modality == "OT" and volume.kind == "image"
    np.testing.assert_array_equal(volume.array[0, 0], grey)
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[..., 0], colour[..., 2] = 200, 120  # pink and purple like eosin and haematoxylin
    Image.fromarray(colour).save(tmp_path / "stain.png")
    patch = read_image(tmp_path / "stain.png")
    assert patch.channel_names == ("R", "G", "B") and patch.modality == "SM"
