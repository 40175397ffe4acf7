"""Region answers (points, boxes, polygons drawn on slices) as boolean masks on the image grid.

A region answer of a reader study is a list of ``{"kind", "slice_index", "points", ...}`` with
``(row, col)`` points in the index space ``"index:slice,row,col"``, where pixel ``i`` covers
``[i - 0.5, i + 0.5]`` (``db.annotations``). A pixel belongs to a region when its centre does:

* ``point``: the one pixel that contains it;
* ``box``: every pixel whose centre lies between the two corners (edges included);
* ``polygon``: every pixel whose centre lies inside by the even-odd (crossing number) rule,
  the rule of the PNPOLY test (W. R. Franklin) and of SVG's ``fill-rule="evenodd"``;
* ``mask``: the pixels painted with the brush, run-length encoded on the whole slice in
  ``"mask"`` (``engine.imaging.mask_rle``; no points).

The spatial agreement statistics (``engine.stats.spatial``) and the label-map exports take these
masks, so readers' regions, the map and the exported files all agree on what was drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from engine.imaging.mask_rle import MaskRLE
from engine.stats.results import StatsInputError

INDEX_SPACE = "index:slice,row,col"


def _inside_polygon(rows: np.ndarray, cols: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to the right crosses the outline an odd number of times."""
    inside = np.zeros(rows.shape, dtype=bool)
    previous = vertices[-1]
    for current in vertices:
        (r1, c1), (r2, c2) = previous, current
        straddles = (r1 > rows) != (r2 > rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = c1 + (rows - r1) * (c2 - c1) / (r2 - r1)
        inside ^= straddles & (cols < crossing)
        previous = current
    return inside


def _one_region(region: Mapping, grid: tuple[int, int, int], where: str) -> tuple[int, np.ndarray]:
    slices, height, width = grid
    kind = region.get("kind")
    space = region.get("coordinate_space", INDEX_SPACE)
    if space != INDEX_SPACE:
        raise StatsInputError(f"{where}: coordinates in {space!r}, only {INDEX_SPACE!r} can be drawn on the grid")
    slice_index = int(region.get("slice_index", -1))
    if not 0 <= slice_index < slices:
        raise StatsInputError(f"{where}: slice {slice_index} is outside the {slices} slices of the grid")
    if kind == "mask":
        try:
            plane = MaskRLE.from_json(region.get("mask"), f"{where}: mask").decode()
        except ValueError as error:
            raise StatsInputError(str(error)) from None
        if plane.shape != (height, width):
            raise StatsInputError(f"{where}: a {plane.shape} mask does not fit the {height} x {width} slices")
        return slice_index, plane
    points = np.asarray(region.get("points", ()), dtype=np.float64).reshape(-1, 2)
    plane = np.zeros((height, width), dtype=bool)
    if kind == "point":
        row, col = np.clip(np.floor(points[0] + 0.5).astype(int), 0, (height - 1, width - 1))
        plane[row, col] = True
        return slice_index, plane
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    if kind == "box":
        (r1, c1), (r2, c2) = points[:2]
        plane = (rows >= min(r1, r2)) & (rows <= max(r1, r2)) & (cols >= min(c1, c2)) & (cols <= max(c1, c2))
    elif kind == "polygon":
        plane = _inside_polygon(rows, cols, points)
    else:
        raise StatsInputError(f"{where}: region kind {kind!r} is not point, box, polygon or mask")
    return slice_index, plane


def region_labels(regions: Sequence[Mapping], grid: Sequence[int], what: str = "region answer") -> dict[str, np.ndarray]:
    """One boolean ``(N, H, W)`` mask per region label, from a region answer.

    Args:
        regions: the answer: a list of ``{"kind", "slice_index", "points", "label"?, "coordinate_space"?}``.
        grid: ``(N, H, W)`` of the case.
        what: how errors name the answer.

    Raises:
        StatsInputError: an unknown kind, a slice off the grid, or coordinates not in index space.
    """
    shape = tuple(int(n) for n in grid)
    if len(shape) != 3:
        raise StatsInputError(f"{what}: the grid must be (slices, rows, cols), not {shape}")
    if regions is None or isinstance(regions, (str, Mapping)):
        raise StatsInputError(f"{what}: a region answer is a list of points, boxes or polygons")
    masks: dict[str, np.ndarray] = {}
    for position, region in enumerate(regions):
        if not isinstance(region, Mapping):
            raise StatsInputError(f"{what}: region {position} is not a mapping")
        slice_index, plane = _one_region(region, shape, f"{what}, region {position}")
        mask = masks.setdefault(str(region.get("label", "region")), np.zeros(shape, dtype=bool))
        mask[slice_index] |= plane
    return masks


def region_mask(regions: Sequence[Mapping], grid: Sequence[int], what: str = "region answer") -> np.ndarray:
    """The union of every region of an answer as one boolean ``(N, H, W)`` mask (empty for ``[]``)."""
    union = np.zeros(tuple(int(n) for n in grid), dtype=bool)
    for mask in region_labels(regions, grid, what).values():
        union |= mask
    return union
