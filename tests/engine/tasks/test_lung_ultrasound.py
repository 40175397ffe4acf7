"""Lung ultrasound: preprocessing of real clips, the group split, the training recipe, the shipped
bundle's clip verdicts, and maps put back on the full frame inside the scan region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from engine.imaging import read_image
from engine.models.bundle import load_bundle
from engine.models.crop_box import CropBox, scaled_shape
from engine.tasks.lung_ultrasound.data import CLASS_NAMES, class_of, list_items, split_items
from engine.tasks.lung_ultrasound.preprocess import (
    DEFAULT_PARAMS,
    crop_box,
    interior_mask,
    prepare,
    prepare_frames,
    scan_region,
)
from engine.models.task_registry import task_spec
from engine.tasks.lung_ultrasound.train import main as train_main

SMALL_CLIP = "pocus_videos/convex/Pneu_liftl_pneu_case3_clip5.mp4"  # 26 frames, 272 x 272
CROPPED_CLIP = "pocus_videos/convex/Pneu_basalpneumonia_liftle_case1.mp4"  # 42 frames, 340 x 340, fan narrower


@pytest.fixture(scope="module")
def lus_dir(shared_data: Path) -> Path:
    folder = shared_data / "lung-ultrasound"
    if not (folder / "pocus_videos").is_dir():
        pytest.skip(f"{folder} is missing")
    return folder


@pytest.fixture(scope="module")
def small_clip(lus_dir: Path):
    return read_image(lus_dir / SMALL_CLIP)


def test_prepare_crops_a_real_clip_to_its_scan_region(lus_dir):
    """Every frame becomes one 128 x 128 grey input; the crop box lies in the frame around the
    region, and what lies outside the region is black."""
    clip = read_image(lus_dir / CROPPED_CLIP)
    box = crop_box(clip)
    region = scan_region(clip)
    r0, r1, c0, c1 = box.bounds
    assert (r0, r1, c0, c1) != (0, 340, 0, 340)  # the fan does not fill the frame: a real crop
    assert 0 <= r0 < r1 <= 340 and 0 <= c0 < c1 <= 340
    rr0, rr1, rc0, rc1 = region.bbox
    assert r0 <= rr0 and rr1 <= r1 and c0 <= rc0 and rc1 <= c1  # the window holds the region
    assert r1 - r0 == c1 - c0  # square: the probe's aspect is kept

    x = prepare(clip, ["intensity"], (128, 128), **DEFAULT_PARAMS)
    assert x.shape == (42, 1, 128, 128) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= DEFAULT_PARAMS["clip_max"]
    assert float(x.mean()) > 0.05  # echo is there
    # Input pixels well outside the region (beyond the resize kernel's reach) are black in every
    # frame, and those well inside are not all black.
    distance_out = ndimage.distance_transform_edt(~region.mask[r0:r1, c0:c1])
    distance_in = ndimage.distance_transform_edt(region.mask[r0:r1, c0:c1])
    step = (r1 - r0) / 128
    centres = ((np.arange(128) + 0.5) * step).astype(int)
    far_out = distance_out[np.ix_(centres, centres)] > 4 * step
    far_in = distance_in[np.ix_(centres, centres)] > 4 * step
    assert far_out.sum() > 100 and far_in.sum() > 1000
    assert float(x[:, 0][:, torch.from_numpy(far_out)].abs().max()) == 0.0
    assert float(x[:, 0][:, torch.from_numpy(far_in)].mean()) > 0.05


def test_interior_mask_erodes_the_region_and_the_frame_border_counts_as_outside():
    """A region touching the frame's left edge loses a band there too; band 0 changes nothing."""
    mask = np.zeros((12, 14), bool)
    mask[2:10, 0:10] = True
    assert interior_mask(mask, 0.0) is mask
    inner = interior_mask(mask, 2.0)
    expected = np.zeros_like(mask)
    expected[4:8, 2:8] = True  # more than 2 pixels from every edge of the region, frame edge included
    assert np.array_equal(inner, expected)


def test_edge_band_blanks_the_region_boundary_and_leaves_the_interior(small_clip):
    """With ``edge_band`` the input is black along the inside of the scan region's boundary (where
    it held echo without the band) and unchanged deeper inside; the crop window and the intensity
    scale are those of the whole region."""
    size = (128, 128)
    plain = prepare_frames(small_clip, None, size)
    banded = prepare_frames(small_clip, None, size, edge_band=0.08)
    assert torch.equal(plain, prepare_frames(small_clip, None, size, edge_band=0.0))
    box = crop_box(small_clip)
    r0, r1, c0, c1 = box.bounds
    side = r1 - r0
    distance_in = ndimage.distance_transform_edt(np.pad(box.mask, 1))[1:-1, 1:-1][r0:r1, c0:c1]
    step = side / 128
    centres = ((np.arange(128) + 0.5) * step).astype(int)
    depth = distance_in[np.ix_(centres, centres)]
    band = 0.08 * side
    in_band = torch.from_numpy((depth > 2 * step) & (depth < band - 2 * step))
    deep = torch.from_numpy(depth > band + 4 * step)
    assert in_band.sum() > 500 and deep.sum() > 2000
    assert float(plain[:, 0][:, in_band].mean()) > 0.05  # echo there without the band
    assert float(banded[:, 0][:, in_band].abs().max()) == 0.0
    assert torch.allclose(banded[:, 0][:, deep], plain[:, 0][:, deep], atol=1e-6)
    with pytest.raises(ValueError, match="edge_band"):
        prepare_frames(small_clip, [0], size, edge_band=-0.1)
    with pytest.raises(ValueError, match="blanks the whole scan region"):
        prepare_frames(small_clip, [0], size, edge_band=0.9)


def test_an_rgb_clip_gives_the_same_inputs_as_its_grey_version(small_clip):
    """Colour clips are turned to luma inside the preprocessing, so a bundle declaring the grey
    channel accepts them (``Bundle.preprocess`` asks the task which channels are missing)."""
    from engine.tasks.lung_ultrasound.preprocess import missing_channels

    rgb = small_clip.with_(array=np.repeat(small_clip.array, 3, axis=0), channel_names=("R", "G", "B"))
    grey = prepare(small_clip, ["intensity"], (64, 64))
    colour = prepare(rgb, ["intensity"], (64, 64))
    assert torch.equal(grey, colour)
    assert missing_channels(rgb, ["intensity"]) == []
    assert missing_channels(small_clip.with_(array=small_clip.array[:1], channel_names=("flair",)), ["intensity"]) == ["intensity"]


def test_task_spec_carries_the_optional_hooks_bundle_uses(small_clip):
    """The lung-ultrasound task crops and derives its grey channel; the glioma task does neither,
    so ``Bundle`` looks for named channels and explains the whole frame."""
    from engine.tasks.lung_ultrasound.preprocess import missing_channels

    spec = task_spec("lung-ultrasound")
    assert spec.crop_box is crop_box and spec.missing_channels is missing_channels
    glioma = task_spec("glioma")
    assert glioma.crop_box is None and glioma.missing_channels is None
    bundle = load_bundle("lung-ultrasound")
    r0, r1, c0, c1 = bundle.crop_box(small_clip).bounds
    assert r1 - r0 == c1 - c0 and (r0, r1, c0, c1) == crop_box(small_clip).bounds
    rgb = small_clip.with_(array=np.repeat(small_clip.array, 3, axis=0), channel_names=("R", "G", "B"))
    assert bundle.preprocess(rgb).shape == (26, 1, 128, 128)  # the grey channel comes from the luma
    assert load_bundle("glioma").crop_box(small_clip) is None


def test_crop_box_pastes_maps_back_where_they_were_cut_from():
    """A box reaching past the frame's top edge: cropping pads with zeros, pasting keeps only the
    part inside the frame and the mask, also on a grid scaled down by half."""
    mask = np.zeros((10, 8), bool)
    mask[:, 2:] = True
    box = CropBox(top=-2, left=1, height=8, width=8, frame_shape=(10, 8), mask=mask)
    frame = np.arange(80, dtype=np.float32).reshape(10, 8) + 1
    cut = box.crop(frame)
    assert cut.shape == (8, 8)
    assert np.all(cut[:2] == 0)  # rows above the frame
    assert np.all(cut[2:, 0] == 0)  # column 1 lies outside the mask
    assert np.array_equal(cut[2:, 1:7], frame[0:6, 2:8])
    pasted = box.paste(np.ones((8, 8), np.float32))
    expected = np.zeros((10, 8), np.float32)
    expected[0:6, 2:8] = 1
    assert np.array_equal(pasted, expected)
    (shape, scale) = scaled_shape((10, 8), 5)
    assert shape == (5, 4) and scale == 0.5
    half = box.paste(np.ones(box.window_shape(scale), np.float32), scale)
    assert half.shape == (5, 4)
    assert half[:3, 1:].min() == 1 and half[3:].max() == 0 and half[:, 0].max() == 0


def test_split_keeps_groups_together_and_every_class_in_every_part(lus_dir):
    items, excluded = list_items(lus_dir)
    assert {class_of("Vir_whitelung_h1n1.mp4"), class_of("pneu-radiopaeda.mp4"), class_of("Reg_Avi_Image001.jpg")} == {None, 1, 2}
    assert any("Vir_" in path for path, _ in excluded)
    assert not any("/Vir_" in item.path for item in items)
    split = split_items(items, seed=0)
    assert split == split_items(items, seed=0)
    part_of_group: dict[str, str] = {}
    for part, chosen in split.items():
        for item in chosen:
            assert part_of_group.setdefault(item.group, part) == part, f"{item.path} straddles parts"
        labels = {item.label for item in chosen if item.is_clip}
        assert labels == {0, 1, 2}, part
    assert sum(len(chosen) for chosen in split.values()) == len(items)
    # Clips of one patient (the Neuruppin pat4 series) share a group.
    pat4 = {item.group for item in items if "pat4Image" in item.path}
    assert len(pat4) == 1


def test_training_recipe_runs_one_epoch_on_a_tiny_subset(lus_dir, tmp_path):
    """The shipped recipe end to end on the 8 smallest clips per class: a bundle that loads, whose
    inner-validation verdicts are probabilities over every frame, and whose frames come from the cache."""
    out, cache = tmp_path / "bundle", tmp_path / "frames.pt"
    args = ["--data", str(lus_dir), "--out", str(out), "--epochs", "1", "--limit", "8", "--frames-per-clip", "2",
            "--eval-frames", "3", "--edge-band", "0.08", "--val-fraction", "0.4", "--cache", str(cache)]
    assert train_main(args) == 0
    bundle = load_bundle(out)
    assert bundle.version == "1.2.0"
    assert bundle.metadata["preprocessing"]["edge_band"] == 0.08  # the band round-trips through metadata
    clip = read_image(lus_dir / SMALL_CLIP)
    assert torch.equal(bundle.preprocess(clip), prepare_frames(clip, None, (128, 128), edge_band=0.08))
    assert bundle.task == "lung-ultrasound" and bundle.class_names == CLASS_NAMES
    split = bundle.metadata["split"]
    assert set(split) == {"train", "val"} and set(split["train"]).isdisjoint(split["val"])
    verdicts = bundle.metadata["eval_metrics"]["val_clip_verdicts"]
    assert {v["class"] for v in verdicts} == set(CLASS_NAMES) and {v["path"] for v in verdicts} == set(split["val"])
    for v in verdicts:
        assert abs(sum(v["verdict"]) - 1) < 1e-4
    metrics = json.loads((out / "docs" / "training_metrics.json").read_text())
    assert metrics["frames"]["train"] == 2 * len(split["train"])
    assert metrics["frames"]["val_every_frame"] > metrics["frames"]["val_map_checked"] == 3 * len(split["val"])
    assert "salience evaluate lung-ultrasound" in (out / "docs" / "README.md").read_text()
    # The cross-validation reads the same cache (no clip is read again) and holds every clip out once.
    cache_time = cache.stat().st_mtime_ns
    assert train_main(args + ["--folds", "2", "--fold-by", "clip"]) == 0
    assert cache.stat().st_mtime_ns == cache_time
    result = json.loads((out / "docs" / "cross_validation_clip.json").read_text())
    assert sorted(result["frames"]["clip"]) == sorted(c["path"] for c in result["clips"]) and len(result["clips"]) == 24
    assert len(result["frames"]["logits"]) == 3 * 24 and len(result["frames"]["map_shares"]["edge_energy"]) == 3 * 24


@pytest.fixture(scope="module")
def shipped():
    return load_bundle("lung-ultrasound")


def test_shipped_bundle_is_small_with_a_usable_cam_grid(shipped):
    assert (shipped.path / "models" / "model.safetensors").stat().st_size < 2 * 1024 * 1024
    grid = shipped.metadata["target_layer_grid"]
    assert min(grid) >= 8
    assert shipped.input_channels == ("intensity",)
    assert set(shipped.metadata["split"]["val"]).isdisjoint(shipped.metadata["split"]["train"])
    assert shipped.version == "1.2.0"


def test_shipped_bundle_blanks_the_scan_regions_edge(shipped, small_clip):
    """The shipped model was trained with a 5% boundary band; its preprocessing applies it."""
    assert shipped.metadata["preprocessing"]["edge_band"] == 0.05
    inputs = shipped.preprocess(small_clip)
    assert torch.equal(inputs, prepare_frames(small_clip, None, (128, 128), edge_band=0.05))
    whole_region = prepare_frames(small_clip, None, (128, 128))
    assert int((inputs > 0).sum()) < 0.9 * int((whole_region > 0).sum())
