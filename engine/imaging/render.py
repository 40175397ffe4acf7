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

from engine.explain.summary import MapRange

# Colour maps as 11 stops at 0.0, 0.1, ..., 1.0 (8-bit RGB); a LUT interpolates linearly between
# them. The perceptually uniform maps are those of matplotlib (van der Walt & Smith, 2015; public
# domain): 'inferno' (black, purple, orange, pale yellow) and 'viridis' (purple, teal, yellow);
# 'cividis' (Nunez, Anderton & Renslow, PLoS ONE 2018) runs from navy blue through grey to yellow
# and stays readable for colour-vision deficiency and over the pinks and purples of H&E.
_STOPS = {
    "inferno": [(0, 0, 4), (22, 11, 57), (66, 10, 104), (106, 23, 110), (147, 38, 103), (188, 55, 84),
                (221, 81, 58), (243, 120, 25), (252, 165, 10), (246, 215, 70), (252, 255, 164)],
    "viridis": [(68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
                (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37)],
    "cividis": [(0, 34, 78), (8, 51, 112), (53, 69, 108), (79, 87, 108), (102, 105, 112), (125, 124, 120),
                (148, 142, 119), (174, 163, 113), (200, 184, 102), (229, 207, 82), (254, 232, 56)],
}


@lru_cache(maxsize=None)
def stops_lut(name: str) -> np.ndarray:
    """The 256-entry LUT of a colour map given by stops (``"inferno"``, ``"viridis"``, ``"cividis"``).

    Returns:
        ``(256, 3)`` read-only uint8 RGB table; entry 0 is the coldest colour, 255 the hottest.
    """
    stops = np.asarray(_STOPS[name], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(stops))
    x = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(x, positions, stops[:, k]) for k in range(3)]
    return _frozen(np.rint(np.stack(channels, axis=1)).astype(np.uint8))


def inferno_lut() -> np.ndarray:
    """The 256-entry 'inferno' colour map: black through purple and orange to pale yellow."""
    return stops_lut("inferno")


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


#: Colour maps by name; "cividis" is the one to use over pink H&E.
COLORMAPS = {"inferno": inferno_lut, "jet": jet_lut, "viridis": lambda: stops_lut("viridis"),
             "cividis": lambda: stops_lut("cividis")}


def colormap(name: str) -> np.ndarray:
    """The LUT of a named colour map (one of ``COLORMAPS``).

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
    linear in between (rounded to the nearest level). Computed in float32 in place, so a
    1024 x 1024 slice windows in a few milliseconds.

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
    scaled = np.asarray(np.subtract(image, np.float32(low), dtype=np.float32))
    scaled *= np.float32(255.0 / width)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def normalise_map(saliency: np.ndarray, value_range: MapRange) -> np.ndarray:
    """Scale a raw map into ``[0, 1]`` with a given range; NaN becomes 0 (no saliency).

    Args:
        saliency: ``(H, W)`` raw signed map of one slice.
        value_range: what maps to 0 and 1, from ``map_range``.

    Returns:
        ``(H, W)`` float32 values in ``[0, 1]``.
    """
    span = value_range.high - value_range.low
    scaled = np.asarray(np.subtract(saliency, np.float32(value_range.low), dtype=np.float32))
    scaled *= np.float32(1.0 / span)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    return np.nan_to_num(scaled, copy=False, nan=0.0)


def blend_overlay(
    grey: np.ndarray, normalised: np.ndarray, lut: np.ndarray, opacity: float, threshold: float = 0.0
) -> np.ndarray:
    """Blend a normalised map over a grey or colour image, weighting each pixel by its saliency.

    A pixel's colour weight is ``opacity * level / 255`` where ``level`` is its saliency on the
    colour map's 256 steps: zero saliency leaves the grey image untouched, full saliency at
    opacity 1 shows the colour map's hottest colour exactly. This keeps the anatomy readable where
    the model looked at nothing, unlike a uniform tint. Every (level, grey) pair is looked up in
    one table (``_blend_table``), so blending costs one gather per pixel.

    Args:
        grey: ``(H, W)`` uint8 windowed grey image, or ``(H, W, 3)`` uint8 windowed RGB.
        normalised: ``(H, W)`` values in ``[0, 1]`` from ``normalise_map``.
        lut: ``(256, 3)`` uint8 colour map.
        opacity: overall overlay opacity in ``[0, 1]``.
        threshold: values below this share of the range are hidden (the grey shows through);
            the others keep their colour, so a colour means the same value at any threshold.

    Returns:
        ``(H, W, 4)`` uint8 RGBA, alpha 255.

    Raises:
        ValueError: the image and the map differ in shape.
    """
    if grey.shape[:2] != normalised.shape:
        raise ValueError(f"map of shape {normalised.shape} does not match image {grey.shape[:2]}")
    return _blend_levels(grey, _levels(normalised), lut, opacity, threshold)


def _levels(normalised: np.ndarray) -> np.ndarray:
    """``[0, 1]`` values (NaN as 0) as uint8 steps of the colour map."""
    scaled = np.asarray(np.multiply(normalised, np.float32(255.0), dtype=np.float32))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def _blend_levels(grey: np.ndarray, levels: np.ndarray, lut: np.ndarray, opacity: float,
                  threshold: float) -> np.ndarray:
    opacity = min(max(float(opacity), 0.0), 1.0)
    first_shown = int(np.ceil(threshold * 255.0 - 1e-9)) if threshold > 0.0 else 0
    table = _blend_table(np.ascontiguousarray(lut, dtype=np.uint8).tobytes(), round(opacity, 6), first_shown)
    index = levels.astype(np.uint16)
    index <<= 8
    if grey.ndim == 2:
        index |= grey
        return np.take(table, index, axis=0)
    rgba = np.empty(grey.shape[:2] + (4,), dtype=np.uint8)
    rgba[..., 3] = 255
    for channel in range(3):
        rgba[..., channel] = np.take(table[:, channel], index | grey[..., channel])
    return rgba


@lru_cache(maxsize=32)
def _blend_table(lut_bytes: bytes, opacity: float, first_shown: int) -> np.ndarray:
    """``(256 * 256, 4)`` RGBA of every (map level, grey level) pair: row ``level * 256 + grey``
    holds ``rint(grey * (1 - w) + lut[level] * w)`` with ``w = opacity * level / 255`` (0 below
    ``first_shown``), alpha 255."""
    lut = np.frombuffer(lut_bytes, dtype=np.uint8).reshape(256, 3).astype(np.float64)
    weight = opacity * np.arange(256) / 255.0
    weight[:first_shown] = 0.0
    grey = np.arange(256, dtype=np.float64)
    mixed = grey[None, :, None] * (1.0 - weight)[:, None, None] + lut[:, None, :] * weight[:, None, None]
    table = np.empty((256 * 256, 4), dtype=np.uint8)
    table[:, :3] = np.rint(mixed).reshape(-1, 3)
    table[:, 3] = 255
    table.setflags(write=False)
    return table


def grey_to_rgba(grey: np.ndarray) -> np.ndarray:
    """An opaque RGBA image of a uint8 grey ``(H, W)`` or colour ``(H, W, 3)`` image."""
    if grey.ndim == 3:
        return _with_alpha(grey)
    return np.take(_GREY_RGBA, grey, axis=0)


_GREY_RGBA = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 4, axis=1)
_GREY_RGBA[:, 3] = 255
_GREY_RGBA.setflags(write=False)


def _with_alpha(rgb: np.ndarray) -> np.ndarray:
    rgba = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    return rgba


#: The levels (shares of the colour range) a contour-only overlay draws.
CONTOUR_LEVELS = (0.25, 0.5, 0.75)
#: Contour lines are at least this opaque (a thin line at the fill's opacity is hard to see).
CONTOUR_MIN_OPACITY = 0.9


def contour_overlay(grey: np.ndarray, normalised: np.ndarray, lut: np.ndarray, opacity: float,
                    threshold: float = 0.0) -> np.ndarray:
    """Iso-lines of a normalised map over the image, the anatomy untouched between them.

    Each level of ``CONTOUR_LEVELS`` at or above ``threshold`` is drawn as the one-pixel rim of
    the region at or above it (4-neighbourhood), in the colour map's colour of that level; higher
    levels are drawn over lower ones.

    Args:
        grey: ``(H, W)`` or ``(H, W, 3)`` uint8 windowed image.
        normalised: ``(H, W)`` values in ``[0, 1]``.
        lut: ``(256, 3)`` uint8 colour map.
        opacity: how opaque the lines are (at least ``CONTOUR_MIN_OPACITY``; 0 is handled by the
            caller as no overlay).
        threshold: levels below this share of the range are not drawn.

    Returns:
        ``(H, W, 4)`` uint8 RGBA, alpha 255.
    """
    if grey.shape[:2] != normalised.shape:
        raise ValueError(f"map of shape {normalised.shape} does not match image {grey.shape[:2]}")
    rgb = (grey if grey.ndim == 3 else np.repeat(grey[..., None], 3, axis=2)).astype(np.float32)
    alpha = max(float(np.clip(opacity, 0.0, 1.0)), CONTOUR_MIN_OPACITY)
    for level, rim in _contour_rims(normalised, threshold):
        colour = lut[round(level * 255)].astype(np.float32)
        rgb[rim] = rgb[rim] * (1.0 - alpha) + colour * alpha
    return _with_alpha(np.rint(rgb).astype(np.uint8))


def _contour_rims(normalised: np.ndarray, threshold: float):
    """``(level, rim mask)`` of each of ``CONTOUR_LEVELS`` at or above ``threshold``, lowest first:
    the one-pixel rim (4-neighbourhood) of the region at or above the level."""
    for level in CONTOUR_LEVELS:
        if level < threshold:
            continue
        inside = normalised >= level
        padded = np.pad(inside, 1, mode="edge")
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        yield level, inside & ~interior


@dataclass(frozen=True)
class OverlaySpec:
    """What to blend on top of a slice: its raw map, the normalisation range and the look.

    Attributes:
        saliency: ``(h, w)`` raw signed map of the slice (the image's grid or a coarser one).
        value_range: raw values at the bottom and the top of the colour map.
        lut: ``(256, 3)`` colour map.
        opacity: in ``[0, 1]``.
        threshold: share of the range below which the map is hidden, in ``[0, 1)``.
        contour: draw iso-lines only (``contour_overlay``) instead of filling.
    """

    saliency: np.ndarray
    value_range: MapRange
    lut: np.ndarray
    opacity: float
    threshold: float = 0.0
    contour: bool = False


def render_slice(
    image: np.ndarray, centre: float, width: float, overlay: OverlaySpec | None, invert: bool = False
) -> np.ndarray:
    """The RGBA pixels of one slice as displayed: windowed grey (or colour), the map on top if given.

    A colour image is windowed per channel with the same window, so a window spanning the pixel
    range shows the stored colours unchanged.

    Args:
        image: ``(H, W)`` pixel values, or ``(H, W, 3)`` red, green and blue values.
        centre: window centre.
        width: window width.
        overlay: the map to blend, or None for the plain image.
        invert: show the windowed levels inverted (255 - level) under the map.

    Returns:
        ``(H, W, 4)`` uint8 RGBA, C-contiguous.
    """
    grey = window_to_uint8(image, centre, width)
    if invert:
        np.subtract(255, grey, out=grey)
    if overlay is None or overlay.opacity <= 0.0:
        return grey_to_rgba(grey)
    normalised = normalise_map(overlay.saliency, overlay.value_range)
    if overlay.contour:
        return contour_overlay(grey, fit_to_image(normalised, grey.shape[:2]), overlay.lut, overlay.opacity,
                               overlay.threshold)
    if normalised.shape == grey.shape[:2]:
        levels = _levels(normalised)
    else:  # steps on the map's own grid, interpolated onto the image: the full-size work is one pass
        scaled = normalised * np.float32(255.0)
        fitted = fit_to_image(scaled, grey.shape[:2])
        fitted += np.float32(0.5)
        levels = fitted.astype(np.uint8)
    return _blend_levels(grey, levels, overlay.lut, overlay.opacity, overlay.threshold)


def fit_to_image(normalised: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map that covers the whole image on a coarser grid, resampled onto the image's pixels.

    Clip maps are kept at a few hundred pixels a side rather than at the frame's full size (a
    long clip's maps would not fit in memory otherwise). Pixel centres are aligned (the map's
    first and last pixels sit at the image's corners' centres scaled by the grid ratio), values
    interpolated bilinearly, rows then columns, and held flat beyond the outermost map pixel
    centres; a map on the image's own grid comes back unchanged.

    Args:
        normalised: ``(h, w)`` values in ``[0, 1]``.
        shape: the image's ``(H, W)``.
    """
    if normalised.shape == tuple(shape):
        return normalised
    values = np.asarray(normalised, dtype=np.float32)
    top, bottom, row_weight = _axis_weights(values.shape[0], shape[0])
    left, right, col_weight = _axis_weights(values.shape[1], shape[1])
    rows = np.take(values, top, axis=0)
    step = np.take(values, bottom, axis=0)
    step -= rows
    step *= row_weight[:, None]
    rows += step
    fitted = np.take(rows, left, axis=1)
    step = np.take(rows, right, axis=1)
    step -= fitted
    step *= col_weight[None, :]
    fitted += step
    return fitted


@lru_cache(maxsize=32)
def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel along one axis: the two input pixels around its centre and the
    weight of the second (positions clamped to the first and last input centres)."""
    position = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    before = np.floor(position).astype(np.intp)
    after = np.minimum(before + 1, n_in - 1)
    return before, after, (position - before).astype(np.float32)


def overlay_rgba(overlay: OverlaySpec) -> np.ndarray:
    """The map alone as a straight-alpha RGBA layer, on the map's own grid, for a view that draws
    it over an image it holds elsewhere (a slide's tiles).

    Drawn over an image with the usual "over" rule it gives what ``render_slice`` blends: each
    pixel takes the colour map's colour of its level at weight ``opacity * level / 255``, none
    below the threshold (or, with ``contour``, the rims of ``CONTOUR_LEVELS`` at least
    ``CONTOUR_MIN_OPACITY`` opaque).

    Returns:
        ``(h, w, 4)`` uint8 RGBA, C-contiguous; alpha 0 where the map shows nothing.
    """
    normalised = normalise_map(overlay.saliency, overlay.value_range)
    levels = _levels(normalised)
    rgba = np.zeros(levels.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = np.take(np.asarray(overlay.lut, dtype=np.uint8), levels, axis=0)
    opacity = min(max(float(overlay.opacity), 0.0), 1.0)
    if overlay.contour:
        alpha = max(opacity, CONTOUR_MIN_OPACITY) if opacity > 0.0 else 0.0
        for level, rim in _contour_rims(normalised, overlay.threshold):
            rgba[rim, :3] = overlay.lut[round(level * 255)]
            rgba[rim, 3] = round(alpha * 255)
        return rgba
    first_shown = int(np.ceil(overlay.threshold * 255.0 - 1e-9)) if overlay.threshold > 0.0 else 0
    weight = opacity * np.arange(256) / 255.0
    weight[:first_shown] = 0.0
    rgba[..., 3] = np.take(np.rint(weight * 255.0).astype(np.uint8), levels)
    return rgba
