"""Write a tiled pyramidal TIFF (the layout ``engine.imaging.slide`` reads) from a level-0 image.

For benchmarks and tests that need a real whole-slide file: level 0 in the first page, each
coarser level (halved by 2 x 2 means) as a reduced-resolution sub-IFD, 256-px tiles, the pixel
size in the resolution tags (tiffslide and OpenSlide read it as microns per pixel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def halve(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` uint8 halved by rounded 2 x 2 means (an odd last row or column is dropped)."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    blocks = rgb[:h, :w].reshape(h // 2, 2, w // 2, 2, rgb.shape[2]).astype(np.uint16)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def write_pyramid(path: str | Path, level0: np.ndarray, levels: int = 3, mpp: float = 0.5,
                  tile: int = 256, compression: str = "zlib") -> list[np.ndarray]:
    """Write ``level0`` and ``levels - 1`` halvings of it as one pyramidal TIFF.

    Args:
        path: the file to write.
        level0: ``(h, w, 3)`` uint8 RGB, full resolution.
        levels: how many levels (each half the one before).
        mpp: microns per level-0 pixel.
        tile: tile side in pixels (a multiple of 16).
        compression: a tifffile compression ("zlib", "jpeg", None).

    Returns:
        The levels written, level 0 first.
    """
    if level0.ndim != 3 or level0.shape[2] != 3 or level0.dtype != np.uint8:
        raise ValueError(f"level 0 must be (h, w, 3) uint8, got {level0.shape} {level0.dtype}")
    pyramid = [level0]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    options = dict(tile=(tile, tile), compression=compression, photometric="rgb", resolutionunit="CENTIMETER",
                   metadata=None)
    with tifffile.TiffWriter(path) as tif:
        tif.write(pyramid[0], subifds=len(pyramid) - 1, resolution=(1e4 / mpp, 1e4 / mpp), **options)
        for k, level in enumerate(pyramid[1:], start=1):
            tif.write(level, subfiletype=1, resolution=(1e4 / (mpp * 2**k),) * 2, **options)
    return pyramid
