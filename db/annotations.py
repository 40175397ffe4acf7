"""Validation of reader annotations: points, boxes, polygons and painted masks in image coordinates.

In the index space ``"index:slice,row,col"`` a point ``(row, col)`` names a position on the
volume's grid with pixel ``i`` covering ``[i - 0.5, i + 0.5]``; a point must lie on the image,
i.e. ``-0.5 <= row <= H - 0.5`` and likewise for ``col``, and the slice must exist. A mask is
one label's pixels on one slice, run-length encoded on the whole ``H x W`` slice (the geometry
of ``db.models.Annotation``); its shape must be the case's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from db._checks import require_finite, require_text
from db.errors import InvalidInput
from db.models import ANNOTATION_KINDS, INDEX_SPACE, Annotation

POINT_COUNTS = {"point": (1, 1), "box": (2, 2), "polygon": (3, None), "mask": (0, 0)}
MASK_ENCODING = "rle-rows"


class AnnotationLike(Protocol):
    """What ``save_reading`` accepts: ``NewAnnotation``, or e.g. the interface's own draft."""

    kind: str
    slice_index: int
    points: Sequence[Sequence[float]]
    label: str


@dataclass(frozen=True)
class NewAnnotation:
    """An annotation to store with a reading.

    Attributes:
        kind: "point" (one point), "box" (two opposite corners) or "polygon" (three or more
            vertices).
        slice_index: the slice or frame it was drawn on.
        points: ``(row, col)`` pairs in ``coordinate_space``.
        label: what is there.
        coordinate_space: the coordinates' meaning; ``INDEX_SPACE`` by default.
        mask: for a "mask", its run-length encoding: ``{"shape": [rows, cols], "counts": [...]}``
            or an object with ``shape`` and ``counts`` (``engine.imaging.mask_rle.MaskRLE``).
    """

    kind: str
    slice_index: int
    points: tuple[tuple[float, float], ...]
    label: str
    coordinate_space: str = INDEX_SPACE
    mask: object = None


def _mask_geometry(where: str, mask: object, case_shape: Sequence[int]) -> dict:
    """A mask's geometry as stored, after checking its runs cover exactly the case's slice."""
    if mask is None:
        raise InvalidInput(f"{where}: a mask needs its run-length encoding (shape and counts)")
    fields = mask if isinstance(mask, Mapping) else {"shape": getattr(mask, "shape", None),
                                                     "counts": getattr(mask, "counts", None)}
    if fields.get("encoding", MASK_ENCODING) != MASK_ENCODING:
        raise InvalidInput(f"{where}: encoding {fields.get('encoding')!r} is not {MASK_ENCODING!r}")
    shape, counts = fields.get("shape"), fields.get("counts")
    whole = (lambda n: isinstance(n, int) and not isinstance(n, bool))
    if not isinstance(shape, Sequence) or len(shape) != 2 or not all(whole(n) and n > 0 for n in shape):
        raise InvalidInput(f"{where}: mask shape {shape!r} is not (rows, cols)")
    if len(case_shape) == 4 and tuple(shape) != tuple(case_shape[2:]):
        raise InvalidInput(f"{where}: mask shape {tuple(shape)} is not the case's {tuple(case_shape[2:])} slice")
    if not isinstance(counts, Sequence) or not all(whole(n) and n >= 0 for n in counts):
        raise InvalidInput(f"{where}: mask run lengths must be a list of whole numbers >= 0")
    if sum(counts) != shape[0] * shape[1]:
        raise InvalidInput(f"{where}: mask run lengths cover {sum(counts)} pixels, not {shape[0] * shape[1]}")
    if sum(counts[1::2]) == 0:
        raise InvalidInput(f"{where}: the mask paints no pixel")
    return {"encoding": MASK_ENCODING, "shape": list(shape), "counts": list(counts)}


def _polygon_area(points: list[list[float]]) -> float:
    """Shoelace formula."""
    twice = sum(
        points[i][0] * points[(i + 1) % len(points)][1] - points[(i + 1) % len(points)][0] * points[i][1]
        for i in range(len(points))
    )
    return abs(twice) / 2


def _check_extent(where: str, points: list[list[float]], slice_index: int, shape: Sequence[int]) -> None:
    _channels, slices, height, width = shape
    if slice_index >= slices:
        raise InvalidInput(f"{where}: slice {slice_index} outside the case's {slices} slices")
    for row, col in points:
        if not (-0.5 <= row <= height - 0.5 and -0.5 <= col <= width - 0.5):
            raise InvalidInput(f"{where}: point ({row}, {col}) lies off the {height}x{width} image")


def build_annotation(draft: AnnotationLike, case_shape: Sequence[int], position: int) -> Annotation:
    """Check one drawn annotation and turn it into a row.

    Args:
        draft: the annotation as drawn.
        case_shape: the case's array shape ``(C, N, H, W)``; index-space points must fall on it.
        position: the annotation's place in the reading, for error messages.

    Returns:
        An unsaved ``Annotation``.

    Raises:
        InvalidInput: unknown kind, wrong number of points, non-finite or off-image points,
            a box or polygon with no area, a mask that paints nothing or whose runs do not
            cover the case's slice, an empty label.
    """
    missing = [name for name in ("kind", "slice_index", "points", "label") if not hasattr(draft, name)]
    if missing:
        raise InvalidInput(
            f"annotation {position}: a {type(draft).__name__} has no {', '.join(missing)}; "
            "pass NewAnnotation or an object with kind, slice_index, points, label"
        )
    where = f"annotation {position} ({draft.kind})"
    kind = draft.kind
    if kind not in ANNOTATION_KINDS:
        raise InvalidInput(f"{where}: kind must be one of {ANNOTATION_KINDS}")
    slice_index = draft.slice_index
    if isinstance(slice_index, bool) or not isinstance(slice_index, int) or slice_index < 0:
        raise InvalidInput(f"{where}: slice_index {slice_index!r} must be a non-negative integer")
    points = []
    for point in draft.points:
        if len(point) != 2:
            raise InvalidInput(f"{where}: point {tuple(point)} is not a (row, col) pair")
        points.append([require_finite(value, f"{where} coordinate") for value in point])
    fewest, most = POINT_COUNTS[kind]
    if not fewest <= len(points) <= (most or len(points)):
        wanted = f"{fewest}" if fewest == most else f"at least {fewest}"
        raise InvalidInput(f"{where}: needs {wanted} points, got {len(points)}")
    if kind == "box" and (points[0][0] == points[1][0] or points[0][1] == points[1][1]):
        raise InvalidInput(f"{where}: corners {points} enclose no area")
    if kind == "polygon" and _polygon_area(points) == 0:
        raise InvalidInput(f"{where}: vertices {points} enclose no area")
    space = require_text(getattr(draft, "coordinate_space", INDEX_SPACE), f"{where} coordinate_space", 64)
    if space == INDEX_SPACE and len(case_shape) == 4:
        _check_extent(where, points, slice_index, case_shape)
    if kind == "mask":
        if space != INDEX_SPACE:
            raise InvalidInput(f"{where}: a mask is kept on the image grid, {INDEX_SPACE!r}, not {space!r}")
        geometry = _mask_geometry(where, getattr(draft, "mask", None), case_shape)
    else:
        geometry = {"points": points}
    return Annotation(
        kind=kind,
        slice_index=slice_index,
        geometry=geometry,
        coordinate_space=space,
        label=require_text(draft.label, f"{where} label", 128),
    )
