"""The window of a frame a network saw, and how maps on that window go back onto the frame.

Some tasks do not feed the whole frame to the network: lung ultrasound crops each clip to its
scan region (the fan of live echo) and pads it to a square. A ``CropBox`` records that window in
frame pixels, so preprocessing cuts it out and ``Bundle.explain`` pastes the maps computed on it
back into a full-frame array (zeros where the network saw nothing), optionally downsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def scaled_shape(frame_shape: tuple[int, int], max_side: int | None) -> tuple[tuple[int, int], float]:
    """The output grid of a frame whose longer side is at most ``max_side``.

    Args:
        frame_shape: ``(H, W)`` of the frame.
        max_side: the longest side allowed, or None to keep the frame's size.

    Returns:
        ``((H', W'), scale)`` with ``H' = round(H * scale)``; ``scale`` is 1.0 when the frame fits.

    Raises:
        ValueError: ``max_side`` is not positive.
    """
    height, width = int(frame_shape[0]), int(frame_shape[1])
    if max_side is None or max(height, width) <= max_side:
        return (height, width), 1.0
    if max_side < 1:
        raise ValueError(f"max_map_side must be at least 1, got {max_side}")
    scale = max_side / max(height, width)
    return (max(1, round(height * scale)), max(1, round(width * scale))), scale


@dataclass(frozen=True, eq=False)
class CropBox:
    """A window of a frame, possibly reaching past its edges (padded with zeros).

    Attributes:
        top: first row of the window in frame pixels (negative when it starts above the frame).
        left: first column of the window.
        height: rows of the window.
        width: columns of the window.
        frame_shape: ``(H, W)`` of the frame.
        mask: ``(H, W)`` bool, the pixels that hold image (e.g. the scan region); pixels outside it
            are zeroed when cropping and get no map when pasting. None keeps every pixel.
    """

    top: int
    left: int
    height: int
    width: int
    frame_shape: tuple[int, int]
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"crop box must be at least 1 x 1, got {self.height} x {self.width}")
        if self.mask is not None and tuple(self.mask.shape) != tuple(self.frame_shape):
            raise ValueError(f"mask {self.mask.shape} does not match frame {self.frame_shape}")

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)``: half-open rows and columns of the window in frame pixels."""
        return (self.top, self.top + self.height, self.left, self.left + self.width)

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """Cut the window out of ``(..., H, W)`` frames: zeros past the frame and outside the mask.

        Returns:
            ``(..., height, width)`` of the frames' dtype.
        """
        if tuple(frames.shape[-2:]) != tuple(self.frame_shape):
            raise ValueError(f"frames {frames.shape[-2:]} do not match the box's frame {self.frame_shape}")
        kept = frames if self.mask is None else frames * self.mask.astype(frames.dtype)
        out = np.zeros(frames.shape[:-2] + (self.height, self.width), dtype=frames.dtype)
        (fr, fc), (wr, wc) = self._overlap(self.bounds, self.frame_shape)
        out[..., wr, wc] = kept[..., fr, fc]
        return out

    def window_shape(self, scale: float = 1.0) -> tuple[int, int]:
        """``(h, w)`` of the window on a frame grid scaled by ``scale`` (what ``paste`` expects)."""
        r0, r1, c0, c1 = self._scaled_bounds(scale)
        return (r1 - r0, c1 - c0)

    def paste(self, maps: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Put maps computed on the window back onto the (scaled) frame grid.

        Args:
            maps: ``(..., h, w)`` with ``(h, w) == window_shape(scale)``.
            scale: output pixels per frame pixel (``scaled_shape``).

        Returns:
            float32 ``(..., H', W')`` on the scaled frame: the map inside the window and the mask,
            zero elsewhere.
        """
        if tuple(maps.shape[-2:]) != self.window_shape(scale):
            raise ValueError(f"maps {maps.shape[-2:]} do not match the window {self.window_shape(scale)}")
        shape = (max(1, round(self.frame_shape[0] * scale)), max(1, round(self.frame_shape[1] * scale)))
        out = np.zeros(maps.shape[:-2] + shape, dtype=np.float32)
        (fr, fc), (wr, wc) = self._overlap(self._scaled_bounds(scale), shape)
        out[..., fr, fc] = maps[..., wr, wc]
        if self.mask is not None:
            out *= self.scaled_mask(shape)
        return out

    def scaled_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask resampled (nearest, at pixel centres) to a grid of ``shape``; all True without a mask."""
        if self.mask is None:
            return np.ones(shape, dtype=bool)
        rows = np.minimum(((np.arange(shape[0]) + 0.5) * self.frame_shape[0] / shape[0]).astype(int), self.frame_shape[0] - 1)
        cols = np.minimum(((np.arange(shape[1]) + 0.5) * self.frame_shape[1] / shape[1]).astype(int), self.frame_shape[1] - 1)
        return self.mask[np.ix_(rows, cols)]

    def _scaled_bounds(self, scale: float) -> tuple[int, int, int, int]:
        r0, r1, c0, c1 = self.bounds
        top, left = round(r0 * scale), round(c0 * scale)
        return (top, max(top + 1, round(r1 * scale)), left, max(left + 1, round(c1 * scale)))

    @staticmethod
    def _overlap(bounds: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """Slices of the frame and of the window where a window at ``bounds`` meets a frame of ``shape``."""
        r0, r1, c0, c1 = bounds
        fr = slice(max(r0, 0), min(r1, shape[0]))
        fc = slice(max(c0, 0), min(c1, shape[1]))
        wr = slice(fr.start - r0, max(fr.stop, fr.start) - r0)
        wc = slice(fc.start - c0, max(fc.stop, fc.start) - c0)
        return (fr, fc), (wr, wc)


@dataclass(frozen=True, eq=False)
class MapGrid:
    """Where a frame's maps are drawn: the (possibly scaled-down) frame grid, and the window of it
    the network saw.

    Attributes:
        shape: ``(H', W')`` of the output grid (``scaled_shape`` of the frame).
        scale: output pixels per frame pixel.
        box: the window the network saw, or None for the whole frame.
    """

    shape: tuple[int, int]
    scale: float
    box: CropBox | None = None

    @property
    def window(self) -> tuple[int, int]:
        """``(h, w)`` the maps are computed on before ``place`` puts them on the grid."""
        return self.shape if self.box is None else self.box.window_shape(self.scale)

    def place(self, maps: np.ndarray) -> np.ndarray:
        """``(..., h, w)`` maps on the window, as float32 ``(..., H', W')`` on the grid (zero outside
        the window and its mask)."""
        if self.box is None:
            return np.asarray(maps, dtype=np.float32)
        return self.box.paste(maps, self.scale)


def map_grid(frame_shape: tuple[int, int], box: CropBox | None, max_side: int | None) -> MapGrid:
    """The ``MapGrid`` of a frame of ``frame_shape`` whose maps' longer side is at most ``max_side``.

    Raises:
        ValueError: ``max_side`` is not positive.
    """
    shape, scale = scaled_shape(frame_shape, max_side)
    return MapGrid(shape, scale, box)
