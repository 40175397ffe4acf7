"""``SliceView``: one slice of the volume, the CAM blended on top, the reader's marks and measures.

The view keeps the physical aspect ratio from the spacing ``(dy, dx)``, maps widget positions to
image ``(row, col)`` and back (pixel centres sit at whole indices, pixel ``(r, c)`` covers
``[r - 0.5, r + 0.5] x [c - 0.5, c + 0.5]``), and draws marks in image coordinates so they stay
on the anatomy when the window is resized or the image zoomed and panned.

Mouse: wheel steps slices, Ctrl+wheel zooms about the cursor, right-drag sets window/level,
middle-drag pans; with Navigate, left-drag on a mark moves it (click selects it) and elsewhere
pans. Point: click drops a point. Box, Ellipse, Ruler, ROI: drag. Brush, Eraser: drag paints or
clears the label mask within the brush radius (``ui.mask_painter`` draws it). Polygon: click each vertex,
double-click or Enter closes it, Backspace removes the last vertex. Keys: Up/Down and
PageUp/PageDown step slices, Home/End jump to the ends, Delete removes the selected mark, Esc
cancels what is being drawn (or returns to Navigate), F fits the image. The pixel under the
cursor is read out with its value and its image and patient coordinates.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.imaging.render import OverlaySpec, render_slice
from engine.imaging.volume import ImageVolume
from ui.mark_editing import (  # noqa: F401 (the mark colours and draw_mark are also used from here)
    MARK_COLOUR, MEASURE_COLOUR, SAVED_MARK_COLOUR, SELECTED_COLOUR, MarkEditing, draw_mark,
)
from ui.mask_painter import draw_brush_cursor, draw_label_masks
from ui.model import PAINT_TOOLS, MapRole, ViewerState

PAGE_STEP = 5
TEXT_COLOUR = QColor(230, 230, 230)
CAPTION_COLOUR = QColor(255, 214, 102)  # the method name of a compared view: amber, stands out
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S", "?": "?"}
_WL_PIXELS_PER_WIDTH = 256.0  # dragging this many pixels changes the window by one default width
_MIN_ZOOM, _MAX_ZOOM = 0.25, 16.0


def orientation_letters(volume: ImageVolume) -> tuple[str, str, str, str] | None:
    """The anatomical letters printed at the image's left, top, right and bottom edges.

    The screen's left edge shows where the columns come from (the opposite of the direction the
    column index grows towards), the right edge where they go; likewise top and bottom for rows.

    Args:
        volume: the shown volume.

    Returns:
        ``(left, top, right, bottom)`` letters such as ``("R", "A", "L", "P")``, or None when the
        volume has no patient geometry (clips, patches, slides: ``ImageVolume.patient_oriented``
        is False) or its orientation is unknown.
    """
    orientation = volume.orientation
    if not volume.patient_oriented or "?" in orientation:
        return None
    return _OPPOSITE[orientation[2]], _OPPOSITE[orientation[1]], orientation[2], orientation[1]


class SliceView(MarkEditing, QWidget):
    """Draws ``state``'s current slice and writes slice, window, marks and measures back to it.

    Args:
        state: the viewer state to show and change.
        role: which analysis's map to blend, ``"main"`` or a compare role (another CAM method
            of a comparison, ``ui.model.MAP_ROLES``); everything else is shared through ``state``.
        parent: optional parent widget.

    Signals:
        viewport_changed(): zoom or pan changed (linked views follow).
        cursor_moved(str): the read-out of the pixel under the cursor ("" off the image).
    """

    viewport_changed = Signal()
    cursor_moved = Signal(str)

    def __init__(self, state: ViewerState, role: MapRole = "main",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.role = role
        self.smooth = True  # bilinear magnification; False shows square voxels
        self._image: QImage | None = None
        self._stale = True  # the image does not show the state yet
        self._zoom = 1.0
        self._pan = QPointF(0.0, 0.0)
        self._drag_button = Qt.MouseButton.NoButton
        self._drag_start = QPointF()
        self._drag_window = (0.0, 1.0)
        self._drag_pan = QPointF()
        self._shape_start: tuple[float, float] | None = None  # a box, ellipse, ruler or ROI being drawn
        self._shape_end: tuple[float, float] | None = None
        self._polygon: list[tuple[float, float]] = []  # vertices of the polygon being drawn
        self._hover: tuple[float, float] | None = None
        self._moving: tuple[int, tuple[float, float]] | None = None  # (mark, grab point) while moving
        self._move_offset = (0.0, 0.0)
        self.cursor_text = ""
        self.caption_inset = 0  # pixels kept free right of the method caption (a close button's)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.display, self.overlay, self.annotation = state.display, state.overlay, state.annotation
        self.measure = state.measure
        for signal in (self.display.events.channel, self.display.events.slice_index,
                       self.display.events.window, self.display.events.invert, self.overlay.events.all):
            signal.connect(self._rerender)  # every overlay change shows in the pixels
        self.display.events.volume.connect(self._on_volume)
        for signal in (self.annotation.events.drafts, self.annotation.events.selected,
                       self.annotation.events.saved_marks, self.measure.events.ruler, self.measure.events.roi,
                       self.annotation.events.stroke, self.annotation.events.brush_radius):
            signal.connect(self._repaint)
        self.annotation.events.tool.connect(self._on_tool)
        self._on_tool(self.annotation.tool)
        self._rerender()

    # -- geometry ----------------------------------------------------------------------------
    def plane_grid(self) -> tuple[int, int, float, float]:
        """``(rows, cols, row_mm, col_mm)`` of the shown image: its size and pixel spacing (a
        view of another plane through the volume overrides this, ``ui.planes``)."""
        _, rows, cols = self.display.volume.shape
        _, dy, dx = self.display.volume.spacing
        return rows, cols, dy, dx

    def image_rect(self) -> QRectF:
        """Where the whole image lies in widget coordinates (outer edges of the edge pixels)."""
        if self.display.volume is None:
            return QRectF()
        rows, cols, dy, dx = self.plane_grid()
        width_mm, height_mm = cols * dx, rows * dy
        scale = min(self.width() / width_mm, self.height() / height_mm) * self._zoom
        w, h = width_mm * scale, height_mm * scale
        left = (self.width() - w) / 2.0 + self._pan.x()
        top = (self.height() - h) / 2.0 + self._pan.y()
        return QRectF(left, top, w, h)

    def image_to_widget(self, row: float, col: float) -> QPointF:
        """Widget position of image coordinates ``(row, col)`` (whole numbers = pixel centres)."""
        rect = self.image_rect()
        rows, cols, _, _ = self.plane_grid()
        return QPointF(
            rect.left() + (col + 0.5) * rect.width() / cols,
            rect.top() + (row + 0.5) * rect.height() / rows,
        )

    def widget_to_image(self, point: QPointF) -> tuple[float, float]:
        """Image ``(row, col)`` under a widget position (may lie outside the image)."""
        rect = self.image_rect()
        rows, cols, _, _ = self.plane_grid()
        col = (point.x() - rect.left()) * cols / rect.width() - 0.5
        row = (point.y() - rect.top()) * rows / rect.height() - 0.5
        return row, col

    def viewport(self) -> tuple[float, QPointF]:
        """``(zoom, pan)``: how far the image is magnified and shifted from centred."""
        return self._zoom, QPointF(self._pan)

    def set_viewport(self, zoom: float, pan: QPointF) -> None:
        """Show the image at ``zoom`` and ``pan`` (as another view does); emits nothing."""
        if (zoom, pan) != (self._zoom, self._pan):
            self._zoom, self._pan = zoom, QPointF(pan)
            self.update()

    def _viewport_moved(self) -> None:
        self.update()
        self.viewport_changed.emit()

    def fit(self) -> None:
        """Show the whole image, centred (undo zoom and pan)."""
        self._zoom, self._pan = 1.0, QPointF(0.0, 0.0)
        self._viewport_moved()

    # -- state -> pixels ---------------------------------------------------------------------
    def _on_volume(self, _volume: object) -> None:
        self._cancel_drawing()
        if self.cursor_text:
            self.cursor_text = ""
            self.cursor_moved.emit("")
        self.fit()
        self._rerender()

    def _on_tool(self, tool: str) -> None:
        self._cancel_drawing()
        self.setCursor(Qt.CursorShape.OpenHandCursor if tool == "navigate" else Qt.CursorShape.CrossCursor)
        self.update()

    def _rerender(self, *_args: object) -> None:
        """Render the shown slice with its overlay into the image the next paint draws. A hidden
        view (the compared one, while not comparing) renders when it is shown again."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        image = self.shown_image()
        if image is None:
            self._image = None
        else:
            centre, width = self.display.window
            rgba = np.ascontiguousarray(render_slice(image, centre, width, self.shown_overlay(),
                                                     self.display.invert))
            rows, cols = rgba.shape[:2]
            # RGBX: the same bytes with alpha ignored, which Qt scales as fast as RGB32.
            self._image = QImage(rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBX8888).copy()
        self.update()

    def shown_image(self) -> np.ndarray | None:
        """The pixels this view shows: the shown slice (``ui.planes`` shows other planes)."""
        return self.display.current_image()

    def shown_overlay(self) -> OverlaySpec | None:
        """The map blended over ``shown_image``, or None."""
        return self.overlay.spec(self.role)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self._rerender()

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
        draw_label_masks(painter, self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self._draw_marks(painter)
        self._draw_measures(painter)
        self._draw_text(painter)
        painter.end()

    # -- marks -------------------------------------------------------------------------------
    def _draw_marks(self, painter: QPainter) -> None:
        super()._draw_marks(painter)
        if self.annotation.tool in PAINT_TOOLS and self._hover is not None:
            draw_brush_cursor(painter, self, self._hover)

    # -- text --------------------------------------------------------------------------------
    def _draw_text(self, painter: QPainter) -> None:
        centre, width = self.display.window
        painter.setPen(TEXT_COLOUR)
        painter.setFont(QFont(self.font().family(), 10))
        margin = self.rect().adjusted(8, 6, -8, -6)
        painter.drawText(margin, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, self.position_text())
        inverted = "  inverted" if self.display.invert else ""
        painter.drawText(margin, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                         f"W {width:.0f}  L {centre:.0f}{inverted}")
        if self.cursor_text:
            painter.drawText(margin, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom, self.cursor_text)
        caption = self.overlay.method_caption(self.role)
        if caption:
            method, detail = caption.split("\n", 1)
            margin = margin.adjusted(0, 0, -self.caption_inset, 0)
            painter.setPen(CAPTION_COLOUR)
            painter.setFont(QFont(self.font().family(), 13, QFont.Weight.Bold))
            painter.drawText(margin, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, method)
            painter.setPen(TEXT_COLOUR)
            painter.setFont(QFont(self.font().family(), 9))
            painter.drawText(margin.adjusted(0, 22, 0, 0),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, detail)
            painter.setFont(QFont(self.font().family(), 10))
        letters = self.edge_letters()
        if letters is not None:
            left, top, right, bottom = letters
            rect = self.image_rect()
            # A flat image (the coronal plane of a few slices) gets its letters beside it, not on it.
            grow_x, grow_y = (24.0 if rect.width() < 64 else 0.0), (24.0 if rect.height() < 64 else 0.0)
            rect = rect.adjusted(-grow_x, -grow_y, grow_x, grow_y).intersected(QRectF(self.rect()))
            middle_y, middle_x = rect.center().y() - 10, rect.center().x() - 10
            painter.drawText(QRectF(rect.left() + 4, middle_y, 20, 20), Qt.AlignmentFlag.AlignLeft, left)
            painter.drawText(QRectF(middle_x, rect.top() + 4, 20, 20), Qt.AlignmentFlag.AlignHCenter, top)
            painter.drawText(QRectF(rect.right() - 24, middle_y, 20, 20), Qt.AlignmentFlag.AlignRight, right)
            painter.drawText(QRectF(middle_x, rect.bottom() - 24, 20, 20),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, bottom)

    def position_text(self) -> str:
        """The top-left caption: channel, and where the shown image lies ("Slice 3 / 24")."""
        return (f"{self.display.channel.upper()}\n{self.display.item_word().capitalize()} "
                f"{self.display.slice_index + 1} / {self.display.volume.n_slices}")

    def edge_letters(self) -> tuple[str, str, str, str] | None:
        """The anatomical letters at the image's left, top, right and bottom edges, or None."""
        return orientation_letters(self.display.volume)

    def readout(self, row: float, col: float) -> str:
        """What the cursor read-out says at image ``(row, col)``: the pixel (row and column from 0,
        the slice numbered from 1 as everywhere on screen), its value, and its patient position
        (LPS, mm) when the volume has one; "" off the image."""
        value = self.display.pixel_value(row, col)
        if value is None:
            return ""
        r, c = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
        shown = " ".join(f"{v:.4g}" for v in value) if isinstance(value, tuple) else f"{value:.4g}"
        text = f"row {r}, col {c}, {self.display.item_word()} {self.display.slice_index + 1}  value {shown}"
        position = self.display.patient_position(r, c)
        if position is not None:
            text += "\nLPS {:.1f}, {:.1f}, {:.1f} mm".format(*position)
        return text

    # -- input -------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.display.volume is None:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        button, position = event.button(), event.position()
        if button == Qt.MouseButton.LeftButton and self.annotation.tool in PAINT_TOOLS:
            row, col = self.widget_to_image(position)
            if self._inside(row, col):
                self.annotation.begin_stroke(row, col)
            return
        if self._press_marks(button, position):
            return
        self._drag_button, self._drag_start = button, position
        self._drag_window, self._drag_pan = self.display.window, QPointF(self._pan)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.display.volume is None:
            return
        position = event.position()
        row, col = self.widget_to_image(position)
        text = self.readout(row, col)
        if text != self.cursor_text:
            self.cursor_text = text
            self.cursor_moved.emit(text)
            self.update()
        if self.annotation.tool in PAINT_TOOLS:
            self._hover = self._clamp_inside(row, col)
            self.update()
            if self.annotation.painting:
                self.annotation.extend_stroke(*self._hover)
                return
        if self._drag_marks(row, col):
            return
        delta = position - self._drag_start
        if self._drag_button == Qt.MouseButton.RightButton:
            self._drag_window_level(delta)
        elif self._drag_button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan = self._drag_pan + delta
            self._viewport_moved()

    def leaveEvent(self, _event: object) -> None:  # noqa: N802
        if self.annotation.tool in PAINT_TOOLS and not self.annotation.painting:
            self._hover = None  # no brush circle left behind
            self.update()
        if self.cursor_text:
            self.cursor_text = ""
            self.cursor_moved.emit("")
            self.update()

    def _drag_window_level(self, delta: QPointF) -> None:
        """Right-drag: right widens the window, left narrows it; down raises the level."""
        centre, width = self._drag_window
        step = self.display.volume.default_window()[1] / _WL_PIXELS_PER_WIDTH
        self.display.window = (centre + delta.y() * step, width + delta.x() * step)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.annotation.painting and event.button() == Qt.MouseButton.LeftButton:
            self.annotation.end_stroke()  # one undo step for the whole stroke
            return
        if self._release_marks(event):
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
        self._viewport_moved()

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
        elif self._mark_key(key):
            pass
        elif key == Qt.Key.Key_F:
            self.fit()
        else:
            super().keyPressEvent(event)
