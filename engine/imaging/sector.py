"""Find the ultrasound scan region (the fan or rectangle of live echo) and the burned-in graphics.

Screen grabs of ultrasound carry more than echo: patient and machine text, depth scales, logos,
and black space around the fan. A classifier that sees them can learn the scanner or the hospital
instead of the lung (shortcut learning; Geirhos et al. 2020, "Shortcut learning in deep neural
networks", Nature Machine Intelligence 2, 665-673; Roberts et al. 2021 found such confounders
across COVID-19 imaging models). ``find_scan_region`` marks the live echo so it can be cropped
and everything else zeroed (``crop_to_scan_region``).

Method, for a clip: speckle makes every pixel of live echo change over time while text, scales
and the black surround stay still. Pixels whose temporal standard deviation exceeds a noise
floor are "live"; static pixels brighter than the surround are "graphics". The live mask is
cleaned with binary opening/closing and hole filling (mathematical morphology; Serra 1982,
"Image Analysis and Mathematical Morphology"), reduced to its largest connected components and
replaced by its convex hull, which restores dark but live areas inside a convex or linear fan
(anechoic lung below the pleura, shadows). For a still frame the same is done on a smoothed
intensity mask, after an opening that detaches thin text strokes from the fan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from engine.imaging.volume import ImageVolume

#: Frames sampled (evenly over the clip) for the temporal statistics.
SAMPLE_FRAMES = 64
#: Live echo: temporal std above max(this, LIVE_STD_FRACTION * 95th percentile of std).
LIVE_STD_FLOOR = 1.0
LIVE_STD_FRACTION = 0.08
#: Graphics: temporal std below this (0-255 grey levels) and brighter than GRAPHICS_LEVEL.
STATIC_STD = 0.5
GRAPHICS_LEVEL = 40.0
#: A clip whose live pixels cover less than this fraction of the frame is treated as a still.
MIN_LIVE_FRACTION = 0.02
#: How far (pixels) the plain box behind burned-in text is followed from its strokes.
GRAPHICS_MARGIN = 6
#: Parts of the echo mask at least this fraction of the largest part belong to the region.
LARGE_PART = 0.15


@dataclass(frozen=True, eq=False)
class ScanRegion:
    """Where the live echo is in a frame.

    Attributes:
        mask: ``(H, W)`` bool, True inside the scan region (burned-in graphics removed).
        bbox: ``(r0, r1, c0, c1)`` half-open row and column bounds of ``mask``.
        text_mask: ``(H, W)`` bool, burned-in text and graphics (static, brighter than the
            surround), inside or outside the region.
    """

    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    text_mask: np.ndarray

    @property
    def fraction(self) -> float:
        """Share of the frame covered by the scan region."""
        return float(self.mask.mean())


def find_scan_region(image: ImageVolume | np.ndarray) -> ScanRegion:
    """Find the scan region of a clip or still ultrasound frame.

    Args:
        image: an ``ImageVolume`` (any channels; colour is reduced to its mean), or an array
            ``(H, W)``, ``(T, H, W)`` or ``(C, T, H, W)`` of 0-255 grey levels.

    Returns:
        The ``ScanRegion``; when nothing looks like echo, the whole frame.
    """
    count, mean, std = _temporal_stats(image)
    if count >= 3:
        region = _region_from_motion(mean, std)
        if region is not None:
            return region
    return _region_from_intensity(mean)


def crop_to_scan_region(volume: ImageVolume, region: ScanRegion | None = None) -> ImageVolume:
    """Crop a volume to its scan region's bounding box and zero everything outside the region.

    The affine is shifted so that index ``(n, r, c)`` of the crop maps to the same place as
    index ``(n, r + r0, c + c0)`` of the original; ``header["scan_region"]`` records the offset
    and the source shape so maps computed on the crop can be put back.

    Args:
        volume: the clip or image.
        region: a region found earlier; found here when None.

    Returns:
        The cropped volume, with the cropped mask in ``extras["scan_mask"]``.
    """
    region = region or find_scan_region(volume)
    if region.mask.shape != volume.array.shape[2:]:
        raise ValueError(f"region {region.mask.shape} does not match frames {volume.array.shape[2:]}")
    r0, r1, c0, c1 = region.bbox
    mask = region.mask[r0:r1, c0:c1]
    array = volume.array[:, :, r0:r1, c0:c1] * mask.astype(volume.array.dtype)
    labels = None if volume.labels is None else volume.labels[:, r0:r1, c0:c1] * mask
    affine = volume.affine.copy()
    affine[:3, 3] += affine[:3, 1] * r0 + affine[:3, 2] * c0
    header = dict(
        volume.header,
        scan_region={"crop_offset": (r0, c0), "bbox": region.bbox, "source_shape": region.mask.shape},
    )
    return volume.with_(
        array=array, affine=affine, labels=labels, header=header,
        extras=dict(volume.extras, scan_mask=mask),
    )


def _temporal_stats(image: ImageVolume | np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation over up to ``SAMPLE_FRAMES`` evenly spaced frames.

    Frames are accumulated one at a time, so a long clip costs two ``(H, W)`` float arrays.
    """
    array = image.array if isinstance(image, ImageVolume) else np.asarray(image)
    if array.ndim == 2:
        array = array[None, None]
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected (H, W), (T, H, W) or (C, T, H, W) frames, got {array.shape}")
    step = max(1, array.shape[1] // SAMPLE_FRAMES)
    indices = range(0, array.shape[1], step)[:SAMPLE_FRAMES]
    total = np.zeros(array.shape[2:], np.float64)
    squares = np.zeros(array.shape[2:], np.float64)
    for index in indices:
        frame = array[:, index].mean(axis=0, dtype=np.float64)  # colour -> its mean
        total += frame
        squares += frame * frame
    count = len(indices)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return count, mean.astype(np.float32), std.astype(np.float32)


def _region_from_motion(mean: np.ndarray, std: np.ndarray) -> ScanRegion | None:
    live_threshold = max(LIVE_STD_FLOOR, LIVE_STD_FRACTION * float(np.percentile(std, 95)))
    static = std < STATIC_STD
    text = static & (mean > GRAPHICS_LEVEL)
    zone = _graphics_zone(text, static)
    live = (std > live_threshold) & ~zone
    if live.mean() < MIN_LIVE_FRACTION:
        return None
    parts = _echo_parts(live)
    return None if parts is None else _region(parts, text, zone)


def _region_from_intensity(frame: np.ndarray) -> ScanRegion:
    smooth = ndimage.uniform_filter(frame, size=5)
    level = max(4.0, 0.05 * float(np.percentile(smooth, 99)))
    # Text strokes are a few pixels wide: an opening detaches them from the fan.
    parts = _echo_parts(ndimage.binary_opening(smooth > level, structure=_disk(4)))
    if parts is None:
        height, width = frame.shape
        return ScanRegion(np.ones((height, width), bool), (0, height, 0, width), np.zeros((height, width), bool))
    text = (frame > GRAPHICS_LEVEL) & ~ndimage.binary_dilation(parts, iterations=2)
    return _region(parts, text, _graphics_zone(text, smooth <= level))


def _graphics_zone(text: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Text strokes, the gaps between them, and the plain (static or dark) box behind them."""
    if not text.any():
        return text
    blocks = ndimage.binary_closing(text, structure=_disk(3)) | text
    grown = ndimage.binary_dilation(blocks, iterations=GRAPHICS_MARGIN, mask=background | blocks)
    return grown | ndimage.binary_dilation(blocks, iterations=2)


def _echo_parts(candidates: np.ndarray) -> np.ndarray | None:
    """Clean a candidate echo mask and keep its large connected parts (None if too small)."""
    pad = 6  # room for the closing, so regions touching the frame edge keep their edge
    cleaned = ndimage.binary_opening(np.pad(candidates, pad, mode="edge"), structure=_disk(2))
    cleaned = ndimage.binary_closing(cleaned, structure=_disk(5))[pad:-pad, pad:-pad]
    parts = _large_components(ndimage.binary_fill_holes(cleaned))
    if parts is None or parts.mean() < MIN_LIVE_FRACTION:
        return None
    return parts


def _region(parts: np.ndarray, text: np.ndarray, zone: np.ndarray) -> ScanRegion:
    hull = _convex_hull_mask(parts)
    # Graphics inside the hull are cut out only when they form text-sized marks, not when a
    # still probe (or a codec's skipped blocks) left a large patch of tissue unchanged.
    mask = hull & ~_small_components(zone & hull, max_area=0.05 * hull.sum())
    rows, cols = np.nonzero(mask)
    bbox = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    return ScanRegion(mask=mask, bbox=bbox, text_mask=text)


def _large_components(mask: np.ndarray) -> np.ndarray | None:
    """The largest connected component and any other at least ``LARGE_PART`` of its size.

    An anechoic effusion or a rib shadow can split one fan into parts; text never comes close.
    """
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= LARGE_PART * sizes.max()
    keep[0] = False
    return keep[labels]


def _small_components(mask: np.ndarray, max_area: float) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes <= max_area
    keep[0] = False
    return keep[labels]


def _convex_hull_mask(component: np.ndarray) -> np.ndarray:
    """Rasterise the convex hull of a component (pixel centres within half a pixel are in)."""
    edge = component & ~ndimage.binary_erosion(component)
    points = np.argwhere(edge).astype(np.float64)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # degenerate (a line): the component is its own hull
        return component
    r0, c0 = points.min(axis=0).astype(int)
    r1, c1 = points.max(axis=0).astype(int) + 1
    rows, cols = np.mgrid[r0:r1, c0:c1]
    inside = np.ones(rows.shape, bool)
    for normal_r, normal_c, offset in hull.equations:
        inside &= normal_r * rows + normal_c * cols + offset <= 0.5
    mask = np.zeros_like(component)
    mask[r0:r1, c0:c1] = inside
    return mask | component


def _disk(radius: int) -> np.ndarray:
    rows, cols = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return rows * rows + cols * cols <= radius * radius


def describe(region: ScanRegion) -> dict[str, Any]:
    """A small JSON-able summary (for headers and logs)."""
    return {"bbox": region.bbox, "fraction": round(region.fraction, 4), "text_pixels": int(region.text_mask.sum())}
