"""Preprocessing of glioma volumes: the pure function training and inference share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.tasks.glioma.preprocess import brain_region, channel_scale, glioma_slices


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


def _head(rim: float = 200.0, brain: float = 80.0) -> np.ndarray:
    """One 3-channel 64 x 64 slice: a bright 3-pixel scalp ring, a dark 2-pixel skull, the brain inside."""
    yy, xx = np.mgrid[:64, :64]
    radius = np.hypot(yy - 32, xx - 32)
    slice_ = np.where(radius < 22, brain, 0.0) + np.where((radius >= 25) & (radius < 28), rim, 0.0)
    return np.repeat(slice_[None, None], 3, axis=0).astype(np.float32)  # (C=3, N=1, 64, 64)


def test_brain_region_fills_the_head_and_peels_its_rim():
    scaled = glioma_slices(_head(), (64, 64)).numpy()
    whole = brain_region(scaled, 0)
    assert whole[0, 32, 32] and whole[0, 32, 5] and not whole[0, 32, 2]  # filled to the outer edge
    peeled = brain_region(scaled, 6)
    assert peeled[0, 32, 32] and peeled[0, 32, 12]  # the brain stays
    assert not peeled[0, 32, 5] and not peeled[0, 32, 58]  # the scalp ring is gone
    assert peeled.sum() < whole.sum()


def test_glioma_slices_with_a_brain_margin_blacks_out_the_scalp_only():
    plain = glioma_slices(_head(), (64, 64))
    masked = glioma_slices(_head(), (64, 64), brain_margin=6)
    assert float(plain[0, :, 32, 5].min()) > 0 and float(masked[0, :, 32, 5].abs().max()) == 0.0
    assert torch.equal(masked[0, :, 20:44, 20:44], plain[0, :, 20:44, 20:44])
    # The default (and every 1.x bundle, which names no margin) keeps the whole head.
    assert torch.equal(glioma_slices(_head(), (64, 64), brain_margin=0), plain)
