"""Label masks painted with the brush: pure numpy, no Qt.

A slice's label map is a ``uint16 (rows, cols)`` array, 0 for no label and ``v`` for the label
whose value is ``v``; each label's pixels on a slice are kept as one ``"mask"`` mark
(``AnnotationDraft`` with a ``MaskRLE``). A pixel has at most one label: painting one label over
another replaces it, the eraser sets 0.

The brush covers every pixel whose centre lies within ``radius`` image pixels of the mouse's
path (pixel ``(r, c)`` has its centre at ``(r, c)``), so a stroke's footprint is the union of
discs along each segment of the path (a capsule per segment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engine.imaging.mask_rle import encode_mask
from ui.backend import AnnotationDraft

#: Label colours (RGB), one per label value in turn: distinct on grey and on the CAM maps.
LABEL_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64), (64, 160, 255), (80, 220, 80), (255, 200, 0),
    (220, 80, 255), (0, 230, 220), (255, 128, 0), (255, 105, 180),
)
#: Opacity of a painted mask over the image (0-255).
MASK_ALPHA = 110
#: Brush radius limits, in image pixels.
MIN_RADIUS, MAX_RADIUS = 1, 64


def label_colour(value: int) -> tuple[int, int, int]:
    """The colour of label value ``value`` (1, 2, ...)."""
    return LABEL_PALETTE[(value - 1) % len(LABEL_PALETTE)]


def stroke_footprint(shape: tuple[int, int], path: Sequence[tuple[float, float]], radius: float) -> np.ndarray:
    """The pixels a brush of ``radius`` covers along ``path``.

    Args:
        shape: ``(rows, cols)`` of the slice.
        path: the mouse's ``(row, col)`` positions in image coordinates, one or more.
        radius: the brush radius in image pixels.

    Returns:
        A boolean ``(rows, cols)`` array: True where the pixel centre lies within ``radius`` of
        a segment of the path (of the point, for a one-point path).
    """
    rows, cols = shape
    covered = np.zeros(shape, dtype=bool)
    points = [tuple(map(float, p)) for p in path]
    if not points:
        return covered
    segments = list(zip(points, points[1:])) or [(points[0], points[0])]
    for (r0, c0), (r1, c1) in segments:
        top = max(int(np.floor(min(r0, r1) - radius)), 0)
        bottom = min(int(np.ceil(max(r0, r1) + radius)), rows - 1)
        left = max(int(np.floor(min(c0, c1) - radius)), 0)
        right = min(int(np.ceil(max(c0, c1) + radius)), cols - 1)
        if top > bottom or left > right:
            continue
        rr, cc = np.mgrid[top:bottom + 1, left:right + 1].astype(np.float64)
        covered[top:bottom + 1, left:right + 1] |= _distance_to_segment(rr, cc, (r0, c0), (r1, c1)) <= radius
    return covered


def _distance_to_segment(rr: np.ndarray, cc: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance from each ``(rr, cc)`` to the segment ``a``-``b`` (a point when they coincide)."""
    d_r, d_c = b[0] - a[0], b[1] - a[1]
    length2 = d_r * d_r + d_c * d_c
    t = np.zeros_like(rr) if length2 == 0 else np.clip(((rr - a[0]) * d_r + (cc - a[1]) * d_c) / length2, 0.0, 1.0)
    return np.hypot(rr - (a[0] + t * d_r), cc - (a[1] + t * d_c))


def label_map(marks: Iterable[AnnotationDraft], slice_index: int, shape: tuple[int, int],
              values: Mapping[str, int]) -> np.ndarray:
    """The ``uint16`` label map of the ``"mask"`` marks on one slice (later marks win overlaps).

    Args:
        marks: marks of any kind; only masks on ``slice_index`` count.
        slice_index: the slice.
        shape: ``(rows, cols)`` of the slice.
        values: the value of each label name.
    """
    labels = np.zeros(shape, dtype=np.uint16)
    for mark in marks:
        if mark.kind == "mask" and mark.slice_index == slice_index and mark.mask is not None:
            labels[mark.mask.decode()] = values[mark.label]
    return labels


def masks_of(labels: np.ndarray, slice_index: int, names: Mapping[int, str],
             order: Sequence[str] = ()) -> list[AnnotationDraft]:
    """One ``"mask"`` mark per label present in a slice's label map.

    Args:
        labels: the slice's label map.
        slice_index: the slice it belongs to.
        names: the label name of each value.
        order: label names in the order their marks should come (the rest follow by value).
    """
    present = [int(v) for v in np.unique(labels) if v]
    rank = {name: k for k, name in enumerate(order)}
    present.sort(key=lambda v: (rank.get(names[v], len(rank)), v))
    return [AnnotationDraft("mask", slice_index, (), names[v], encode_mask(labels == v)) for v in present]


def mask_rgba(labels: np.ndarray, alpha: int = MASK_ALPHA) -> np.ndarray:
    """A label map as ``(rows, cols, 4)`` RGBA bytes: each label in its colour at ``alpha``,
    unlabelled pixels fully transparent (premultiplied alpha, as Qt draws fastest)."""
    rgba = np.zeros((*labels.shape, 4), dtype=np.uint8)
    for value in np.unique(labels):
        if value:
            where = labels == value
            rgba[where, :3] = np.round(np.asarray(label_colour(int(value))) * alpha / 255.0).astype(np.uint8)
            rgba[where, 3] = alpha
    return rgba
