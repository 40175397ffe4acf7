"""Write a whole-slide pyramid: a tiled, multi-resolution TIFF that ``SlideReader`` opens.

Level 0 holds the whole image; each further level halves the one before (mean of 2 x 2 pixels)
and is stored as a SubIFD of level 0 with the same tiling and compression, the layout of the
generic pyramidal TIFFs that tiffslide and OpenSlide read. The pixel size goes into the
resolution tags (pixels per centimetre), so a reader finds the microns per pixel of every level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from engine.errors import SalienceError

#: Tile side of every level, in pixels (a multiple of 16, as TIFF requires).
TILE_SIDE = 256


def halve(rgb: np.ndarray) -> np.ndarray:
    """The image at half the resolution: the rounded mean of each 2 x 2 block (an odd last row or
    column is dropped)."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    blocks = rgb[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).astype(np.uint16).sum(axis=(1, 3))
    return ((blocks + 2) // 4).astype(np.uint8)


def write_pyramid(path: str | Path, rgb: np.ndarray, mpp: float, levels: int = 3, tile: int = TILE_SIDE,
                  compression: str | None = "zlib") -> Path:
    """Write ``rgb`` as a tiled pyramidal TIFF with ``levels`` levels at ``mpp`` um/px.

    Args:
        path: the file to write (its folder must exist).
        rgb: ``(h, w, 3)`` uint8 level 0.
        mpp: microns per level-0 pixel.
        levels: levels in all, level 0 included; level ``k`` is ``2**k`` times coarser.
        tile: tile side in pixels (a multiple of 16).
        compression: a tifffile compression of every tile ("zlib", "jpeg", None).

    Returns:
        ``path``.

    Raises:
        SalienceError: not an RGB uint8 image, a level smaller than one pixel, or no positive ``mpp``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise SalienceError(f"{path}: a pyramid needs (h, w, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
    if levels < 1 or min(rgb.shape[:2]) < 2 ** (levels - 1) or not mpp > 0:
        raise SalienceError(f"{path}: cannot make {levels} levels of a {rgb.shape[1]} x {rgb.shape[0]} image at {mpp} um/px")
    pyramid = [rgb]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    options = dict(tile=(tile, tile), compression=compression, photometric="rgb", resolutionunit="CENTIMETER",
                   metadata=None)
    with tifffile.TiffWriter(path) as tif:
        tif.write(pyramid[0], subifds=levels - 1, resolution=(1e4 / mpp, 1e4 / mpp), **options)
        for k, level in enumerate(pyramid[1:], start=1):
            tif.write(level, subfiletype=1, resolution=(1e4 / (mpp * 2**k),) * 2, **options)
    return Path(path)
