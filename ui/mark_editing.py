"""``MarkEditing``: drawing, selecting, moving and deleting marks, and the ruler and ROI, for any
view that maps widget positions to image ``(row, col)`` (``SliceView``, ``SlideView``).

A view mixes this in and provides ``annotation`` and ``measure`` (``ui.model``), ``display``,
``widget_to_image(position)``, ``image_to_widget(row, col)`` and ``plane_grid()`` (rows, cols,
row step, column step of the image marks live on); it calls the ``_press_marks``,
``_drag_marks``, ``_release_marks`` and ``_mark_key`` steps from its own event handlers and
``_draw_marks`` and ``_draw_measures`` from its paint, and may override ``ruler_text`` and
``roi_text`` (what a slide says in micrometres and colours, a scan in millimetres and values).

Tools: Point: click drops a point. Box, Ellipse, Ruler, ROI: drag. Polygon: click each vertex,
double-click or Enter closes it, Backspace removes the last vertex. Navigate: a click on a mark
selects it, a drag moves it (one undo step). Delete removes the selected mark; Esc cancels what
is being drawn, else deselects, else returns to Navigate.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPen, QPolygonF

from ui.backend import AnnotationDraft
from ui.model.geometry import Point, distance_mm, point_in_polygon
from ui.model.measure import Segment

MARK_COLOUR = QColor(64, 224, 208)  # turquoise: visible on grey and on the inferno/jet maps
SELECTED_COLOUR = QColor(255, 255, 255)
SAVED_MARK_COLOUR = QColor(255, 209, 102)  # a saved reading's marks: amber, dashed
MEASURE_COLOUR = QColor(140, 255, 140)
HIT_PIXELS = 8.0  # how close (screen pixels) a click must come to a point mark to pick it


class MarkEditing:
    """Mark and measure tools of a view (a mixin for a ``QWidget``; see the module docstring)."""

    _shape_start: Point | None = None  # a box, ellipse, ruler or ROI being drawn
    _shape_end: Point | None = None
    _polygon: list[Point]  # vertices of the polygon being drawn
    _hover: Point | None = None
    _moving: tuple[int, Point] | None = None  # (mark, grab point) while moving
    _move_offset: Point = (0.0, 0.0)

    def _cancel_drawing(self) -> None:
        self._shape_start = self._shape_end = None
        self._polygon = []
        self._moving = None
        self._move_offset = (0.0, 0.0)

    def _inside(self, row: float, col: float) -> bool:
        rows, cols, _, _ = self.plane_grid()
        return -0.5 <= row <= rows - 0.5 and -0.5 <= col <= cols - 0.5

    def _clamp_inside(self, row: float, col: float) -> Point:
        rows, cols, _, _ = self.plane_grid()
        return min(max(row, -0.5), rows - 0.5), min(max(col, -0.5), cols - 0.5)

    # -- drawing -----------------------------------------------------------------------------
    def _draw_marks(self, painter: QPainter) -> None:
        painter.setFont(QFont(self.font().family(), 9))
        here = self.display.slice_index
        for mark in self.annotation.saved_marks:
            if mark.slice_index == here and mark.kind != "mask":  # masks: ui.mask_painter
                self._draw_mark(painter, mark, mark.label, QPen(SAVED_MARK_COLOUR, 2.0, Qt.PenStyle.DashLine))
        for number, mark in enumerate(self.annotation.drafts, start=1):
            if mark.slice_index == here and mark.kind != "mask":
                selected = number - 1 == self.annotation.selected
                pen = QPen(SELECTED_COLOUR if selected else MARK_COLOUR, 3.0 if selected else 2.0)
                offset = self._move_offset if self._moving is not None and self._moving[0] == number - 1 else (0, 0)
                self._draw_mark(painter, mark, f"{number} {mark.label}".strip(), pen, offset)
        painter.setPen(QPen(MARK_COLOUR, 1.5, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self._shape_start is not None and self._shape_end is not None and self.annotation.tool in ("box", "ellipse"):
            rect = QRectF(self.image_to_widget(*self._shape_start), self.image_to_widget(*self._shape_end)).normalized()
            painter.drawEllipse(rect) if self.annotation.tool == "ellipse" else painter.drawRect(rect)
        if self._polygon:
            points = [self.image_to_widget(*vertex) for vertex in self._polygon]
            if self._hover is not None:
                points.append(self.image_to_widget(*self._hover))
            painter.drawPolyline(QPolygonF(points))
            for point in points[: len(self._polygon)]:
                painter.drawEllipse(point, 3.0, 3.0)

    def _draw_mark(self, painter: QPainter, mark: AnnotationDraft, caption: str, pen: QPen,
                   offset: Point = (0.0, 0.0)) -> None:
        points = [self.image_to_widget(r + offset[0], c + offset[1]) for r, c in mark.points]
        draw_mark(painter, mark.kind, points, caption, pen)

    def mark_at(self, position: QPointF) -> int:
        """Index of the topmost draft mark on the shown slice under a widget position, else -1."""
        row, col = self.widget_to_image(position)
        for index in range(len(self.annotation.drafts) - 1, -1, -1):
            mark = self.annotation.drafts[index]
            if mark.slice_index != self.display.slice_index or mark.kind == "mask":
                continue
            if mark.kind == "point":
                if _distance(self.image_to_widget(*mark.points[0]), position) <= HIT_PIXELS:
                    return index
            elif mark.kind == "box":
                (top, left), (bottom, right) = mark.points
                if top <= row <= bottom and left <= col <= right:
                    return index
            elif mark.kind == "ellipse":
                (top, left), (bottom, right) = mark.points
                centre_r, centre_c = (top + bottom) / 2, (left + right) / 2
                half_r, half_c = max((bottom - top) / 2, 1e-6), max((right - left) / 2, 1e-6)
                if ((row - centre_r) / half_r) ** 2 + ((col - centre_c) / half_c) ** 2 <= 1.0:
                    return index
            elif point_in_polygon((row, col), mark.points):
                return index
        return -1

    # -- measures ----------------------------------------------------------------------------
    def _draw_measures(self, painter: QPainter) -> None:
        painter.setFont(QFont(self.font().family(), 10, QFont.Weight.Bold))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        here = self.display.slice_index
        ruler = self.measure.ruler
        drawing = self._shape_start is not None and self._shape_end is not None
        if drawing and self.annotation.tool == "ruler":
            self._draw_ruler(painter, self._shape_start, self._shape_end, dashed=True)
        elif ruler is not None and ruler.slice_index == here:
            self._draw_ruler(painter, ruler.start, ruler.end)
        roi = self.measure.roi
        if drawing and self.annotation.tool == "roi":
            painter.setPen(QPen(MEASURE_COLOUR, 1.5, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(self.image_to_widget(*self._shape_start),
                                    self.image_to_widget(*self._shape_end)).normalized())
        elif roi is not None and roi.slice_index == here:
            box = QRectF(self.image_to_widget(*roi.start), self.image_to_widget(*roi.end)).normalized()
            painter.setPen(QPen(MEASURE_COLOUR, 2.0))
            painter.drawRect(box)
            text = self.roi_text(roi)
            if text:
                painter.drawText(QRectF(box.left(), box.bottom() + 2, 300, 40),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, text)

    def _draw_ruler(self, painter: QPainter, start: Point, end: Point, dashed: bool = False) -> None:
        a, b = self.image_to_widget(*start), self.image_to_widget(*end)
        painter.setPen(QPen(MEASURE_COLOUR, 2.0, Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine))
        painter.drawLine(a, b)
        for point in (a, b):
            painter.drawEllipse(point, 3.0, 3.0)
        painter.drawText(b + QPointF(8, -6), self.ruler_text(start, end))

    def ruler_text(self, start: Point, end: Point) -> str:
        """The length printed beside a ruler from ``start`` to ``end`` (image points)."""
        _, _, dy, dx = self.plane_grid()
        return f"{distance_mm(start, end, (dy, dx)):.1f} mm"

    def roi_text(self, _roi: Segment) -> str:
        """What is printed under the ROI box: the shown channel's statistics and the area."""
        stats = self.measure.roi_stats()
        if stats is None:
            return ""
        return f"mean {stats.mean:.4g}  SD {stats.sd:.3g}\n{stats.area_mm2:.4g} mm\u00b2 ({stats.pixels} px)"

    # -- input steps the view calls ----------------------------------------------------------
    def _press_marks(self, button: Qt.MouseButton, position: QPointF) -> bool:
        """A left press with a mark or measure tool starts it; with Navigate it selects the mark
        under the cursor (and starts moving it). True when the press is taken (no pan)."""
        if button != Qt.MouseButton.LeftButton:
            return False
        tool = self.annotation.tool
        row, col = self.widget_to_image(position)
        if tool != "navigate":
            if not self._inside(row, col):
                return True
            if tool == "point":
                self.annotation.add_point(row, col)
            elif tool == "polygon":
                self._polygon.append((row, col))
                self.update()
            else:
                self._shape_start = self._shape_end = (row, col)
            return True
        index = self.mark_at(position)
        self.annotation.select(index)
        if index < 0:
            return False
        self._moving = (index, (row, col))
        self._move_offset = (0.0, 0.0)
        return True

    def _drag_marks(self, row: float, col: float) -> bool:
        """The cursor moved to image ``(row, col)``: follow it with what is being drawn or moved.
        True when a shape or a mark follows (no pan)."""
        if self._polygon:
            self._hover = self._clamp_inside(row, col)
            self.update()
        if self._shape_start is not None:
            self._shape_end = self._clamp_inside(row, col)
            self.update()
            return True
        if self._moving is not None:
            grab = self._moving[1]
            self._move_offset = (row - grab[0], col - grab[1])
            self.update()
            return True
        return False

    def _release_marks(self, event: QMouseEvent) -> bool:
        """A left release ends a shape being drawn or a mark being moved. True when it did."""
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        if self._shape_start is not None:
            start = self._shape_start
            end = self._clamp_inside(*self.widget_to_image(event.position()))
            self._shape_start = self._shape_end = None
            self._finish_shape(start, end)
            self.update()
            return True
        if self._moving is not None:
            index, _ = self._moving
            d_row, d_col = self._move_offset
            self._moving, self._move_offset = None, (0.0, 0.0)
            if abs(d_row) > 0.05 or abs(d_col) > 0.05:
                self.annotation.move(index, d_row, d_col)  # one undo step for the whole drag
            self.update()
            return True
        return False

    def _finish_shape(self, start: Point, end: Point) -> None:
        tool = self.annotation.tool
        if tool == "ruler":
            if start != end:
                self.measure.set_ruler(start, end)
            return
        if abs(end[0] - start[0]) < 0.5 or abs(end[1] - start[1]) < 0.5:
            return  # a click, not a drag: nothing drawn
        if tool == "roi":
            self.measure.set_roi(start, end)
        elif tool == "ellipse":
            self.annotation.add_ellipse(start, end)
        else:
            self.annotation.add_box(start, end)

    def _close_polygon(self) -> None:
        vertices, self._polygon, self._hover = self._polygon, [], None
        try:
            self.annotation.add_polygon(_without_repeats(vertices))
        except ValueError:
            pass  # fewer than three distinct vertices: nothing drawn
        self.update()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.annotation.tool == "polygon" and self._polygon:
            self._close_polygon()
        else:
            super().mouseDoubleClickEvent(event)

    def _mark_key(self, key: Qt.Key) -> bool:
        """Enter, Backspace, Delete and Esc on marks (see the module docstring). True when taken."""
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._polygon:
            self._close_polygon()
        elif key == Qt.Key.Key_Backspace and self._polygon:
            self._polygon.pop()
            self.update()
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.annotation.selected >= 0:
            self.annotation.remove(self.annotation.selected)
        elif key == Qt.Key.Key_Escape:
            if self._shape_start is not None or self._polygon or self._moving is not None or self.annotation.painting:
                self.annotation.cancel_stroke()
                self._cancel_drawing()
                self.update()
            elif self.annotation.selected >= 0:
                self.annotation.select(-1)
            else:
                self.annotation.tool = "navigate"
        else:
            return False
        return True


def draw_mark(painter: QPainter, kind: str, points: list[QPointF], caption: str, pen: QPen) -> None:
    """Draw one mark (``AnnotationDraft.kind``) at widget ``points`` with its caption beside it:
    a point as a ring with a cross, a box or an ellipse from two corners, else a polygon."""
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    first = points[0]
    if kind == "point":
        painter.drawEllipse(first, 6.0, 6.0)
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            painter.drawLine(first + QPointF(4 * dx, 4 * dy), first + QPointF(10 * dx, 10 * dy))
        anchor = first + QPointF(10, -8)
    elif kind in ("box", "ellipse"):
        box = QRectF(first, points[1]).normalized()
        painter.drawEllipse(box) if kind == "ellipse" else painter.drawRect(box)
        anchor = box.topLeft() + QPointF(0, -4)
    else:
        painter.drawPolygon(QPolygonF(points))
        anchor = min(points, key=lambda p: p.y()) + QPointF(0, -4)
    painter.drawText(anchor, caption)


def _distance(a: QPointF, b: QPointF) -> float:
    return float(np.hypot(a.x() - b.x(), a.y() - b.y()))


def _without_repeats(vertices: list[Point]) -> list[Point]:
    """Drop a vertex equal to the one before it (a double-click adds its point twice)."""
    kept: list[Point] = []
    for vertex in vertices:
        if not kept or np.hypot(vertex[0] - kept[-1][0], vertex[1] - kept[-1][1]) > 0.25:
            kept.append(vertex)
    return kept
