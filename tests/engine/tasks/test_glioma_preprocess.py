"""Preprocessing of glioma volumes: the pure function training and inference share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.tasks.glioma.preprocess import channel_scale, glioma_slices


def _volume() -> np.ndarray:
    """Two channels, three 8 x 8 slices: black background, a bright square, one dim slice."""
    array = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    array[:, :, 2:6, 2:6] = 100
    array[0, 1, 3, 3] = 200  # one bright voxel in channel 0
    array[1, 2, 2:6, 2:6] = 50  # a dim slice in channel 1
    return array


def test_channel_scale_is_a_foreground_percentile_and_ignores_background():
    channel = np.zeros((2, 10, 10), dtype=np.uint8)
    channel[0, :5, :] = np.arange(1, 51).reshape(5, 10)
    assert channel_scale(channel, 100.0) == 50.0
    assert channel_scale(channel, 50.0) == pytest.approx(25.5)
    assert channel_scale(np.zeros((2, 4, 4)), 99.5) == 1.0


def test_glioma_slices_scales_per_volume_clips_and_puts_slices_first():
    out = glioma_slices(_volume(), input_size=(8, 8), upper_percentile=100.0, clip_max=1.5)
    assert out.shape == (3, 2, 8, 8) and out.dtype == torch.float32
    assert float(out[:, :, 0, 0].abs().max()) == 0.0  # background stays black
    assert float(out[1, 0, 3, 3]) == pytest.approx(1.0)  # the brightest voxel of channel 0
    assert float(out[0, 0, 3, 3]) == pytest.approx(0.5)
    # Channel 1's dim slice keeps its relation to the others (per-volume, not per-slice scaling).
    assert float(out[2, 1, 3, 3]) == pytest.approx(0.5)
    assert float(out[0, 1, 3, 3]) == pytest.approx(1.0)
    clipped = glioma_slices(_volume(), input_size=(8, 8), upper_percentile=50.0, clip_max=1.5)
    assert float(clipped.max()) == pytest.approx(1.5)


def test_glioma_slices_is_invariant_to_the_intensity_window():
    """Rescaling the 8-bit window (as the source data does per patient) changes nothing."""
    a = glioma_slices(_volume(), (8, 8))
    b = glioma_slices(_volume().astype(np.float32) * 0.37, (8, 8))
    assert torch.allclose(a, b, atol=1e-6)


def test_glioma_slices_resizes_to_the_network_input():
    array = np.zeros((3, 2, 64, 64), dtype=np.uint8)
    array[:, :, 16:48, 16:48] = 200
    out = glioma_slices(array, (32, 32))
    assert out.shape == (2, 3, 32, 32)
    assert float(out[0, 0, 16, 16]) == pytest.approx(1.0)
    assert float(out[0, 0, 2, 2]) == 0.0


def test_glioma_slices_rejects_a_3d_array():
    with pytest.raises(ValueError, match="C, N, H, W"):
        glioma_slices(np.zeros((4, 8, 8)), (8, 8))
