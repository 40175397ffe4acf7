"""Scan region: the live ultrasound fan is kept, burned-in text and the black surround are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.imaging.sector import crop_to_scan_region, find_scan_region
from engine.imaging.video import read_clip
from engine.imaging.volume import ImageVolume, plain_affine

TEXT_BLOCK = (slice(4, 24), slice(4, 64))  # rows, cols of the painted caption


def _fan(height: int = 240, width: int = 320) -> np.ndarray:
    """True sector of a convex probe: apex above the frame, radii 60-270 px, +-35 degrees."""
    rows, cols = np.mgrid[0:height, 0:width].astype(float)
    apex_r, apex_c = -50.0, width / 2
    radius = np.hypot(rows - apex_r, cols - apex_c)
    angle = np.degrees(np.arctan2(cols - apex_c, rows - apex_r))
    return (radius >= 60) & (radius <= 270) & (np.abs(angle) <= 35)


def _paint_caption(frames: np.ndarray) -> None:
    """Static white text strokes on black, like a burned-in patient/depth caption."""
    frames[:, TEXT_BLOCK[0], TEXT_BLOCK[1]] = 0
    frames[:, TEXT_BLOCK[0].start + 2 : TEXT_BLOCK[0].stop - 2 : 3, TEXT_BLOCK[1].start + 3 : TEXT_BLOCK[1].stop - 3] = 230


def _speckle_clip(fan: np.ndarray, frames: int = 12, seed: int = 0) -> np.ndarray:
    """Rayleigh speckle inside the fan, changing every frame, with an anechoic band and depth loss."""
    rng = np.random.default_rng(seed)
    height, width = fan.shape
    depth = np.linspace(1.0, 0.35, height)[:, None]
    clip = np.zeros((frames, height, width), np.uint8)
    for index in range(frames):
        echo = rng.rayleigh(45.0, size=(height, width)) * depth
        echo[110:150] *= 0.15  # effusion: dark but alive
        clip[index] = np.clip(echo, 0, 255).astype(np.uint8) * fan
    return clip


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_synthetic_fan_clip_recovers_the_sector_and_drops_the_caption():
    fan = _fan()
    clip = _speckle_clip(fan)
    _paint_caption(clip)
    region = find_scan_region(clip)
    assert _iou(region.mask, fan) > 0.9
    caption = np.zeros_like(fan)
    caption[TEXT_BLOCK] = True
    assert not (region.mask & caption).any()
    strokes = clip[0] == 230
    assert region.text_mask[strokes].mean() > 0.95
    assert not region.text_mask[fan].any()
    rows, cols = np.nonzero(fan)
    r0, r1, c0, c1 = region.bbox
    assert abs(r0 - rows.min()) <= 2 and abs(r1 - rows.max() - 1) <= 2
    assert abs(c0 - cols.min()) <= 2 and abs(c1 - cols.max() - 1) <= 2


def test_synthetic_still_frame_uses_intensity_and_fan_shape():
    fan = _fan()
    frame = _speckle_clip(fan, frames=1, seed=3)[0]
    frame[110:150] = np.maximum(frame[110:150], 12 * fan[110:150])  # faint, as stills are
    frame = frame[None]
    _paint_caption(frame)
    region = find_scan_region(frame[0])
    assert _iou(region.mask, fan) > 0.9
    assert not region.mask[TEXT_BLOCK].any()
    assert region.text_mask[frame[0] == 230].mean() > 0.95


def test_crop_keeps_pixels_zeroes_outside_and_maps_back():
    fan = _fan()
    clip = _speckle_clip(fan, frames=6)
    _paint_caption(clip)
    volume = ImageVolume(
        array=clip[None], spacing=(1.0, 0.3, 0.3), affine=plain_affine((1.0, 0.3, 0.3)),
        modality="US", kind="clip", source="synthetic", frame_time_ms=40.0,
    )
    region = find_scan_region(volume)
    cropped = crop_to_scan_region(volume, region)
    r0, r1, c0, c1 = region.bbox
    assert cropped.array.shape == (1, 6, r1 - r0, c1 - c0)
    inside = region.mask[r0:r1, c0:c1]
    np.testing.assert_array_equal(cropped.array[0, 2][inside], clip[2, r0:r1, c0:c1][inside])
    assert not cropped.array[0][:, ~inside].any()
    assert cropped.header["scan_region"]["crop_offset"] == (r0, c0)
    # index (n, r, c) of the crop lands where (n, r + r0, c + c0) of the original does
    for n, r, c in [(0, 0, 0), (3, 17, 40)]:
        np.testing.assert_allclose(
            cropped.affine @ [n, r, c, 1], volume.affine @ [n, r + r0, c + c0, 1]
        )


@pytest.mark.needs_data
@pytest.mark.parametrize(
    "name",
    ["convex/Reg_pat1Image_133043.mpeg", "convex/Pneu_northumbria_0409_set2_vid4.avi", "linear/Cov-Atlas-pleural.mp4"],
)
def test_real_clip_mask_covers_the_moving_sector_and_not_painted_text(shared_data: Path, name):
    path = shared_data / "lung-ultrasound" / "pocus_videos" / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    frames = read_clip(path, stride=3, max_frames=32).array[0].copy()
    moving = frames.astype(np.float32).std(axis=0) > 6  # clearly live echo
    _paint_caption(frames)
    region = find_scan_region(frames)
    moving[TEXT_BLOCK] = False
    assert region.mask[moving].mean() > 0.97
    assert not region.mask[TEXT_BLOCK].any()
    assert region.text_mask[frames[0] == 230].mean() > 0.95
    # the black surround of a convex fan is left out; a linear clip is nearly all image
    assert 0.55 < region.fraction < 0.995
