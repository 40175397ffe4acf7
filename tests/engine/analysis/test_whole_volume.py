"""A whole-volume (3-D) bundle through the generic engine: one item per volume, its verdict, and its
3-D map put back on every slice of the volume, exactly where the evidence was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.analysis import add_methods, analyse_case, check_map
from engine.errors import BundleError
from engine.imaging.volume import ImageVolume
from engine.models import load_bundle
from engine.models.bundle import Bundle
from engine.models.volume_box import VolumeBox, volume_grid
from engine.training.bundle_writer import write_bundle
from engine.models.network_config import build_network

SHAPE = (24, 64, 80)  # slices, rows, cols
HEAD = (slice(2, 22), slice(10, 60), slice(20, 76))  # off-centre, so a wrong offset would show
BLOB = (slice(4, 10), slice(14, 28), slice(56, 70))  # near one corner of the head
INPUT_SIZE = [8, 16, 16]


class BrightestVoxel(nn.Module):
    """Sum of the channels, then global mean: class 1's logit grows with brightness, so Grad-CAM
    at ``relu`` is the input's brightness itself, peaking on the brightest voxels."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.out = nn.Linear(1, 2)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.out.weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(self.relu(self.features(x))).flatten(1))


def synthetic_head() -> ImageVolume:
    """An ellipsoid head inside ``HEAD`` (so the corners of its box are background) with a bright blob."""
    grid = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    radius = sum(((g - (s.start + s.stop - 1) / 2) / ((s.stop - s.start) / 2)) ** 2 for g, s in zip(grid, HEAD))
    array = np.zeros((3,) + SHAPE, dtype=np.float32)
    array[:, radius <= 1.0] = 100.0
    array[(slice(None),) + BLOB] = 180.0
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[BLOB] = 1
    return ImageVolume(array=array, spacing=(1.0, 2.0, 2.0), affine=np.diag([2.0, 2.0, 1.0, 1.0]), modality="MR",
                       kind="volume", source="synthetic head", channel_names=("t1", "flair", "t1ce"), labels=labels)


def grade_bundle(network: nn.Module) -> Bundle:
    metadata = {
        "name": "synthetic-3d", "version": "0.0.1", "task": "glioma-grade",
        "class_names": ["WHO grade II", "WHO grade III"], "input_channels": ["t1", "flair", "t1ce"],
        "input_size": INPUT_SIZE, "target_layer": "relu",
        "preprocessing": {"upper_percentile": 99.5, "clip_max": 2.0, "head_threshold": 0.1, "box_margin": 2},
        "weights_sha256": "0" * 64, "calibration": {"temperature": 2.0, "calibrated": True},
    }
    return Bundle(path=Path("synthetic-3d"), metadata=metadata, network=network.eval())


def inside(index: tuple[int, ...], region: tuple[slice, ...]) -> bool:
    return all(s.start <= i < s.stop for i, s in zip(index, region))


def test_volume_box_pastes_back_onto_exactly_the_voxels_it_cropped():
    box = VolumeBox((1, 2, 3), (3, 4, 5), (6, 8, 10))
    volume = np.arange(6 * 8 * 10, dtype=np.float32).reshape(6, 8, 10)
    cropped = box.crop(volume)
    assert cropped.shape == (3, 4, 5) and cropped[0, 0, 0] == volume[1, 2, 3]
    pasted = box.paste(cropped[None])[0]
    assert pasted.shape == (6, 8, 10)
    assert np.array_equal(pasted[1:4, 2:6, 3:8], cropped) and pasted.sum() == cropped.sum()
    half = volume_grid(box, 5)  # rows and columns halved, slices kept
    assert half.shape == (4, 5) and half.window == (3, 2, 2)  # columns 3-8 become 2-4 (1.5 rounds to even)
    placed = half.place(np.ones((2, 1, 3, 2, 2)))
    assert placed.shape == (2, 6, 4, 5) and placed[:, 1:4, 1:3, 2:4].all() and placed.sum() == 2 * 12
    with pytest.raises(ValueError, match="does not fit"):
        VolumeBox((4, 0, 0), (3, 8, 10), (6, 8, 10))


def test_whole_volume_analysis_gives_one_verdict_and_a_map_on_every_slice_peaking_on_the_evidence():
    volume, bundle = synthetic_head(), grade_bundle(BrightestVoxel())
    analysis = analyse_case(volume, bundle, ("gradcam", "hirescam"))
    assert analysis.probabilities.shape == (1, 2) and analysis.item_axis == "volume"
    assert analysis.logits[0, 1] > 0 and analysis.class_to_show() == 1
    assert np.allclose(analysis.verdict.probabilities, analysis.probabilities[0])
    assert np.allclose(analysis.probabilities[0], torch.softmax(torch.from_numpy(analysis.logits[0]) / 2.0, 0).numpy())
    assert analysis.item_probabilities.shape == (SHAPE[0], 2)  # the viewer's strip: the one row on every slice
    assert "per-slice strip repeats it" in analysis.notes[0]
    box = analysis.volume_box
    (s0, s1), (r0, r1), (c0, c1) = box.bounds
    assert 2 <= s0 <= 4 and 20 <= s1 <= 22 and 8 <= r0 <= 10 and 60 <= r1 <= 62 and 18 <= c0 <= 20 and 76 <= c1 <= 78
    for method in ("gradcam", "hirescam"):
        maps = analysis.maps[method]
        assert maps.maps.shape == (2,) + SHAPE and maps.params["volume_box"] == {"start": list(box.start), "size": list(box.size)}
        grade_iii = maps.of(1)
        peak = np.unravel_index(int(np.argmax(grade_iii)), SHAPE)
        assert inside(peak, BLOB), peak  # crop and resampling undone: the peak is where the bright blob is
        outside = np.ones(SHAPE, dtype=bool)
        outside[s0:s1, r0:r1, c0:c1] = False
        assert not grade_iii[outside].any()  # nothing where the network saw nothing
        assert grade_iii[BLOB].mean() > 1.5 * grade_iii[s0:s1, r0:r1, c0:c1].mean()
        energy = np.clip(grade_iii, 0, None).sum(axis=(1, 2))
        assert list(maps.key_items[1]) == list(np.argsort(-energy, kind="stable")[:3])  # most of the map's energy
    added = add_methods(analysis, volume, bundle, ("layercam", "scorecam"))  # from the kept capture, and perturbation
    for method in ("layercam", "scorecam"):
        assert inside(np.unravel_index(int(np.argmax(added.maps[method].of(1))), SHAPE), BLOB)
    explained = bundle.explain(volume, classes=[1], slices=[5, 20])
    assert np.allclose(explained[0], analysis.maps["gradcam"].of(1)[[5, 20]], atol=1e-6)
    assert bundle.predict(volume).probabilities.shape == (1, 2)


def test_whole_volume_maps_on_a_coarser_grid_keep_every_slice():
    analysis = analyse_case(synthetic_head(), grade_bundle(BrightestVoxel()), "gradcam", max_map_side=40)
    maps = analysis.maps["gradcam"].maps
    assert maps.shape == (2, SHAPE[0], 32, 40)
    peak = np.unravel_index(int(np.argmax(maps[1])), maps.shape[1:])
    assert inside(peak, (BLOB[0], slice(7, 14), slice(28, 35)))


def test_check_map_measures_a_whole_volume_map_within_its_box():
    volume, bundle = synthetic_head(), grade_bundle(BrightestVoxel())
    analysis = analyse_case(volume, bundle, "gradcam", classes=[1])
    measured = check_map(analysis, volume, bundle, "gradcam", 1, item=15)
    report = measured.report
    assert measured.item == 0 and "whole volume" in report["scope"]
    assert report["pointing_game"]["hit"] and report["energy_inside_mask"]["fraction"] > report["mask_area_fraction"]
    assert 0 < report["mask_area_fraction"] < 0.1  # the blob's share of the box, not of one slice
    assert report["deletion"]["auc"] < report["insertion"]["auc"]
    assert report["sanity"]["decided_on"] == "region"  # the 3-D input's flat corners give its foreground


def test_a_3d_bundle_writes_loads_and_refuses_a_4_number_input_size(tmp_path: Path):
    net = {"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
           "init_features": 2, "growth_rate": 2, "block_config": [2]}
    torch.manual_seed(0)
    metadata = dict(grade_bundle(BrightestVoxel()).metadata, target_layer="class_layers.relu", data_license="synthetic")
    del metadata["weights_sha256"]
    path = write_bundle(tmp_path / "b3", metadata, net, build_network(net, "test").state_dict(), "# 3-D\n")
    bundle = load_bundle(path)
    assert bundle.whole_volume and bundle.input_size == (8, 16, 16)
    analysis = analyse_case(synthetic_head(), bundle, "gradcam")
    assert analysis.maps["gradcam"].maps.shape == (2,) + SHAPE and np.isfinite(analysis.maps["gradcam"].maps).all()
    bad = dict(metadata, input_size=[8, 16, 16, 2])
    with pytest.raises(BundleError, match="input_size"):
        write_bundle(tmp_path / "b4", bad, net, build_network(net, "test").state_dict(), "# 4-D\n") and load_bundle(tmp_path / "b4")
