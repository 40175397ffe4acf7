"""``SliceView``: one slice of the volume, the CAM blended on top, and the reader's marks.

The view keeps the physical aspect ratio from the spacing ``(dy, dx)``, maps widget positions to
image ``(row, col)`` and back (pixel centres sit at whole indices, pixel ``(r, c)`` covers
``[r - 0.5, r + 0.5] x [c - 0.5, c + 0.5]``), and draws marks in image coordinates so they stay
on the anatomy when the window is resized or the image zoomed and panned.

Mouse: wheel steps slices, Ctrl+wheel zooms about the cursor, right-drag sets window/level,
middle-drag (or left-drag with the Navigate tool) pans, left-click drops a point (Point tool),
left-drag draws a box (Box tool). Keys: Up/Down and PageUp/PageDown step slices, Home/End jump to
the ends, Esc cancels the box being drawn (or returns to Navigate), F fits the image.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.imaging.volume import ImageVolume
from ui.backend import AnnotationDraft
from engine.imaging.render import render_slice
from ui.model import MapRole, ViewerState

PAGE_STEP = 5
MARK_COLOUR = QColor(64, 224, 208)  # turquoise: visible on grey and on the inferno/jet maps
TEXT_COLOUR = QColor(230, 230, 230)
CAPTION_COLOUR = QColor(255, 214, 102)  # the method name of a compared view: amber, stands out
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S", "?": "?"}
_WL_PIXELS_PER_WIDTH = 256.0  # dragging this many pixels changes the window by one default width
_MIN_ZOOM, _MAX_ZOOM = 0.25, 16.0


def orientation_letters(volume: ImageVolume) -> tuple[str, str] | None:
    """The anatomical letters printed at the image's left and top edges.

    The screen's left edge shows where the columns come from (the opposite of the direction the
    column index grows towards), the top edge where the rows come from.

    Args:
        volume: the shown volume.

    Returns:
        ``(left, top)`` letters such as ``("R", "A")``, or None when the volume has no patient
        geometry (clips, patches, slides: ``ImageVolume.patient_oriented`` is False) or its
        orientation is unknown.
    """
    orientation = volume.orientation
    if not volume.patient_oriented or "?" in orientation:
        return None
    return _OPPOSITE[orientation[2]], _OPPOSITE[orientation[1]]


class SliceView(QWidget):
    """Draws ``state``'s current slice and writes slice, window and marks back to it.

    Args:
        state: the viewer state to show and change.
        role: which analysis's map to blend, ``"main"`` or ``"compare"`` (the second CAM method
            of a side-by-side comparison); everything else is shared through ``state``.
        parent: optional parent widget.
    """

    def __init__(self, state: ViewerState, role: MapRole = "main",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.role = role
        self.smooth = True  # bilinear magnification; False shows square voxels
        self._image: QImage | None = None
        self._zoom = 1.0
        self._pan = QPointF(0.0, 0.0)
        self._drag_button = Qt.MouseButton.NoButton
        self._drag_start = QPointF()
        self._drag_window = (0.0, 1.0)
        self._drag_pan = QPointF()
        self._box_start: tuple[float, float] | None = None
        self._box_end: tuple[float, float] | None = None
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMouseTracking(False)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.display, self.overlay, self.annotation = state.display, state.overlay, state.annotation
        for signal in (self.display.events.channel, self.display.events.slice_index,
                       self.display.events.window, self.overlay.events.all):
            signal.connect(self._rerender)  # every overlay change shows in the pixels
        self.display.events.volume.connect(self._on_volume)
        self.annotation.events.drafts.connect(self._repaint)
        self.annotation.events.tool.connect(self._on_tool)
        self._on_tool(self.annotation.tool)
        self._rerender()

    # -- geometry ----------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the whole image lies in widget coordinates (outer edges of the edge pixels)."""
        volume = self.display.volume
        if volume is None:
            return QRectF()
        _, rows, cols = volume.shape
        _, dy, dx = volume.spacing
        width_mm, height_mm = cols * dx, rows * dy
        scale = min(self.width() / width_mm, self.height() / height_mm) * self._zoom
        w, h = width_mm * scale, height_mm * scale
        left = (self.width() - w) / 2.0 + self._pan.x()
        top = (self.height() - h) / 2.0 + self._pan.y()
        return QRectF(left, top, w, h)

    def image_to_widget(self, row: float, col: float) -> QPointF:
        """Widget position of image coordinates ``(row, col)`` (whole numbers = pixel centres)."""
        rect = self.image_rect()
        _, rows, cols = self.display.volume.shape
        return QPointF(
            rect.left() + (col + 0.5) * rect.width() / cols,
            rect.top() + (row + 0.5) * rect.height() / rows,
        )

    def widget_to_image(self, point: QPointF) -> tuple[float, float]:
        """Image ``(row, col)`` under a widget position (may lie outside the image)."""
        rect = self.image_rect()
        _, rows, cols = self.display.volume.shape
        col = (point.x() - rect.left()) * cols / rect.width() - 0.5
        row = (point.y() - rect.top()) * rows / rect.height() - 0.5
        return row, col

    def _inside(self, row: float, col: float) -> bool:
        _, rows, cols = self.display.volume.shape
        return -0.5 <= row <= rows - 0.5 and -0.5 <= col <= cols - 0.5

    def _clamp_inside(self, row: float, col: float) -> tuple[float, float]:
        _, rows, cols = self.display.volume.shape
        return min(max(row, -0.5), rows - 0.5), min(max(col, -0.5), cols - 0.5)

    def fit(self) -> None:
        """Show the whole image, centred (undo zoom and pan)."""
        self._zoom, self._pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    # -- state -> pixels ---------------------------------------------------------------------
    def _on_volume(self, _volume: object) -> None:
        self._box_start = self._box_end = None
        self.fit()
        self._rerender()

    def _on_tool(self, tool: str) -> None:
        self._box_start = self._box_end = None
        cursors = {"navigate": Qt.CursorShape.OpenHandCursor, "point": Qt.CursorShape.CrossCursor,
                   "box": Qt.CursorShape.CrossCursor}
        self.setCursor(cursors[tool])
        self.update()

    def _rerender(self, *_args: object) -> None:
        image = self.display.current_image()
        if image is None:
            self._image = None
        else:
            centre, width = self.display.window
            rgba = np.ascontiguousarray(render_slice(image, centre, width,
                                                     self.overlay.spec(self.role)))
            rows, cols = rgba.shape[:2]
            self._image = QImage(rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888).copy()
        self.update()

    def _repaint(self, *_args: object) -> None:
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._image is None or self.display.volume is None:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(self.rect().adjusted(20, 0, -20, 0),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Open a case from the worklist (double-click) or with File > Open")
            painter.end()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        painter.drawImage(self.image_rect(), self._image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self._draw_marks(painter)
        self._draw_text(painter)
        painter.end()

    def _draw_marks(self, painter: QPainter) -> None:
        painter.setFont(QFont(self.font().family(), 9))
        for number, mark in enumerate(self.annotation.drafts, start=1):
            if mark.slice_index == self.display.slice_index:
                self._draw_mark(painter, mark, f"{number} {mark.label}".strip())
        if self._box_start is not None and self._box_end is not None:
            painter.setPen(QPen(MARK_COLOUR, 1.5, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(self.image_to_widget(*self._box_start),
                                    self.image_to_widget(*self._box_end)).normalized())

    def _draw_mark(self, painter: QPainter, mark: AnnotationDraft, caption: str) -> None:
        painter.setPen(QPen(MARK_COLOUR, 2.0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        first = self.image_to_widget(*mark.points[0])
        if mark.kind == "point":
            painter.drawEllipse(first, 6.0, 6.0)
            painter.drawLine(first + QPointF(-10, 0), first + QPointF(-4, 0))
            painter.drawLine(first + QPointF(4, 0), first + QPointF(10, 0))
            painter.drawLine(first + QPointF(0, -10), first + QPointF(0, -4))
            painter.drawLine(first + QPointF(0, 4), first + QPointF(0, 10))
            anchor = first + QPointF(10, -8)
        else:
            box = QRectF(first, self.image_to_widget(*mark.points[1])).normalized()
            painter.drawRect(box)
            anchor = box.topLeft() + QPointF(0, -4)
        painter.drawText(anchor, caption)

    def _draw_text(self, painter: QPainter) -> None:
        volume = self.display.volume
        centre, width = self.display.window
        painter.setPen(TEXT_COLOUR)
        painter.setFont(QFont(self.font().family(), 10))
        margin = self.rect().adjusted(8, 6, -8, -6)
        top_left = (f"{self.display.channel.upper()}\n"
                    f"{self.display.item_word().capitalize()} {self.display.slice_index + 1} / {volume.n_slices}")
        painter.drawText(margin, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, top_left)
        painter.drawText(margin, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                         f"W {width:.0f}  L {centre:.0f}")
        caption = self.overlay.method_caption(self.role)
        if caption:
            method, detail = caption.split("\n", 1)
            painter.setPen(CAPTION_COLOUR)
            painter.setFont(QFont(self.font().family(), 13, QFont.Weight.Bold))
            painter.drawText(margin, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, method)
            painter.setPen(TEXT_COLOUR)
            painter.setFont(QFont(self.font().family(), 9))
            painter.drawText(margin.adjusted(0, 22, 0, 0),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, detail)
            painter.setFont(QFont(self.font().family(), 10))
        letters = orientation_letters(volume)
        if letters is not None:
            left, top = letters
            rect = self.image_rect().intersected(QRectF(self.rect()))
            painter.drawText(QRectF(rect.left() + 4, rect.center().y() - 10, 20, 20),
                             Qt.AlignmentFlag.AlignLeft, left)
            painter.drawText(QRectF(rect.center().x() - 10, rect.top() + 4, 20, 20),
                             Qt.AlignmentFlag.AlignHCenter, top)

    # -- input -------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.display.volume is None:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        button, position = event.button(), event.position()
        tool = self.annotation.tool
        if button == Qt.MouseButton.LeftButton and tool == "point":
            row, col = self.widget_to_image(position)
            if self._inside(row, col):
                self.annotation.add_point(row, col)
            return
        if button == Qt.MouseButton.LeftButton and tool == "box":
            row, col = self.widget_to_image(position)
            if self._inside(row, col):
                self._box_start = self._box_end = (row, col)
            return
        self._drag_button, self._drag_start = button, position
        self._drag_window, self._drag_pan = self.display.window, QPointF(self._pan)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        position = event.position()
        if self._box_start is not None:
            self._box_end = self._clamp_inside(*self.widget_to_image(position))
            self.update()
            return
        delta = position - self._drag_start
        if self._drag_button == Qt.MouseButton.RightButton:
            self._drag_window_level(delta)
        elif self._drag_button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan = self._drag_pan + delta
            self.update()

    def _drag_window_level(self, delta: QPointF) -> None:
        """Right-drag: right widens the window, left narrows it; down raises the level."""
        centre, width = self._drag_window
        step = self.display.volume.default_window()[1] / _WL_PIXELS_PER_WIDTH
        self.display.window = (centre + delta.y() * step, width + delta.x() * step)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._box_start is not None and event.button() == Qt.MouseButton.LeftButton:
            start = self._box_start
            end = self._clamp_inside(*self.widget_to_image(event.position()))
            self._box_start = self._box_end = None
            if abs(end[0] - start[0]) >= 0.5 and abs(end[1] - start[1]) >= 0.5:
                self.annotation.add_box(start, end)
            self.update()
            return
        if event.button() == self._drag_button:
            self._drag_button = Qt.MouseButton.NoButton

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self.display.volume is None:
            return
        steps = event.angleDelta().y() / 120.0
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._zoom_about(event.position(), 1.25 ** steps)
        elif steps:
            self.display.step_slice(int(np.sign(steps) * max(1, round(abs(steps)))))
        event.accept()

    def _zoom_about(self, anchor: QPointF, factor: float) -> None:
        zoom = min(max(self._zoom * factor, _MIN_ZOOM), _MAX_ZOOM)
        row, col = self.widget_to_image(anchor)
        self._zoom = zoom
        moved = self.image_to_widget(row, col)
        self._pan += anchor - moved  # keep the pixel under the cursor where it was
        self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        steps = {Qt.Key.Key_Up: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_Left: -1,
                 Qt.Key.Key_PageUp: PAGE_STEP, Qt.Key.Key_PageDown: -PAGE_STEP}
        if key in steps:
            self.display.step_slice(steps[key])
        elif key == Qt.Key.Key_Home:
            self.display.slice_index = 0
        elif key == Qt.Key.Key_End:
            self.display.slice_index = self.display.volume.n_slices - 1 if self.display.volume else 0
        elif key == Qt.Key.Key_Escape:
            if self._box_start is not None:
                self._box_start = self._box_end = None
                self.update()
            else:
                self.annotation.tool = "navigate"
        elif key == Qt.Key.Key_F:
            self.fit()
        else:
            super().keyPressEvent(event)
