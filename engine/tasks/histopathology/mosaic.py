"""Whole slides of known layout, made of held-back patches, to check the slide heatmap against.

A mosaic is a grid of tissue cells, one patch per cell, on a margin of glass, written as a real
tiled pyramidal TIFF (``engine.imaging.pyramid``) at the pixel size the bundle reads tiles at, so
every cell is exactly one tile of the slide analysis. ``tumour_layout`` puts one rectangle of
tumour cells (one tumour class) somewhere inside benign cells; the layout says which cell is
tumour, so the hot tiles of the slide heatmap can be scored against it (``tile_counts``, Dice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import SalienceError
from engine.imaging.pyramid import write_pyramid
from engine.tasks.histopathology.data import CLASS_FOLDERS, read_rgb

#: Classes that count as tumour (adenocarcinoma, squamous cell carcinoma) and the benign class,
#: as indices into ``CLASS_NAMES``.
TUMOUR_CLASSES = (0, 1)
BENIGN_CLASS = 2
#: Glass (near-white, a little noise) around and between nothing: the tissue detector needs glass.
GLASS_LEVEL, GLASS_NOISE = 243, 3.0


@dataclass(frozen=True)
class Mosaic:
    """A written mosaic slide and what lies in it.

    Attributes:
        path: the pyramidal TIFF.
        classes: ``(rows, cols)`` class index of each tissue cell.
        sources: ``(rows, cols)`` file name of the patch in each cell.
        cell: cell side in level-0 pixels (the patch size).
        margin: cells of glass around the tissue on every side.
        mpp: microns per level-0 pixel.
    """

    path: Path
    classes: np.ndarray
    sources: np.ndarray
    cell: int
    margin: int
    mpp: float

    @property
    def tumour(self) -> np.ndarray:
        """``(rows, cols)`` bool, True where the cell is tumour."""
        return np.isin(self.classes, TUMOUR_CLASSES)

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of a tissue cell in level-0 pixels."""
        return ((col + self.margin) * self.cell, (row + self.margin) * self.cell, self.cell, self.cell)


def class_of_name(name: str) -> int:
    """Class index of an LC25000 file name (``lungaca12.jpeg`` -> 0).

    Raises:
        SalienceError: the name does not start with a lung class prefix.
    """
    prefixes = {folder.replace("_", ""): k for k, folder in enumerate(CLASS_FOLDERS)}
    found = re.match(r"[a-z]+", name)
    if found is None or found.group() not in prefixes:
        raise SalienceError(f"{name}: not an LC25000 lung patch name (lungaca..., lungscc..., lungn...)")
    return prefixes[found.group()]


def patch_pool(data_dir: Path, names: list[str]) -> dict[int, list[Path]]:
    """The patch files of ``names`` (e.g. a bundle's held-back part) by class, in the order given.

    Raises:
        SalienceError: a name is not an LC25000 lung patch or its file is missing.
    """
    pool: dict[int, list[Path]] = {k: [] for k in range(len(CLASS_FOLDERS))}
    for name in names:
        k = class_of_name(name)
        path = Path(data_dir) / list(CLASS_FOLDERS)[k] / name
        if not path.is_file():
            raise SalienceError(f"{path}: held-back patch not found")
        pool[k].append(path)
    return pool


def tumour_layout(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A grid of benign cells with one rectangle of tumour cells of one tumour class.

    The rectangle's sides are drawn between 2 cells and all but one of the grid's side, its place
    uniformly among those that fit, its class among ``TUMOUR_CLASSES``.

    Returns:
        ``(rows, cols)`` int64 class indices.

    Raises:
        SalienceError: a grid under 3 x 3 cells (no room for tumour inside benign tissue).
    """
    if rows < 3 or cols < 3:
        raise SalienceError(f"a mosaic of {rows} x {cols} cells is too small: at least 3 x 3")
    height, width = int(rng.integers(2, rows)), int(rng.integers(2, cols))
    top, left = int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1))
    layout = np.full((rows, cols), BENIGN_CLASS, dtype=np.int64)
    layout[top : top + height, left : left + width] = TUMOUR_CLASSES[int(rng.integers(0, len(TUMOUR_CLASSES)))]
    return layout


def build_mosaic(
    path: str | Path,
    layout: np.ndarray,
    pool: dict[int, list[Path]],
    rng: np.random.Generator,
    *,
    mpp: float = 0.5,
    margin: int = 1,
    levels: int = 3,
) -> Mosaic:
    """Write a pyramid whose tissue cells hold patches of the classes ``layout`` names.

    Each cell gets a different patch of its class, drawn from ``pool`` without replacement.

    Args:
        path: the TIFF to write (never inside a data folder: a temporary folder).
        layout: ``(rows, cols)`` class index per cell (``tumour_layout``).
        pool: patch files by class (``patch_pool``); all patches must share one square size.
        rng: draws the patches.
        mpp: microns per level-0 pixel written into the file.
        margin: cells of glass around the tissue.
        levels: pyramid levels (``write_pyramid``).

    Raises:
        SalienceError: a class has fewer patches than cells, a patch is unreadable or of another
            size than the first.
    """
    layout = np.asarray(layout, dtype=np.int64)
    drawn: dict[int, list[Path]] = {}
    for k in np.unique(layout):
        need, have = int((layout == k).sum()), len(pool.get(int(k), []))
        if need > have:
            raise SalienceError(f"mosaic needs {need} patches of class {int(k)}, the pool has {have}")
        drawn[int(k)] = [pool[int(k)][i] for i in rng.permutation(have)[:need]]
    first = read_rgb(next(iter(drawn.values()))[0])
    cell = first.shape[0]
    rows, cols = layout.shape
    shape = ((rows + 2 * margin) * cell, (cols + 2 * margin) * cell, 3)
    level0 = np.clip(rng.normal(GLASS_LEVEL, GLASS_NOISE, shape), 0, 255).astype(np.uint8)
    sources = np.empty(layout.shape, dtype=object)
    for (r, c), k in np.ndenumerate(layout):
        source = drawn[int(k)].pop()
        rgb = read_rgb(source)
        if rgb.shape != (cell, cell, 3):
            raise SalienceError(f"{source}: patch is {rgb.shape[1]} x {rgb.shape[0]}, the mosaic's cells are {cell} x {cell}")
        y, x = (r + margin) * cell, (c + margin) * cell
        level0[y : y + cell, x : x + cell] = rgb
        sources[r, c] = source.name
    write_pyramid(path, level0, mpp, levels)
    return Mosaic(Path(path), layout, sources.astype(str), cell, margin, mpp)


def tile_counts(hot: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """True/false positive/negative tiles of a hot-tile mask against the known tumour tiles."""
    hot, truth = np.asarray(hot, dtype=bool), np.asarray(truth, dtype=bool)
    return {"tp": int((hot & truth).sum()), "fp": int((hot & ~truth).sum()),
            "fn": int((~hot & truth).sum()), "tn": int((~hot & ~truth).sum())}


def dice(counts: dict[str, int]) -> float:
    """Dice coefficient 2|A and B| / (|A| + |B|) of ``tile_counts`` (Dice, Ecology 1945);
    1.0 when neither mask has a tile."""
    denominator = 2 * counts["tp"] + counts["fp"] + counts["fn"]
    return 2 * counts["tp"] / denominator if denominator else 1.0
