"""Pure numpy rendering of one slice: windowing, colour maps, saliency normalisation, blending.

Nothing here imports Qt or torch, so every step that decides what a pixel looks like is tested
headless, and the window, the overlay video and the overlay PNG of the command line draw alike.
The slice view only wraps the final ``(H, W, 4)`` RGBA buffer in a ``QImage``. Which raw values a
colour stands for is decided in ``engine.explain.summary`` (the one colour-range rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from engine.explain.summary import MapRange

# Stops of matplotlib's perceptually uniform 'inferno' map (van der Walt & Smith, 2015) at
# 0.0, 0.1, ..., 1.0, as 8-bit RGB; the LUT interpolates linearly between them.
_INFERNO_STOPS = np.array(
    [
        (0, 0, 4),
        (22, 11, 57),
        (66, 10, 104),
        (106, 23, 110),
        (147, 38, 103),
        (188, 55, 84),
        (221, 81, 58),
        (243, 120, 25),
        (252, 165, 10),
        (246, 215, 70),
        (252, 255, 164),
    ],
    dtype=np.float64,
)


@lru_cache(maxsize=None)
def inferno_lut() -> np.ndarray:
    """The 256-entry 'inferno' colour map: black through purple and orange to pale yellow.

    Returns:
        ``(256, 3)`` read-only uint8 RGB table; entry 0 is the coldest colour, 255 the hottest.
    """
    positions = np.linspace(0.0, 1.0, len(_INFERNO_STOPS))
    x = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(x, positions, _INFERNO_STOPS[:, k]) for k in range(3)]
    return _frozen(np.rint(np.stack(channels, axis=1)).astype(np.uint8))


@lru_cache(maxsize=None)
def jet_lut() -> np.ndarray:
    """The 256-entry 'jet' colour map (blue, cyan, yellow, red), familiar from Grad-CAM figures.

    Returns:
        ``(256, 3)`` uint8 RGB table, entry 255 dark red.
    """
    x = np.linspace(0.0, 1.0, 256)
    rgb = [np.clip(1.5 - np.abs(4.0 * x - centre), 0.0, 1.0) for centre in (3.0, 2.0, 1.0)]
    return _frozen(np.rint(np.stack(rgb, axis=1) * 255.0).astype(np.uint8))


def _frozen(lut: np.ndarray) -> np.ndarray:
    lut.setflags(write=False)  # cached and shared: nobody may change it
    return lut


COLORMAPS = {"inferno": inferno_lut, "jet": jet_lut}


def colormap(name: str) -> np.ndarray:
    """The LUT of a named colour map (``"inferno"`` or ``"jet"``).

    Raises:
        KeyError: the name is not one of ``COLORMAPS``.
    """
    try:
        return COLORMAPS[name]()
    except KeyError:
        raise KeyError(f"no colour map {name!r}; choose from {sorted(COLORMAPS)}") from None


def window_to_uint8(image: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Map pixel values to display grey levels with a linear window.

    Values at ``centre - width / 2`` or below become 0, at ``centre + width / 2`` or above 255,
    linear in between (rounded to the nearest level).

    Args:
        image: pixel values in array units, any shape (``(H, W)``, or ``(H, W, 3)`` for colour,
            where each channel gets the same window).
        centre: window centre (level).
        width: window width, > 0.

    Returns:
        uint8 levels of the same shape.

    Raises:
        ValueError: the width is not positive.
    """
    if not width > 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = centre - width / 2.0
    scaled = (np.asarray(image, dtype=np.float64) - low) * (255.0 / width)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def normalise_map(saliency: np.ndarray, value_range: MapRange) -> np.ndarray:
    """Scale a raw map into ``[0, 1]`` with a given range; NaN becomes 0 (no saliency).

    Args:
        saliency: ``(H, W)`` raw signed map of one slice.
        value_range: what maps to 0 and 1, from ``map_range``.

    Returns:
        ``(H, W)`` float32 values in ``[0, 1]``.
    """
    span = value_range.high - value_range.low
    scaled = (np.asarray(saliency, dtype=np.float64) - value_range.low) / span
    return np.nan_to_num(np.clip(scaled, 0.0, 1.0), nan=0.0).astype(np.float32)


def blend_overlay(
    grey: np.ndarray, normalised: np.ndarray, lut: np.ndarray, opacity: float
) -> np.ndarray:
    """Blend a normalised map over a grey or colour image, weighting each pixel by its saliency.

    A pixel's colour weight is ``opacity * value``: zero saliency leaves the grey image untouched,
    full saliency at opacity 1 shows the colour map's hottest colour exactly. This keeps the
    anatomy readable where the model looked at nothing, unlike a uniform tint.

    Args:
        grey: ``(H, W)`` uint8 windowed grey image, or ``(H, W, 3)`` uint8 windowed RGB.
        normalised: ``(H, W)`` values in ``[0, 1]`` from ``normalise_map``.
        lut: ``(256, 3)`` uint8 colour map.
        opacity: overall overlay opacity in ``[0, 1]``.

    Returns:
        ``(H, W, 4)`` uint8 RGBA, alpha 255.

    Raises:
        ValueError: the image and the map differ in shape.
    """
    if grey.shape[:2] != normalised.shape:
        raise ValueError(f"map of shape {normalised.shape} does not match image {grey.shape[:2]}")
    values = np.clip(normalised, 0.0, 1.0)
    colours = lut[np.rint(values * 255.0).astype(np.intp)].astype(np.float32)
    weight = (float(np.clip(opacity, 0.0, 1.0)) * values)[..., None]
    base = grey.astype(np.float32)
    if base.ndim == 2:
        base = base[..., None]
    rgb = np.rint(base * (1.0 - weight) + colours * weight).astype(np.uint8)
    return _with_alpha(rgb)


def grey_to_rgba(grey: np.ndarray) -> np.ndarray:
    """An opaque RGBA image of a uint8 grey ``(H, W)`` or colour ``(H, W, 3)`` image."""
    if grey.ndim == 3:
        return _with_alpha(grey)
    return _with_alpha(np.repeat(grey[..., None], 3, axis=2))


def _with_alpha(rgb: np.ndarray) -> np.ndarray:
    rgba = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    return rgba


@dataclass(frozen=True)
class OverlaySpec:
    """What to blend on top of a slice: its raw map, the normalisation range and the look."""

    saliency: np.ndarray  # (H, W) raw signed map of the slice
    value_range: MapRange
    lut: np.ndarray
    opacity: float


def render_slice(
    image: np.ndarray, centre: float, width: float, overlay: OverlaySpec | None
) -> np.ndarray:
    """The RGBA pixels of one slice as displayed: windowed grey (or colour), the map on top if given.

    A colour image is windowed per channel with the same window, so a window spanning the pixel
    range shows the stored colours unchanged.

    Args:
        image: ``(H, W)`` pixel values, or ``(H, W, 3)`` red, green and blue values.
        centre: window centre.
        width: window width.
        overlay: the map to blend, or None for the plain image.

    Returns:
        ``(H, W, 4)`` uint8 RGBA, C-contiguous.
    """
    grey = window_to_uint8(image, centre, width)
    if overlay is None or overlay.opacity <= 0.0:
        return grey_to_rgba(grey)
    normalised = fit_to_image(normalise_map(overlay.saliency, overlay.value_range), grey.shape[:2])
    return blend_overlay(grey, normalised, overlay.lut, overlay.opacity)


def fit_to_image(normalised: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map that covers the whole image on a coarser grid, resampled onto the image's pixels.

    Clip maps are kept at a few hundred pixels a side rather than at the frame's full size (a
    long clip's maps would not fit in memory otherwise). Pixel centres are aligned (the map's
    first and last pixels sit at the image's corners' centres scaled by the grid ratio), values
    interpolated bilinearly, so a map on the image's own grid comes back unchanged.

    Args:
        normalised: ``(h, w)`` values in ``[0, 1]``.
        shape: the image's ``(H, W)``.
    """
    if normalised.shape == tuple(shape):
        return normalised
    rows = (np.arange(shape[0]) + 0.5) * (normalised.shape[0] / shape[0]) - 0.5
    cols = (np.arange(shape[1]) + 0.5) * (normalised.shape[1] / shape[1]) - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(normalised, grid, order=1, mode="nearest").astype(np.float32)
