"""Normalisation of raw maps: explicit ranges, comparable scopes, never inverted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.explain.normalise import MODES, SCOPES, map_stats, normalise, study_range


def signed_maps(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape) * 3.0 + 0.5


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("mode", MODES)
def test_normalisation_never_inverts(scope, mode):
    raw = signed_maps((3, 4, 8, 8))
    result = normalise(raw, scope=scope, mode=mode, percentiles=(0.0, 100.0))
    # Every scope keeps the order inside each plane (the image scope's unit, the smallest one).
    for raw_plane, out_plane in zip(raw.reshape(-1, 64), result.maps.reshape(-1, 64)):
        assert int(np.argmax(out_plane)) == int(np.argmax(raw_plane))
        order = np.argsort(raw_plane)
        assert np.all(np.diff(out_plane[order]) >= 0)
        assert out_plane[order[-1]] > out_plane[order[0]]
    if scope != "image":  # one range per volume or study: the order holds over the whole volume
        for raw_item, out_item in zip(raw.reshape(3, -1), result.maps.reshape(3, -1)):
            assert int(np.argmax(out_item)) == int(np.argmax(raw_item))
            assert np.all(np.diff(out_item[np.argsort(raw_item)]) >= 0)


def test_minmax_maps_the_extremes_to_0_and_1_per_volume():
    raw = signed_maps((2, 3, 5, 5))
    result = normalise(raw, scope="volume", mode="minmax")
    for item, span in zip(result.maps, result.ranges):
        assert item.min() == pytest.approx(0.0) and item.max() == pytest.approx(1.0)
    assert [r.low for r in result.ranges] == pytest.approx([raw[0].min(), raw[1].min()])


def test_image_scope_scales_every_slice_on_its_own():
    raw = signed_maps((2, 3, 5, 5))
    raw[0, 1] *= 10.0  # a loud slice does not dim the others in the image scope
    result = normalise(raw, scope="image", mode="minmax")
    assert len(result.ranges) == 6
    assert np.allclose(result.maps.max(axis=(2, 3)), 1.0) and np.allclose(result.maps.min(axis=(2, 3)), 0.0)
    volume = normalise(raw, scope="volume", mode="minmax")
    assert volume.maps[0, 0].max() < 0.5  # ...but does in the volume scope


def test_signed_mode_keeps_zero_and_sign():
    raw = np.array([[[-2.0, 0.0], [1.0, 4.0]]])
    result = normalise(raw, mode="signed")
    assert np.allclose(result.maps, [[[-0.5, 0.0], [0.25, 1.0]]])
    assert result.ranges[0].low == -4.0 and result.ranges[0].high == 4.0


def test_study_scope_uses_one_reference_range_so_maps_compare():
    strong = np.linspace(0.0, 4.0, 16).reshape(1, 4, 4)
    weak = strong / 2.0
    reference = study_range([strong, weak], mode="minmax")
    assert (reference.low, reference.high) == (0.0, 4.0)
    assert normalise(weak, scope="study", reference=reference).maps.max() == pytest.approx(0.5)
    assert normalise(weak, scope="volume").maps.max() == pytest.approx(1.0)
    # Without a reference the study range is taken over all maps given.
    both = normalise(np.concatenate([strong, weak]), scope="study")
    assert both.maps[1].max() == pytest.approx(0.5)


def test_percentile_mode_clips_outliers():
    raw = np.zeros((1, 10, 10))
    raw[0, :, :] = np.arange(100).reshape(10, 10)
    raw[0, 0, 0] = 1e6  # one hot pixel would flatten min-max scaling
    result = normalise(raw, mode="percentile", percentiles=(0.0, 98.0))
    assert result.maps[0, 0, 0] == 1.0
    low, high = result.ranges[0].low, result.ranges[0].high
    assert low == 1.0 and high == pytest.approx(np.percentile(raw, 98.0))
    assert result.maps[0, 5, 0] == pytest.approx((50 - low) / (high - low), rel=1e-6)
    assert normalise(raw, mode="minmax").maps[0, 5, 0] < 1e-3


def test_constant_map_becomes_zeros_not_nan():
    result = normalise(np.full((1, 4, 4), 7.0), mode="minmax")
    assert np.array_equal(result.maps, np.zeros((1, 4, 4), dtype=np.float32))


def test_torch_in_torch_out():
    raw = torch.tensor([[[1.0, 3.0], [2.0, 5.0]]])
    result = normalise(raw)
    assert isinstance(result.maps, torch.Tensor)
    assert torch.allclose(result.maps, torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]))


def test_map_stats_of_a_known_map_and_json():
    stats = map_stats(np.array([-1.0, 0.0, 1.0, 2.0, np.nan]))
    assert (stats.min, stats.max, stats.mean) == (-1.0, 2.0, 0.5)
    assert stats.positive_fraction == 0.5
    assert stats.percentiles["50"] == pytest.approx(0.5)
    assert stats.std == pytest.approx(np.std([-1.0, 0.0, 1.0, 2.0]))
    summary = normalise(np.ones((2, 3, 3)), mode="signed").to_dict()
    assert json.loads(json.dumps(summary))["stats"][1]["max"] == 1.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="scope"):
        normalise(np.ones((1, 2, 2)), scope="slide")
    with pytest.raises(ValueError, match="mode"):
        normalise(np.ones((1, 2, 2)), mode="inverted")
    with pytest.raises(ValueError, match="reference"):
        normalise(np.ones((1, 2, 2)), scope="image", reference=study_range([np.ones(3)]))
    with pytest.raises(ValueError, match="percentiles"):
        normalise(np.ones((1, 2, 2)), mode="percentile", percentiles=(99.0, 1.0))
