"""``AnnotationModel``: the drawing tool, the label of the next mark, the unsaved marks with their
undo history, the selected mark, and the marks of a saved reading shown again.

Marks are drafts in image coordinates ``(slice, row, col)`` of the shown volume until the reading
is saved; a new volume drops them. Every change of the drafts (draw, move, relabel, delete) is one
step of the undo history. Each change fires its event once with the new value. No Qt.

The brush and the eraser paint a label map per slice (``ui.model.label_mask``): a stroke (press,
drag, release) is painted into a working copy of the slice's label map, shown while it lasts,
and becomes one undo step when it ends: each label's pixels on that slice are one ``"mask"``
mark. Each label name has one value (1, 2, ... in the order labels are first painted or shown),
which picks its colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from psygnal import Signal, SignalGroup

from engine.imaging.mask_rle import MaskRLE
from engine.imaging.volume import ImageVolume
from ui.backend import AnnotationDraft
from ui.model.display import DisplayModel
from ui.model.geometry import Point, polygon_area
from ui.model.label_mask import MAX_RADIUS, MIN_RADIUS, label_map, masks_of, stroke_footprint

Tool = Literal["navigate", "point", "box", "ellipse", "polygon", "brush", "eraser", "ruler", "roi"]
TOOLS: tuple[Tool, ...] = ("navigate", "point", "box", "ellipse", "polygon", "brush", "eraser", "ruler", "roi")
#: Tools that draw a mark saved with the reading (the others navigate or measure).
MARK_TOOLS: tuple[Tool, ...] = ("point", "box", "ellipse", "polygon", "brush", "eraser")
#: Tools that paint the label mask, stroke by stroke.
PAINT_TOOLS: tuple[Tool, ...] = ("brush", "eraser")
#: The brush radius (image pixels) before the reader changes it.
DEFAULT_RADIUS = 3
#: Undo steps kept.
HISTORY_LENGTH = 100


class AnnotationEvents(SignalGroup):
    """Signals of ``AnnotationModel``, each with the new value."""

    tool = Signal(str)
    label = Signal(str)
    drafts = Signal(tuple)  # tuple[AnnotationDraft, ...]
    selected = Signal(int)  # index of the selected draft, -1 for none
    history = Signal(bool, bool)  # can undo, can redo
    saved_marks = Signal(tuple)  # tuple[AnnotationDraft, ...] of the saved reading shown
    brush_radius = Signal(int)  # image pixels
    stroke = Signal(int)  # the slice a brush or eraser stroke is painting changed


@dataclass
class _Stroke:
    """A brush or eraser stroke under way: the slice's label map being painted and the path."""

    slice_index: int
    labels: np.ndarray
    value: int  # painted value; 0 erases
    path: list[tuple[float, float]]


class AnnotationModel:
    """What the reader draws on the shown volume.

    Args:
        display: the display model whose volume and slice marks are drawn on.
    """

    def __init__(self, display: DisplayModel) -> None:
        self.events = AnnotationEvents()
        self._display = display
        self._tool: Tool = "navigate"
        self._label = ""
        self._drafts: tuple[AnnotationDraft, ...] = ()
        self._selected = -1
        self._undo: list[tuple[AnnotationDraft, ...]] = []
        self._redo: list[tuple[AnnotationDraft, ...]] = []
        self._history_shown = (False, False)
        self._saved_marks: tuple[AnnotationDraft, ...] = ()
        self._radius = DEFAULT_RADIUS
        self._values: dict[str, int] = {}  # label name -> label value, first come first numbered
        self._stroke: _Stroke | None = None
        display.events.volume.connect(self._on_volume, priority=1)  # before widgets redraw

    @property
    def tool(self) -> Tool:
        return self._tool

    @tool.setter
    def tool(self, tool: Tool) -> None:
        if tool not in TOOLS:
            raise ValueError(f"no tool {tool!r}; tools are {TOOLS}")
        if tool != self._tool:
            self.end_stroke()
            self._tool = tool
            self.events.tool.emit(tool)

    @property
    def label(self) -> str:
        """The label given to the next mark."""
        return self._label

    @label.setter
    def label(self, label: str) -> None:
        if label != self._label:
            self._label = str(label)
            self.events.label.emit(self._label)

    @property
    def drafts(self) -> tuple[AnnotationDraft, ...]:
        """Marks drawn on this case and not yet saved."""
        return self._drafts

    # -- drawing -----------------------------------------------------------------------------
    def add_point(self, row: float, col: float) -> AnnotationDraft:
        """Drop a point at image ``(row, col)`` of the shown slice, with the current label.

        Raises:
            ValueError: no volume is shown, or the point lies outside the image.
        """
        self._display.require_inside(row, col)
        return self._append(AnnotationDraft("point", self._display.slice_index, ((row, col),), self._label))

    def add_box(self, corner_a: Point, corner_b: Point) -> AnnotationDraft:
        """Draw a box between two image ``(row, col)`` corners, stored top-left then bottom-right.

        Raises:
            ValueError: no volume is shown, or a corner lies outside the image.
        """
        return self._append(AnnotationDraft("box", self._display.slice_index, self._corners(corner_a, corner_b),
                                            self._label))

    def add_ellipse(self, corner_a: Point, corner_b: Point) -> AnnotationDraft:
        """Draw the ellipse inscribed in the box between two corners (kept as that box).

        Raises:
            ValueError: no volume is shown, or a corner lies outside the image.
        """
        return self._append(AnnotationDraft("ellipse", self._display.slice_index,
                                            self._corners(corner_a, corner_b), self._label))

    def add_polygon(self, vertices: list[Point] | tuple[Point, ...]) -> AnnotationDraft:
        """Draw a closed polygon through three or more vertices.

        Raises:
            ValueError: no volume is shown, a vertex lies outside the image, fewer than three
                vertices, or they enclose no area.
        """
        for vertex in vertices:
            self._display.require_inside(*vertex)
        if len(vertices) < 3 or polygon_area(vertices) <= 0.0:
            raise ValueError(f"a polygon needs three or more vertices enclosing an area, got {len(vertices)}")
        points = tuple((float(r), float(c)) for r, c in vertices)
        return self._append(AnnotationDraft("polygon", self._display.slice_index, points, self._label))

    def _corners(self, corner_a: Point, corner_b: Point) -> tuple[Point, Point]:
        for corner in (corner_a, corner_b):
            self._display.require_inside(*corner)
        top_left = (min(corner_a[0], corner_b[0]), min(corner_a[1], corner_b[1]))
        bottom_right = (max(corner_a[0], corner_b[0]), max(corner_a[1], corner_b[1]))
        return top_left, bottom_right

    # -- editing -----------------------------------------------------------------------------
    @property
    def selected(self) -> int:
        """Index of the selected mark (moved by dragging, deleted by Delete); -1 for none."""
        return self._selected

    def select(self, index: int) -> None:
        """Select mark ``index`` (-1: none). Raises ``IndexError`` for a mark that does not exist."""
        if index != -1 and not 0 <= index < len(self._drafts):
            raise IndexError(f"no annotation {index}; there are {len(self._drafts)}")
        if index != self._selected:
            self._selected = index
            self.events.selected.emit(index)

    def move(self, index: int, d_row: float, d_col: float) -> None:
        """Shift mark ``index`` by ``(d_row, d_col)`` pixels, clamped so it stays on the image."""
        old = self._drafts[index]
        if old.kind == "mask":
            return  # painted pixels are edited with the brush and eraser, not dragged
        _, rows, cols = self._display.volume.shape
        d_row = min(max(d_row, -0.5 - min(r for r, _ in old.points)), rows - 0.5 - max(r for r, _ in old.points))
        d_col = min(max(d_col, -0.5 - min(c for _, c in old.points)), cols - 0.5 - max(c for _, c in old.points))
        if d_row == 0 and d_col == 0:
            return
        points = tuple((r + d_row, c + d_col) for r, c in old.points)
        self._replace_at(index, AnnotationDraft(old.kind, old.slice_index, points, old.label))

    def remove(self, index: int) -> None:
        """Delete mark ``index``.

        Raises:
            IndexError: there is no such mark.
        """
        if not 0 <= index < len(self._drafts):
            raise IndexError(f"no annotation {index}; there are {len(self._drafts)}")
        self._publish(self._drafts[:index] + self._drafts[index + 1:])

    def relabel(self, index: int, label: str) -> None:
        """Give mark ``index`` another label."""
        old = self._drafts[index]
        if old.label != label and old.kind == "mask":
            self._relabel_mask(old, label)
        elif old.label != label:
            self._replace_at(index, AnnotationDraft(old.kind, old.slice_index, old.points, label))

    def clear(self) -> None:
        """Delete every mark (undoable)."""
        if self._drafts:
            self._publish(())

    def _replace_at(self, index: int, draft: AnnotationDraft) -> None:
        self._publish(self._drafts[:index] + (draft,) + self._drafts[index + 1:])

    # -- undo --------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Go back one change of the marks (a stroke under way ends first); False when there is
        nothing to undo."""
        self.end_stroke()
        if not self._undo:
            return False
        self._redo.append(self._drafts)
        self._set_drafts(self._undo.pop())
        return True

    def redo(self) -> bool:
        """Do again the change last undone; False when there is nothing to redo."""
        self.end_stroke()
        if not self._redo:
            return False
        self._undo.append(self._drafts)
        self._set_drafts(self._redo.pop())
        return True

    def reset(self) -> None:
        """Drop the marks and their history (a new case, or the marks were saved with a reading)."""
        self.cancel_stroke()
        self._undo.clear()
        self._redo.clear()
        if self._drafts:
            self._set_drafts(())
        self._announce_history()

    def _append(self, draft: AnnotationDraft) -> AnnotationDraft:
        self._publish(self._drafts + (draft,))
        return draft

    def _publish(self, drafts: tuple[AnnotationDraft, ...]) -> None:
        """One undoable change."""
        self._undo.append(self._drafts)
        del self._undo[:-HISTORY_LENGTH]
        self._redo.clear()
        self._set_drafts(drafts)

    def _set_drafts(self, drafts: tuple[AnnotationDraft, ...]) -> None:
        self._drafts = drafts
        self.events.drafts.emit(drafts)
        self._announce_history()
        if self._selected >= len(drafts):
            self.select(-1)

    def _announce_history(self) -> None:
        """Fire ``history`` when whether one can undo or redo changed."""
        now = (self.can_undo, self.can_redo)
        if now != self._history_shown:
            self._history_shown = now
            self.events.history.emit(*now)

    # -- a saved reading's marks -------------------------------------------------------------
    @property
    def saved_marks(self) -> tuple[AnnotationDraft, ...]:
        """The marks of the saved reading on show (read-only, drawn apart from the drafts)."""
        return self._saved_marks

    def show_saved(self, marks: tuple[AnnotationDraft, ...]) -> None:
        """Show a saved reading's marks (empty: show none)."""
        marks = tuple(marks)
        for mark in marks:
            if mark.kind == "mask":
                self.label_value(mark.label)
        if marks != self._saved_marks:
            self._saved_marks = marks
            self.events.saved_marks.emit(marks)

    def _on_volume(self, _volume: ImageVolume | None) -> None:
        self.cancel_stroke()
        self.select(-1)
        self.reset()
        self.show_saved(())

    # -- label masks -------------------------------------------------------------------------
    @property
    def brush_radius(self) -> int:
        """The brush and eraser radius in image pixels (not screen pixels)."""
        return self._radius

    @brush_radius.setter
    def brush_radius(self, radius: int) -> None:
        radius = min(max(int(radius), MIN_RADIUS), MAX_RADIUS)
        if radius != self._radius:
            self._radius = radius
            self.events.brush_radius.emit(radius)

    def label_value(self, label: str) -> int:
        """The value (1, 2, ...) of a label name in the label maps; a new name gets the next one."""
        return self._values.setdefault(label, len(self._values) + 1)

    @property
    def painting(self) -> bool:
        """Whether a brush or eraser stroke is under way."""
        return self._stroke is not None

    def begin_stroke(self, row: float, col: float) -> None:
        """Start a stroke of the current tool (brush: the current label; eraser: no label) at
        image ``(row, col)`` of the shown slice; it paints at once.

        Raises:
            ValueError: the tool is not the brush or the eraser, no volume is shown, or the
                point lies outside the image.
        """
        if self._tool not in PAINT_TOOLS:
            raise ValueError(f"the {self._tool} tool does not paint; pick the brush or the eraser")
        self._display.require_inside(row, col)
        self.end_stroke()
        value = self.label_value(self._label) if self._tool == "brush" else 0
        here = self._display.slice_index
        self._stroke = _Stroke(here, self.mask_layer(here).copy(), value, [])
        self.extend_stroke(row, col)

    def extend_stroke(self, row: float, col: float) -> None:
        """Paint the segment from the stroke's last position to image ``(row, col)``."""
        stroke = self._stroke
        if stroke is None:
            return
        stroke.path.append((float(row), float(col)))
        segment = stroke.path[-2:]
        stroke.labels[stroke_footprint(stroke.labels.shape, segment, self._radius)] = stroke.value
        self.events.stroke.emit(stroke.slice_index)

    def end_stroke(self) -> None:
        """Finish the stroke: the slice's masks become what was painted, as one undo step."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None:
            self._set_slice_masks(stroke.slice_index, stroke.labels)
            self.events.stroke.emit(stroke.slice_index)

    def cancel_stroke(self) -> None:
        """Drop the stroke under way, leaving the masks as they were."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None:
            self.events.stroke.emit(stroke.slice_index)

    def mask_layer(self, slice_index: int, saved: bool = False) -> np.ndarray:
        """The label map of a slice: of the drafts (with the stroke under way painted in), or
        with ``saved`` of the saved reading on show. Zeros when nothing is painted there.

        Raises:
            ValueError: no volume is shown.
        """
        if self._stroke is not None and not saved and self._stroke.slice_index == slice_index:
            return self._stroke.labels
        marks = self._saved_marks if saved else self._drafts
        return label_map(marks, slice_index, self._slice_shape(), {m.label: self.label_value(m.label) for m in marks
                                                                    if m.kind == "mask"})

    def add_mask(self, mask: MaskRLE) -> None:
        """Paint a whole mask of the shown slice's shape with the current label, as one undo step
        (a stored region answer drawn again).

        Raises:
            ValueError: no volume is shown, or the mask is not the slice's shape.
        """
        here = self._display.slice_index
        if tuple(mask.shape) != self._slice_shape():
            raise ValueError(f"a {tuple(mask.shape)} mask does not fit the {self._slice_shape()} slice")
        labels = self.mask_layer(here).copy()
        labels[mask.decode()] = self.label_value(self._label)
        self._set_slice_masks(here, labels)

    def clear_masks(self, slice_index: int | None = None) -> None:
        """Delete every painted mask of a slice (the shown one by default), as one undo step."""
        here = self._display.slice_index if slice_index is None else slice_index
        kept = tuple(m for m in self._drafts if not (m.kind == "mask" and m.slice_index == here))
        if kept != self._drafts:
            self._publish(kept)

    def _relabel_mask(self, old: AnnotationDraft, label: str) -> None:
        """Give the pixels of a mask another label (merged with that label's mask on the slice)."""
        labels = self.mask_layer(old.slice_index).copy()
        labels[old.mask.decode()] = self.label_value(label)
        self._set_slice_masks(old.slice_index, labels)

    def _set_slice_masks(self, slice_index: int, labels: np.ndarray) -> None:
        """Replace a slice's masks by those of a label map (one undo step, none if unchanged).
        A label's mask keeps its place in the list; a new label's mask comes last."""
        names = {value: name for name, value in self._values.items()}
        new = masks_of(labels, slice_index, names, [m.label for m in self._drafts if m.kind == "mask"])
        by_label = {m.label: m for m in new}
        drafts: list[AnnotationDraft] = []
        for mark in self._drafts:
            if mark.kind == "mask" and mark.slice_index == slice_index:
                if mark.label in by_label:
                    drafts.append(by_label.pop(mark.label))
            else:
                drafts.append(mark)
        drafts.extend(m for m in new if m.label in by_label)
        if tuple(drafts) != self._drafts:
            self._publish(tuple(drafts))

    def _slice_shape(self) -> tuple[int, int]:
        volume = self._display.volume
        if volume is None:
            raise ValueError("no volume is shown")
        return int(volume.shape[1]), int(volume.shape[2])
