"""Preprocessing of a lung ultrasound clip (or a still frame) into per-frame network inputs.

One plain, deterministic function used by training, inference and the tests alike. Each clip is
cropped to its scan region (``engine.imaging.sector.find_scan_region``: one region per clip, from
the speckle that moves while text and scales stay still), everything outside the region is zeroed
so burned-in text cannot become a shortcut, the crop is padded to a square around the region (so
convex and linear probes keep their aspect), turned to grey, resized, and scaled by a high
percentile of the clip's own echo (gain differs between machines and presets).

Optionally (``edge_band`` > 0) a band along the inside of the region's boundary is blanked too:
the fan's outline is decided by the scanner and preset, i.e. by the source, and a network trained
without the band learned to look along it. Maps are still pasted back through the full region.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from scipy import ndimage

from engine.imaging.sector import ScanRegion, find_scan_region
from engine.imaging.video import grey_frames
from engine.imaging.volume import ImageVolume
from engine.models.crop_box import CropBox

#: Default intensity parameters; a bundle's ``metadata.json`` ``preprocessing`` overrides them.
#: ``edge_band`` is the width of the blanked boundary band as a fraction of the crop window's side
#: (0: no band, the behaviour of bundles written before the parameter existed).
DEFAULT_PARAMS: dict[str, float] = {"upper_percentile": 99.0, "clip_max": 1.5, "edge_band": 0.0}

#: The task registry's view of this module (see ``engine.models.task_registry``).
PARAMETERS: tuple[str, ...] = tuple(DEFAULT_PARAMS)
ITEM_AXIS = "frame"

#: The channel ``engine.imaging.video`` gives a grey (B-mode) clip; colour clips are turned to it.
GREY_CHANNEL = "intensity"
RGB_CHANNELS = ("R", "G", "B")
#: Frames sampled (evenly) to find the intensity scale; frames resized per chunk to bound memory.
SCALE_SAMPLE_FRAMES = 16
CHUNK_FRAMES = 32

_regions: "weakref.WeakKeyDictionary[ImageVolume, ScanRegion]" = weakref.WeakKeyDictionary()


def scan_region(volume: ImageVolume) -> ScanRegion:
    """The clip's scan region, found once per volume object and remembered while it lives."""
    region = _regions.get(volume)
    if region is None:
        region = find_scan_region(volume)
        _regions[volume] = region
    return region


def missing_channels(volume: ImageVolume, input_channels: Sequence[str]) -> list[str]:
    """Channels the model needs that ``volume`` cannot give (an RGB clip gives grey as its luma)."""
    available = set(volume.channel_names)
    if volume.is_rgb:
        available.add(GREY_CHANNEL)
    return [name for name in input_channels if name not in available]


def crop_box(volume: ImageVolume) -> CropBox:
    """The square window around the scan region that the network sees, in frame pixels.

    The region's bounding box is grown on its shorter side, centred, to a square, then slid back
    inside the frame where the frame is large enough (it still holds the whole region); only a
    square larger than the frame reaches past its edge (those pixels are zeros). The box carries
    the region mask, so maps pasted back through it are zero outside the scan region.
    """
    region = scan_region(volume)
    height, width = region.mask.shape
    r0, r1, c0, c1 = region.bbox
    side = max(r1 - r0, c1 - c0)
    top = _inside(r0 - (side - (r1 - r0)) // 2, side, height)
    left = _inside(c0 - (side - (c1 - c0)) // 2, side, width)
    return CropBox(top, left, side, side, (height, width), region.mask)


def _inside(start: int, side: int, extent: int) -> int:
    """``start`` moved so that ``[start, start + side)`` lies in ``[0, extent)``, when it fits."""
    if side > extent:
        return start
    return min(max(start, 0), extent - side)


def interior_mask(mask: np.ndarray, band: float) -> np.ndarray:
    """The region ``mask`` eroded by ``band`` pixels: pixels farther than ``band`` from its boundary.

    Distances are Euclidean (``scipy.ndimage.distance_transform_edt``) to the nearest pixel outside
    the region, the frame's border counting as outside (a fan cut off by the frame edge gets a
    band there too).

    Args:
        mask: ``(H, W)`` bool region.
        band: width of the band in pixels; 0 or less returns ``mask`` unchanged.

    Returns:
        ``(H, W)`` bool, a subset of ``mask``.
    """
    if band <= 0:
        return mask
    distance = ndimage.distance_transform_edt(np.pad(mask, 1, constant_values=False))[1:-1, 1:-1]
    return distance > band


def intensity_scale(grey: np.ndarray, box: CropBox, upper_percentile: float) -> float:
    """The grey level that maps to 1.0: a high percentile of the scan region's pixels.

    Taken over up to ``SCALE_SAMPLE_FRAMES`` evenly spaced frames of the clip.

    Returns:
        A positive scale; 1.0 for an all-black region.
    """
    index = evenly_spaced(grey.shape[0], SCALE_SAMPLE_FRAMES)
    mask = box.mask if box.mask is not None else np.ones(grey.shape[1:], bool)
    pixels = grey[index][:, mask]
    if pixels.size == 0:
        return 1.0
    scale = float(np.percentile(pixels, upper_percentile))
    return scale if scale > 0 else 1.0


def evenly_spaced(count: int, most: int) -> np.ndarray:
    """Up to ``most`` distinct indices spread evenly over ``range(count)``, first and last included."""
    if count <= most:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, most)).astype(np.int64))


def prepare_frames(
    volume: ImageVolume,
    frames: Sequence[int] | np.ndarray | None,
    input_size: Sequence[int],
    upper_percentile: float = DEFAULT_PARAMS["upper_percentile"],
    clip_max: float = DEFAULT_PARAMS["clip_max"],
    edge_band: float = DEFAULT_PARAMS["edge_band"],
) -> torch.Tensor:
    """Network inputs ``(len(frames), 1, h, w)`` for some frames of a clip.

    The region and the intensity scale are always those of the whole clip, so a frame prepared
    here is exactly the frame ``prepare`` gives for the full clip.

    Args:
        volume: a grey or RGB clip or still image.
        frames: frame indices, or None for every frame.
        input_size: the network's ``(h, w)``.
        upper_percentile: percentile (0-100) of the region's grey levels taken as 1.0.
        clip_max: upper clip after scaling.
        edge_band: width of the band along the region's boundary that is zeroed, as a fraction of
            the crop window's side (0 keeps the whole region). The intensity scale is taken over
            the whole region either way.

    Returns:
        float32 tensor ``(N, 1, h, w)``, zero outside the scan region (and in the band).

    Raises:
        ValueError: ``edge_band`` is negative or leaves nothing of the region.
    """
    if edge_band < 0:
        raise ValueError(f"{volume.source}: edge_band must be at least 0, got {edge_band}")
    region_box = crop_box(volume)
    grey = grey_frames(volume)
    scale = intensity_scale(grey, region_box, upper_percentile)
    box = region_box
    if edge_band > 0 and region_box.mask is not None:
        interior = interior_mask(region_box.mask, edge_band * max(region_box.height, region_box.width))
        if not interior.any():
            raise ValueError(f"{volume.source}: edge_band {edge_band} blanks the whole scan region")
        box = replace(region_box, mask=interior)
    index = np.arange(grey.shape[0]) if frames is None else np.asarray(frames, dtype=np.int64)
    size = (int(input_size[0]), int(input_size[1]))
    out = torch.empty((len(index), 1) + size, dtype=torch.float32)
    for start in range(0, len(index), CHUNK_FRAMES):
        chunk = index[start : start + CHUNK_FRAMES]
        cropped = box.crop(grey[chunk]).astype(np.float32)
        np.clip(cropped / scale, 0.0, clip_max, out=cropped)
        tensor = torch.from_numpy(cropped)[:, None]
        if tuple(tensor.shape[2:]) != size:
            tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[start : start + len(chunk)] = tensor
    return out


def region_on_input(volume: ImageVolume, input_size: Sequence[int]) -> np.ndarray:
    """The clip's scan region on the network's input grid: ``(h, w)`` bool, the whole region (no band).

    The region mask is cut out through ``crop_box`` like the frames and resized (nearest pixel),
    so it lies exactly under the pixels ``prepare_frames`` fills (before any band is blanked).
    """
    box = crop_box(volume)
    mask = box.mask if box.mask is not None else np.ones(box.frame_shape, bool)
    window = torch.from_numpy(box.crop(mask[None].astype(np.float32)))[:, None]
    size = (int(input_size[0]), int(input_size[1]))
    return (F.interpolate(window, size=size, mode="nearest")[0, 0] > 0.5).numpy()


def prepare(
    volume: ImageVolume, input_channels: Sequence[str], input_size: Sequence[int], **parameters: float
) -> torch.Tensor:
    """The task registry's entry point: every frame of ``volume`` through ``prepare_frames``.

    Raises:
        ValueError: the model asks for channels other than the one grey channel.
    """
    if tuple(input_channels) != (GREY_CHANNEL,):
        raise ValueError(f"lung ultrasound models take the one grey channel {GREY_CHANNEL!r}, not {list(input_channels)}")
    return prepare_frames(volume, None, input_size, **parameters)
