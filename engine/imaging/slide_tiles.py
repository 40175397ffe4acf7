"""The tiles a whole-slide viewer reads: each level's tile grid, the level to read for a screen
scale, the tiles that cover a viewport, and a thread-safe cache of read tiles bounded in bytes.

Pure Python (no Qt, no torch), so the viewer's decisions are tested headless. Coordinates follow
``engine.imaging.slide``: level-0 pixels, x to the right and y down; a tile ``(level, col, row)``
covers the level's pixels ``[col * size, (col + 1) * size) x [row * size, (row + 1) * size)``,
clipped to the level's edge. The screen scale is screen pixels per level-0 pixel (1 shows the
slide at full resolution, 0.25 at a quarter).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: Side of a viewer tile in pixels of its level (the tile size of most pyramidal files).
TILE_SIZE = 256
#: A level is sharp enough when its downsample is at most this much above the wanted one (a
#: level of downsample 4.0 serves a screen scale of 0.2499...).
_SHARP_SLACK = 1.001
#: Lengths a scale bar may show, in microns (then the same times powers of ten).
_BAR_STEPS = (1.0, 2.0, 5.0)


class TileKey(NamedTuple):
    """One tile: its pyramid level and its column and row in that level's tile grid."""

    level: int
    col: int
    row: int


@dataclass(frozen=True)
class TileGrid:
    """The tile grids of a slide's levels.

    Attributes:
        dimensions: ``(width, height)`` of each level in pixels, level 0 first.
        downsamples: level-0 pixels per pixel of each level.
        tile_size: tile side in pixels of its level.
    """

    dimensions: tuple[tuple[int, int], ...]
    downsamples: tuple[float, ...]
    tile_size: int = TILE_SIZE

    def __post_init__(self) -> None:
        if not self.dimensions or len(self.dimensions) != len(self.downsamples):
            raise ValueError(f"{len(self.dimensions)} level sizes for {len(self.downsamples)} downsamples")
        if self.tile_size < 1:
            raise ValueError(f"tile size must be positive, got {self.tile_size}")

    @classmethod
    def of(cls, reader: Any, tile_size: int = TILE_SIZE) -> "TileGrid":
        """The grid of an open ``SlideReader`` (anything with ``dimensions`` and ``downsamples``)."""
        return cls(tuple(tuple(int(v) for v in d) for d in reader.dimensions),
                   tuple(float(d) for d in reader.downsamples), tile_size)

    @property
    def levels(self) -> int:
        return len(self.dimensions)

    @property
    def size0(self) -> tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self.dimensions[0]

    def shape(self, level: int) -> tuple[int, int]:
        """``(columns, rows)`` of ``level``'s tile grid."""
        width, height = self.dimensions[level]
        return math.ceil(width / self.tile_size), math.ceil(height / self.tile_size)

    def level_for_scale(self, scale: float) -> int:
        """The level to read at ``scale`` screen pixels per level-0 pixel: the most reduced level
        whose pixels are still no larger than a screen pixel (level 0 when zoomed past 1)."""
        if not scale > 0:
            raise ValueError(f"screen scale must be positive, got {scale}")
        wanted = 1.0 / scale
        sharp = [k for k, d in enumerate(self.downsamples) if d <= wanted * _SHARP_SLACK]
        return max(sharp) if sharp else 0

    def region(self, key: TileKey) -> tuple[tuple[int, int], tuple[int, int]]:
        """What ``SlideReader.read_region`` reads for a tile: ``((x, y) in level-0 pixels,
        (w, h) in level pixels)``, clipped to the level.

        Raises:
            ValueError: the tile is not on the grid.
        """
        self._check(key)
        width, height = self.dimensions[key.level]
        left, top = key.col * self.tile_size, key.row * self.tile_size
        w, h = min(self.tile_size, width - left), min(self.tile_size, height - top)
        scale = self.downsamples[key.level]
        return (int(round(left * scale)), int(round(top * scale))), (w, h)

    def rect0(self, key: TileKey) -> tuple[float, float, float, float]:
        """``(x, y, w, h)``: the part of level 0 the tile shows, in level-0 pixels."""
        (_, _), (w, h) = self.region(key)
        scale = self.downsamples[key.level]
        return key.col * self.tile_size * scale, key.row * self.tile_size * scale, w * scale, h * scale

    def tiles_in_view(self, level: int, view0: tuple[float, float, float, float]) -> list[TileKey]:
        """The tiles of ``level`` that cover a viewport, the ones nearest its centre first (they
        are read first).

        Args:
            level: pyramid level.
            view0: ``(x, y, w, h)`` of the viewport in level-0 pixels (may reach past the slide).
        """
        if not 0 <= level < self.levels:
            raise ValueError(f"level {level} outside 0..{self.levels - 1}")
        x, y, w, h = view0
        span = self.tile_size * self.downsamples[level]
        cols, rows = self.shape(level)
        col0, col1 = max(0, math.floor(x / span)), min(cols - 1, math.ceil((x + w) / span) - 1)
        row0, row1 = max(0, math.floor(y / span)), min(rows - 1, math.ceil((y + h) / span) - 1)
        if w <= 0 or h <= 0 or col1 < col0 or row1 < row0:
            return []
        centre_col, centre_row = (x + w / 2) / span - 0.5, (y + h / 2) / span - 0.5
        keys = [TileKey(level, c, r) for r in range(row0, row1 + 1) for c in range(col0, col1 + 1)]
        return sorted(keys, key=lambda k: (k.col - centre_col) ** 2 + (k.row - centre_row) ** 2)

    def _check(self, key: TileKey) -> None:
        if not 0 <= key.level < self.levels:
            raise ValueError(f"tile {key}: level outside 0..{self.levels - 1}")
        cols, rows = self.shape(key.level)
        if not (0 <= key.col < cols and 0 <= key.row < rows):
            raise ValueError(f"tile {key}: outside the {cols} x {rows} grid of level {key.level}")


class TileCache:
    """A least-recently-used cache of read tiles, bounded in bytes, safe to share between the
    threads that read tiles and the one that draws them.

    Args:
        max_bytes: the most bytes the cached tiles may take together; the least recently used
            go first. A tile larger than this is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be at least 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The cached tile (now the most recently used), or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def peek(self, key: Hashable) -> Any | None:
        """The cached tile without marking it used (for drawing fallbacks)."""
        with self._lock:
            found = self._items.get(key)
            return None if found is None else found[0]

    def put(self, key: Hashable, tile: Any, nbytes: int | None = None) -> None:
        """Keep ``tile`` (``nbytes`` defaults to its ``nbytes``), evicting the least recently used
        tiles until the cache fits its bound again."""
        size = int(tile.nbytes if nbytes is None else nbytes)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (tile, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def bytes_used(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar: a round length and how long it is drawn.

    Attributes:
        microns: the length it stands for.
        pixels: its length on screen.
        label: "50 µm", "2 mm".
    """

    microns: float
    pixels: float
    label: str


def scale_bar(mpp: float, scale: float, longest: float = 150.0) -> ScaleBar:
    """The longest round length (1, 2 or 5 times a power of ten, in µm) whose bar fits in
    ``longest`` screen pixels.

    Args:
        mpp: microns per level-0 pixel.
        scale: screen pixels per level-0 pixel.
        longest: the most screen pixels the bar may take.
    """
    if not (mpp > 0 and scale > 0 and longest > 0):
        raise ValueError(f"scale bar needs positive mpp, scale and length, got {mpp}, {scale}, {longest}")
    microns_per_screen_pixel = mpp / scale
    most = longest * microns_per_screen_pixel
    power = 10.0 ** math.floor(math.log10(most))
    microns = max(step * power for step in _BAR_STEPS if step * power <= most * (1 + 1e-9))
    label = f"{microns / 1000:g} mm" if microns >= 1000 else f"{microns:g} \u00b5m"
    return ScaleBar(microns, microns / microns_per_screen_pixel, label)


def microns_label(microns: float) -> str:
    """A length for the reader: "850 µm" below a millimetre, "1.25 mm" from one on."""
    return f"{microns / 1000:.3g} mm" if microns >= 1000 else f"{microns:.3g} \u00b5m"


@dataclass(frozen=True)
class RegionColour:
    """The mean colour of a slide region, read at a level coarse enough to be quick.

    Attributes:
        rgb: mean red, green and blue (0-255) of the pixels read.
        level: the pyramid level read.
        pixels: how many pixels of that level were averaged.
    """

    rgb: tuple[float, float, float]
    level: int
    pixels: int


def region_colour(reader: Any, rect0: tuple[float, float, float, float], max_side: int = 512) -> RegionColour:
    """Mean colour of the level-0 rectangle ``(x, y, w, h)``, read at the sharpest level on which
    its longer side spans at most ``max_side`` pixels (so a box over the whole slide reads a
    small level, a box over a few cells reads level 0).

    Args:
        reader: an open ``SlideReader`` (its ``levels``, ``downsamples`` and ``read_region``).
        rect0: the region in level-0 pixels, clipped to the slide by the caller.
        max_side: the most pixels read along either side.

    Raises:
        ValueError: the rectangle is empty.
    """
    x, y, w, h = rect0
    if not (w > 0 and h > 0):
        raise ValueError(f"region {rect0} is empty")
    wanted = max(w, h) / max_side
    coarse_enough = [i for i, d in enumerate(reader.downsamples) if d * _SHARP_SLACK >= wanted]
    level = min(coarse_enough, key=lambda i: reader.downsamples[i]) if coarse_enough else len(reader.downsamples) - 1
    step = reader.downsamples[level]
    size = (max(1, round(w / step)), max(1, round(h / step)))
    pixels = reader.read_region(level, (int(round(x)), int(round(y))), size).reshape(-1, 3)
    mean = pixels.mean(axis=0, dtype=np.float64)
    return RegionColour((float(mean[0]), float(mean[1]), float(mean[2])), level, int(pixels.shape[0]))
