"""The box of a volume a whole-volume (3-D) model sees, and how its maps go back onto the volume.

A 2-D bundle reads a volume item by item (slice, frame); a 3-D bundle (``input_size`` of three
numbers) reads it once, as ``(1, C, d, h, w)``. Its task may cut a box out of the volume first (the
brain's bounding box, say) and resample that box to the input size. A ``VolumeBox`` records the
box in the volume's ``(slice, row, col)`` voxels, so a map computed over the network's input is
resampled onto exactly the voxels it came from and pasted into a full-volume array, zero outside
the box. The mapping is geometric: the box and the input cover the same field of view, voxel
centres at the same relative places (``align_corners=False`` resampling both ways).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models.crop_box import scaled_shape


@dataclass(frozen=True)
class VolumeBox:
    """A box of a volume's ``(slice, row, col)`` grid, inside the volume.

    Attributes:
        start: ``(slice, row, col)`` of the box's first voxel.
        size: ``(slices, rows, cols)`` of the box, each at least 1.
        volume_shape: ``(N, H, W)`` of the volume.
    """

    start: tuple[int, int, int]
    size: tuple[int, int, int]
    volume_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if len(self.start) != 3 or len(self.size) != 3 or len(self.volume_shape) != 3:
            raise ValueError("a volume box needs three starts, sizes and volume sides")
        for first, extent, side in zip(self.start, self.size, self.volume_shape):
            if extent < 1 or first < 0 or first + extent > side:
                raise ValueError(f"box from {self.start} of size {self.size} does not fit a volume of {self.volume_shape}")

    @classmethod
    def whole(cls, volume_shape: tuple[int, int, int]) -> "VolumeBox":
        """The box that is the whole volume."""
        shape = tuple(int(s) for s in volume_shape)
        return cls((0, 0, 0), shape, shape)  # type: ignore[arg-type]

    @property
    def bounds(self) -> tuple[tuple[int, int], ...]:
        """Half-open ``((s0, s1), (r0, r1), (c0, c1))`` in volume voxels."""
        return tuple((first, first + extent) for first, extent in zip(self.start, self.size))

    def crop(self, array: np.ndarray) -> np.ndarray:
        """The box of ``(..., N, H, W)`` data (a view)."""
        if tuple(array.shape[-3:]) != tuple(self.volume_shape):
            raise ValueError(f"array {array.shape[-3:]} does not match the box's volume {self.volume_shape}")
        (s0, s1), (r0, r1), (c0, c1) = self.bounds
        return array[..., s0:s1, r0:r1, c0:c1]

    def _scaled_bounds(self, scale: float) -> tuple[tuple[int, int], ...]:
        """Bounds on a grid whose rows and columns are scaled by ``scale`` (slices are not)."""
        (s0, s1), *plane = self.bounds
        scaled = [(round(a * scale), max(round(a * scale) + 1, round(b * scale))) for a, b in plane]
        return ((s0, s1), *scaled)

    def window_shape(self, scale: float = 1.0) -> tuple[int, int, int]:
        """``(d, h, w)`` of the box on a volume grid with rows and columns scaled by ``scale``."""
        return tuple(b - a for a, b in self._scaled_bounds(scale))  # type: ignore[return-value]

    def paste(self, maps: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Put ``(..., d, h, w)`` maps on the box back into the (in-plane scaled) volume grid.

        Args:
            maps: with ``(d, h, w) == window_shape(scale)``.
            scale: output pixels per volume pixel in-plane (``scaled_shape``).

        Returns:
            float32 ``(..., N, H', W')``: the maps inside the box, zero outside it.
        """
        if tuple(maps.shape[-3:]) != self.window_shape(scale):
            raise ValueError(f"maps {maps.shape[-3:]} do not match the box {self.window_shape(scale)}")
        n, height, width = self.volume_shape
        plane = (max(1, round(height * scale)), max(1, round(width * scale)))
        out = np.zeros(maps.shape[:-3] + (n,) + plane, dtype=np.float32)
        (s0, s1), (r0, r1), (c0, c1) = self._scaled_bounds(scale)
        out[..., s0:s1, r0:r1, c0:c1] = maps
        return out


@dataclass(frozen=True, eq=False)
class VolumeGrid:
    """Where a whole-volume model's maps are drawn: every slice of the volume, rows and columns
    scaled so the longer side is at most a bound, and the box of it the network saw.

    Attributes:
        shape: ``(H', W')`` of each slice's map.
        scale: output pixels per volume pixel, in-plane.
        box: the part of the volume the network's input was resampled from.
    """

    shape: tuple[int, int]
    scale: float
    box: VolumeBox

    @property
    def window(self) -> tuple[int, int, int]:
        """``(d, h, w)`` the maps are resampled to before ``place`` pastes them."""
        return self.box.window_shape(self.scale)

    def place(self, maps: np.ndarray) -> np.ndarray:
        """``(T, 1, d, h, w)`` maps of the one item on the box, as float32 ``(T, N, H', W')``: one map
        per slice of the volume, zero outside the box."""
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 5 or maps.shape[1] != 1:
            raise ValueError(f"expected (classes, 1, d, h, w) maps of one volume, got {maps.shape}")
        return self.box.paste(maps[:, 0], self.scale)


def volume_grid(box: VolumeBox, max_side: int | None) -> VolumeGrid:
    """The ``VolumeGrid`` of a volume whose per-slice maps' longer side is at most ``max_side``.

    Raises:
        ValueError: ``max_side`` is not positive.
    """
    shape, scale = scaled_shape(box.volume_shape[1:], max_side)
    return VolumeGrid(shape, scale, box)
