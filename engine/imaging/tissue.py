"""Tissue detection on a low-resolution view of a slide, and the tile grid a classifier reads.

Tissue is found where H&E stain colours the glass: Otsu's threshold, taken on a log scale, (Otsu 1979, "A threshold
selection method from gray-level histograms", IEEE Trans. SMC 9(1), 62-66) on HSV saturation,
the usual first step of whole-slide pipelines (e.g. CLAM, Lu et al. 2021, Nature Biomedical
Engineering 5, 555-570), or on optical density (Beer-Lambert; Ruifrok & Johnston 2001,
Analytical and Quantitative Cytology and Histology 23(4), 291-299). The mask is cleaned with
closing, hole filling and a minimum area, then each tile of a grid at the chosen magnification
gets the fraction of its area that is tissue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage

from engine.imaging.slide import SlideReader

#: Saturation (0-1) and optical density below which a pixel is never tissue, whatever Otsu says:
#: a blank or all-background view must not produce tissue out of noise.
MIN_SATURATION = 0.07
MIN_OPTICAL_DENSITY = 0.05
_LOG_OFFSET = 0.01
#: Pixels darker than this (max channel, 0-255) have no meaningful saturation (black borders).
DARK_LEVEL = 30
#: Smallest piece of tissue kept, in square microns (about a 70 um square) when mpp is known.
MIN_TISSUE_AREA_UM2 = 5000.0
#: Smallest piece of tissue kept, in mask pixels, when the slide has no mpp.
MIN_TISSUE_AREA_PX = 64
#: Longest side of the view tissue is detected on.
TISSUE_VIEW_SIZE = 1024

TissueMethod = Literal["saturation", "optical_density"]


@dataclass(frozen=True, eq=False)
class TissueMap:
    """A tissue mask over a whole slide.

    Attributes:
        mask: ``(rows, cols)`` bool, True on tissue.
        downsample: level-0 pixels per mask pixel.
    """

    mask: np.ndarray
    downsample: float

    def fraction(self, x: float, y: float, width0: float, height0: float) -> float:
        """Share of tissue in a level-0 rectangle ``(x, y, width0, height0)``."""
        d = self.downsample
        r0, r1 = int(np.floor(y / d)), int(np.ceil((y + height0) / d))
        c0, c1 = int(np.floor(x / d)), int(np.ceil((x + width0) / d))
        window = self.mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)]
        return float(window.mean()) if window.size else 0.0


@dataclass(frozen=True)
class Tile:
    """One tile to read: ``slide.read_region(level, (x, y), (w, h))``.

    Attributes:
        level: pyramid level the tile is read from.
        x, y: top-left corner in level-0 pixels.
        w, h: size in pixels of ``level`` (resize to the model's tile size if they differ).
        tissue_fraction: share of the tile's area that is tissue.
    """

    level: int
    x: int
    y: int
    w: int
    h: int
    tissue_fraction: float

    def footprint(self, slide: SlideReader) -> tuple[int, int, int, int]:
        """``(row0, col0, rows, cols)`` the tile covers in level-0 pixels (for stitching)."""
        scale = slide.downsamples[self.level]
        return self.y, self.x, int(round(self.h * scale)), int(round(self.w * scale))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of ``values``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def glass_threshold(signal: np.ndarray) -> float:
    """Otsu's threshold computed on ``log(signal + 0.01)``, mapped back.

    Glass is a narrow peak near zero, tissue a broad spread from pale stroma to dark nuclei.
    On the linear scale Otsu can cut between pale and dark tissue; the log scale compresses
    the tissue spread so the cut falls between glass and tissue.
    """
    return float(np.exp(otsu_threshold(np.log(signal + _LOG_OFFSET))) - _LOG_OFFSET)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (0-1) of ``(h, w, 3)`` uint8 RGB; 0 for near-black pixels."""
    rgb = rgb.astype(np.float32)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    sat = (high - low) / np.maximum(high, 1.0)
    sat[high < DARK_LEVEL] = 0.0
    return sat


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Mean optical density ``-log10(I / 255)`` over the channels (0 for white glass)."""
    intensity = (rgb.astype(np.float32) + 1.0) / 256.0
    return -np.log10(intensity).mean(axis=2)


def tissue_mask(rgb: np.ndarray, method: TissueMethod = "saturation", min_area_px: int = MIN_TISSUE_AREA_PX) -> np.ndarray:
    """Tissue mask of a low-resolution RGB view.

    Args:
        rgb: ``(h, w, 3)`` uint8 view of the slide.
        method: "saturation" (robust to faint staining) or "optical_density".
        min_area_px: connected pieces smaller than this many pixels are dropped.

    Returns:
        ``(h, w)`` bool mask.
    """
    if method == "saturation":
        signal, floor = saturation(rgb), MIN_SATURATION
    elif method == "optical_density":
        signal, floor = optical_density(rgb), MIN_OPTICAL_DENSITY
    else:
        raise ValueError(f"unknown tissue method {method!r}")
    signal = ndimage.uniform_filter(signal, size=3)
    mask = signal > max(glass_threshold(signal), floor)
    mask = ndimage.binary_closing(mask, structure=np.ones((5, 5), bool), border_value=0) | mask
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_area_px
        keep[0] = False
        mask = keep[labels]
    return mask


def detect_tissue(slide: SlideReader, method: TissueMethod = "saturation", view_size: int = TISSUE_VIEW_SIZE) -> TissueMap:
    """Detect tissue on a thumbnail of the slide (longest side ``view_size``)."""
    rgb, downsample = slide.thumbnail(view_size)
    if slide.mpp:
        pixel_area_um2 = slide.mpp[0] * slide.mpp[1] * downsample * downsample
        min_area = max(1, int(MIN_TISSUE_AREA_UM2 / pixel_area_um2))
    else:
        min_area = MIN_TISSUE_AREA_PX
    return TissueMap(mask=tissue_mask(rgb, method, min_area), downsample=downsample)


def tile_grid(
    slide: SlideReader,
    tile_size: int,
    *,
    target_mpp: float | None = None,
    level: int | None = None,
    tissue: TissueMap | None = None,
    min_tissue_fraction: float = 0.5,
    overlap: int = 0,
) -> list[Tile]:
    """Tiles of ``tile_size`` pixels at a magnification, where there is enough tissue.

    Args:
        slide: the open slide.
        tile_size: tile side in pixels at the chosen magnification.
        target_mpp: microns per pixel wanted (e.g. 0.5 for "20x"); read from the sharpest-enough
            level and resized. Exclusive with ``level``.
        level: read tiles at this pyramid level. Neither given: level 0.
        tissue: a tissue map; detected on a thumbnail when None.
        min_tissue_fraction: tiles with less tissue than this are left out (0 keeps all).
        overlap: pixels (at the chosen magnification) shared by neighbouring tiles.

    Returns:
        Full tiles inside the slide, row by row.

    Raises:
        ValueError: both or an impossible magnification given, or ``target_mpp`` for a slide
            whose pixel size is unknown.
    """
    if target_mpp is not None and level is not None:
        raise ValueError("give target_mpp or level, not both")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, {tile_size}), got {overlap}")
    if target_mpp is not None:
        if slide.mpp is None:
            raise ValueError(f"{slide.path}: pixel size unknown, choose a level instead of target_mpp")
        downsample = target_mpp / slide.mpp[0]
        if downsample < 1.0 - 1e-3:
            raise ValueError(f"{target_mpp} um/px is sharper than the slide's {slide.mpp[0]:.3f} um/px")
        read_level = slide.best_level(downsample)
    else:
        read_level = level or 0
        if not 0 <= read_level < slide.levels:
            raise ValueError(f"level {read_level} outside 0..{slide.levels - 1}")
        downsample = slide.downsamples[read_level]
    read_size = max(1, int(round(tile_size * downsample / slide.downsamples[read_level])))
    tissue = tissue if tissue is not None else detect_tissue(slide)
    extent0 = tile_size * downsample
    step0 = (tile_size - overlap) * downsample
    width0, height0 = slide.dimensions[0]
    tiles = []
    for y in np.arange(0.0, height0 - extent0 + 1e-6, step0):
        for x in np.arange(0.0, width0 - extent0 + 1e-6, step0):
            fraction = tissue.fraction(x, y, extent0, extent0)
            if fraction >= min_tissue_fraction:
                tiles.append(Tile(read_level, int(round(x)), int(round(y)), read_size, read_size, fraction))
    return tiles


def read_tile(slide: SlideReader, tile: Tile, tile_size: int | None = None) -> np.ndarray:
    """The tile's RGB pixels, resized to ``tile_size`` when the level's pixels differ from it."""
    rgb = slide.read_region(tile.level, (tile.x, tile.y), (tile.w, tile.h))
    if tile_size is not None and (tile.w, tile.h) != (tile_size, tile_size):
        rgb = np.asarray(Image.fromarray(rgb).resize((tile_size, tile_size), Image.BILINEAR))
    return rgb
