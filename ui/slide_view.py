"""``SlideView``: a whole-slide image at any zoom, its heatmap on top, a minimap and a scale bar.

The view shows the open slide (``ImageVolume`` of kind "slide": its array is the thumbnail,
``extras["slide"]`` the open ``SlideReader``). It keeps a screen scale (screen pixels per level-0
pixel) and the level-0 point at its centre; each paint draws, bottom to top:

1. the thumbnail stretched over the slide, so the view is never blank;
2. every cached tile of the coarser levels, then the cached tiles of the level
   ``TileGrid.level_for_scale`` picks for the scale (the sharpest drawn last);
3. the overlay's map (``OverlayModel.spec``: the shown class's CAM or tile probabilities, with
   its colour map, opacity, threshold and contours) as a layer aligned to level 0;
4. the reader's marks (thumbnail ``(row, col)`` like ``SliceView``'s), the scale bar (when the
   slide gives its pixel size), the level and zoom, and the minimap with the viewport.

Missing tiles are asked of ``ui.slide_loader.TileLoader`` after every move; they are read on its
thread pool and repainted when they arrive. Mouse: the wheel zooms about the cursor (smoothly,
by the wheel's angle), left- or middle-drag pans, a click or drag in the minimap moves there;
with the Point tool a click drops a point, with Box a drag draws a box. Keys: F fits, + and -
zoom about the centre, arrows pan.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.imaging.render import overlay_rgba
from engine.imaging.slide_tiles import TileKey, scale_bar
from ui.backend import AnnotationDraft
from ui.model import ViewerState
from ui.slice_view import MARK_COLOUR, SAVED_MARK_COLOUR, TEXT_COLOUR, draw_mark
from ui.slide_loader import TileLoader

BACKGROUND = QColor(40, 40, 40)
VIEWPORT_COLOUR = QColor(255, 214, 102)
#: Longest side of the minimap, and its margin from the view's corner, in screen pixels.
MINIMAP_SIDE, MINIMAP_MARGIN = 180, 10
#: Zoom limits: at most 8 screen pixels per level-0 pixel; at least half of the fitting scale.
MAX_SCALE, MIN_FIT_SHARE = 8.0, 0.5
#: Wheel zoom: one notch (120 eighths of a degree) multiplies the scale by this.
NOTCH_FACTOR = 2.0 ** 0.5
#: +/- zoom factor, and the share of the view an arrow key pans.
KEY_FACTOR, KEY_PAN = 2.0, 0.25


class SlideView(QWidget):
    """Pan and zoom across a slide's pyramid levels; follows ``state`` like ``SliceView``.

    Args:
        state: the viewer state (the display's volume, the overlay, the marks).
        parent: optional parent widget.

    Attributes:
        loader: the open slide's ``TileLoader`` (None when no slide is shown).

    Signals:
        viewport_changed(): zoom or pan changed.
    """

    viewport_changed = Signal()

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.display, self.overlay, self.annotation = state.display, state.overlay, state.annotation
        self.loader: TileLoader | None = None
        self._thumbnail: QImage | None = None
        self._heatmap: QImage | None = None
        self._scale = 1.0
        self._centre = QPointF()
        self._fitted = True  # follows the widget's size until the reader zooms or pans
        self._drag_button = Qt.MouseButton.NoButton
        self._drag_start = QPointF()
        self._drag_centre = QPointF()
        self._minimap_drag = False
        self._box_start: tuple[float, float] | None = None
        self._box_end: tuple[float, float] | None = None
        self.failed_tiles: dict[TileKey, str] = {}
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.display.events.volume.connect(self._on_volume)
        self.overlay.events.all.connect(self._on_overlay)
        for signal in (self.annotation.events.drafts, self.annotation.events.selected,
                       self.annotation.events.saved_marks):
            signal.connect(self._repaint)
        self._on_volume(self.display.volume)

    # -- the slide -----------------------------------------------------------------------------
    @property
    def size0(self) -> tuple[int, int]:
        """``(width, height)`` of the slide's level 0 (``(1, 1)`` when none is shown)."""
        return self.loader.grid.size0 if self.loader is not None else (1, 1)

    def _on_volume(self, volume: object) -> None:
        if self.loader is not None:
            self.loader.shutdown()
            self.loader.deleteLater()
            self.loader = None
        self._thumbnail = self._heatmap = None
        self.failed_tiles = {}
        self._box_start = self._box_end = None
        reader = getattr(volume, "extras", {}).get("slide") if getattr(volume, "kind", None) == "slide" else None
        if reader is not None:
            self.loader = TileLoader(reader, parent=self)
            self.loader.tile_loaded.connect(self._on_tile)
            self.loader.tile_failed.connect(self._on_tile_failed)
            rgb = np.ascontiguousarray(np.moveaxis(volume.array[:, 0], 0, 2)).astype(np.uint8)
            height, width = rgb.shape[:2]
            self._thumbnail = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
            self._on_overlay()
        self.fit()

    def _repaint(self, *_args: object) -> None:
        self.update()

    def _on_tile(self, _key: TileKey) -> None:
        self.update()

    def _on_tile_failed(self, key: TileKey, reason: str) -> None:
        self.failed_tiles[key] = reason
        self.update()

    def _on_overlay(self, *_args: object) -> None:
        spec = self.overlay.spec("main") if self.loader is not None else None
        if spec is None:
            self._heatmap = None
        else:
            rgba = overlay_rgba(spec)
            rows, cols = rgba.shape[:2]
            self._heatmap = QImage(rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888).copy()
        self.update()

    # -- geometry ------------------------------------------------------------------------------
    def view(self) -> tuple[float, QPointF]:
        """``(scale, centre)``: screen pixels per level-0 pixel, and the level-0 point at the centre."""
        return self._scale, QPointF(self._centre)

    def set_view(self, scale: float, centre: QPointF) -> None:
        """Show level-0 point ``centre`` at the view's centre at ``scale`` (clamped to the zoom limits)."""
        self._fitted = False
        self._move(scale, centre)

    def _move(self, scale: float, centre: QPointF) -> None:
        self._scale = min(max(float(scale), self._min_scale()), MAX_SCALE)
        width0, height0 = self.size0
        self._centre = QPointF(min(max(centre.x(), 0.0), width0), min(max(centre.y(), 0.0), height0))
        self.request_tiles()
        self.update()
        self.viewport_changed.emit()

    def fit_scale(self) -> float:
        """The scale that shows the whole slide."""
        width0, height0 = self.size0
        return max(min(self.width() / width0, self.height() / height0), 1e-6)

    def _min_scale(self) -> float:
        return min(self.fit_scale() * MIN_FIT_SHARE, MAX_SCALE)

    def fit(self) -> None:
        """Show the whole slide, centred."""
        self._fitted = True
        width0, height0 = self.size0
        self._move(self.fit_scale(), QPointF(width0 / 2.0, height0 / 2.0))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Multiply the scale by ``factor``, keeping the slide point under ``anchor`` (a widget
        position; default the centre) where it is."""
        anchor = QPointF(self.width() / 2.0, self.height() / 2.0) if anchor is None else anchor
        x0, y0 = self.to_level0(anchor)
        scale = min(max(self._scale * factor, self._min_scale()), MAX_SCALE)
        centre = QPointF(x0 - (anchor.x() - self.width() / 2.0) / scale,
                         y0 - (anchor.y() - self.height() / 2.0) / scale)
        self.set_view(scale, centre)

    def to_screen(self, x0: float, y0: float) -> QPointF:
        """Widget position of level-0 point ``(x0, y0)``."""
        return QPointF(self.width() / 2.0 + (x0 - self._centre.x()) * self._scale,
                       self.height() / 2.0 + (y0 - self._centre.y()) * self._scale)

    def to_level0(self, point: QPointF) -> tuple[float, float]:
        """Level-0 ``(x, y)`` under a widget position."""
        return (self._centre.x() + (point.x() - self.width() / 2.0) / self._scale,
                self._centre.y() + (point.y() - self.height() / 2.0) / self._scale)

    def visible_rect0(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` of the level-0 region in view."""
        x, y = self.to_level0(QPointF(0.0, 0.0))
        return x, y, self.width() / self._scale, self.height() / self._scale

    def level_shown(self) -> int:
        """The pyramid level read at the present scale (in device pixels: a 2x screen reads the
        level twice as sharp)."""
        if self.loader is None:
            return 0
        return self.loader.grid.level_for_scale(self._scale * self.devicePixelRatioF())

    def _rect_on_screen(self, x0: float, y0: float, w0: float, h0: float) -> QRectF:
        return QRectF(self.to_screen(x0, y0), self.to_screen(x0 + w0, y0 + h0))

    def _thumbnail_to_level0(self, row: float, col: float) -> tuple[float, float]:
        """Level-0 ``(x, y)`` of thumbnail pixel ``(row, col)`` (whole numbers are pixel centres)."""
        width0, height0 = self.size0
        return (col + 0.5) * width0 / self._thumbnail.width(), (row + 0.5) * height0 / self._thumbnail.height()

    def _level0_to_thumbnail(self, x0: float, y0: float) -> tuple[float, float]:
        width0, height0 = self.size0
        return y0 * self._thumbnail.height() / height0 - 0.5, x0 * self._thumbnail.width() / width0 - 0.5

    def request_tiles(self) -> int:
        """Ask the loader for the tiles in view at the shown level; returns the reads started."""
        if self.loader is None or not self.isVisible() or self.width() < 1:
            return 0
        return self.loader.request(self.loader.grid.tiles_in_view(self.level_shown(), self.visible_rect0()))

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.request_tiles()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fitted:
            self.fit()
        else:
            self._move(self._scale, self._centre)

    # -- painting ------------------------------------------------------------------------------
    def paintEvent(self, _event: object) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self.loader is None or self._thumbnail is None:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No slide open")
            painter.end()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self._draw_stretched(painter, self._thumbnail)
        self._draw_tiles(painter)
        if self._heatmap is not None:
            self._draw_stretched(painter, self._heatmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self._draw_marks(painter)
        self._draw_scale_bar(painter)
        self._draw_text(painter)
        self._draw_minimap(painter)
        painter.end()

    def _draw_stretched(self, painter: QPainter, image: QImage) -> None:
        """Draw an image that covers the whole slide (thumbnail, heatmap): only its part in view."""
        width0, height0 = self.size0
        per_x, per_y = width0 / image.width(), height0 / image.height()  # level-0 pixels per image pixel
        x, y, w, h = self.visible_rect0()
        left, top = max(int(np.floor(x / per_x)) - 1, 0), max(int(np.floor(y / per_y)) - 1, 0)
        right = min(int(np.ceil((x + w) / per_x)) + 1, image.width())
        bottom = min(int(np.ceil((y + h) / per_y)) + 1, image.height())
        if right <= left or bottom <= top:
            return
        target = self._rect_on_screen(left * per_x, top * per_y, (right - left) * per_x, (bottom - top) * per_y)
        painter.drawImage(target, image, QRectF(left, top, right - left, bottom - top))

    def _draw_tiles(self, painter: QPainter) -> None:
        grid, cache, view0 = self.loader.grid, self.loader.cache, self.visible_rect0()
        shown = self.level_shown()
        for level in range(grid.levels - 1, shown - 1, -1):  # coarsest first: the sharpest on top
            for key in grid.tiles_in_view(level, view0):
                tile = cache.get(key) if level == shown else cache.peek(key)
                if tile is not None:
                    painter.drawImage(self._rect_on_screen(*grid.rect0(key)), tile)

    def _draw_scale_bar(self, painter: QPainter) -> None:
        mpp = getattr(self.loader.reader, "mpp", None)
        if not mpp:
            return
        bar = scale_bar(mpp[0], self._scale)
        left, base = 16.0, self.height() - 18.0
        painter.setPen(QPen(QColor(0, 0, 0), 5.0))
        painter.drawLine(QPointF(left, base), QPointF(left + bar.pixels, base))
        painter.setPen(QPen(QColor(255, 255, 255), 3.0))
        painter.drawLine(QPointF(left, base), QPointF(left + bar.pixels, base))
        painter.setFont(QFont(self.font().family(), 10, QFont.Weight.Bold))
        painter.drawText(QPointF(left, base - 8.0), bar.label)

    def _draw_text(self, painter: QPainter) -> None:
        painter.setPen(TEXT_COLOUR)
        painter.setFont(QFont(self.font().family(), 10))
        level = self.level_shown()
        text = f"Level {level} of {self.loader.grid.levels} \u00b7 zoom {self._scale * 100:.3g}%"
        if self.failed_tiles:
            text += f"\n{len(self.failed_tiles)} tiles could not be read"
        painter.drawText(self.rect().adjusted(8, 6, -8, -6), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                         text)

    # -- minimap -------------------------------------------------------------------------------
    def minimap_rect(self) -> QRectF:
        """Where the minimap (the whole slide) is drawn, in the bottom-right corner."""
        width0, height0 = self.size0
        ratio = MINIMAP_SIDE / max(width0, height0)
        w, h = width0 * ratio, height0 * ratio
        return QRectF(self.width() - MINIMAP_MARGIN - w, self.height() - MINIMAP_MARGIN - h, w, h)

    def _draw_minimap(self, painter: QPainter) -> None:
        box = self.minimap_rect()
        painter.fillRect(box.adjusted(-2, -2, 2, 2), QColor(0, 0, 0))
        painter.drawImage(box, self._thumbnail)
        if self._heatmap is not None:
            painter.drawImage(box, self._heatmap)
        width0, height0 = self.size0
        x, y, w, h = self.visible_rect0()
        sx, sy = box.width() / width0, box.height() / height0
        seen = QRectF(box.left() + x * sx, box.top() + y * sy, w * sx, h * sy).intersected(box)
        painter.setPen(QPen(VIEWPORT_COLOUR, 2.0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(seen)

    def _centre_on_minimap(self, point: QPointF) -> None:
        box = self.minimap_rect()
        width0, height0 = self.size0
        x0 = (point.x() - box.left()) * width0 / box.width()
        y0 = (point.y() - box.top()) * height0 / box.height()
        self.set_view(self._scale, QPointF(x0, y0))

    # -- marks ---------------------------------------------------------------------------------
    def _draw_marks(self, painter: QPainter) -> None:
        painter.setFont(QFont(self.font().family(), 9))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for mark in self.annotation.saved_marks:
            self._draw_mark(painter, mark, mark.label, QPen(SAVED_MARK_COLOUR, 2.0, Qt.PenStyle.DashLine))
        for number, mark in enumerate(self.annotation.drafts, start=1):
            selected = number - 1 == self.annotation.selected
            self._draw_mark(painter, mark, f"{number} {mark.label}".strip(),
                            QPen(QColor(255, 255, 255) if selected else MARK_COLOUR, 3.0 if selected else 2.0))
        if self._box_start is not None and self._box_end is not None:
            painter.setPen(QPen(MARK_COLOUR, 1.5, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(self._mark_point(self._box_start), self._mark_point(self._box_end)).normalized())

    def _mark_point(self, point: tuple[float, float]) -> QPointF:
        return self.to_screen(*self._thumbnail_to_level0(*point))

    def _draw_mark(self, painter: QPainter, mark: AnnotationDraft, caption: str, pen: QPen) -> None:
        if mark.kind == "mask":  # painted label masks are drawn by the slice view only (no brush on slides)
            return
        draw_mark(painter, mark.kind, [self._mark_point(p) for p in mark.points], caption, pen)

    def _thumbnail_point(self, position: QPointF) -> tuple[float, float] | None:
        """Thumbnail ``(row, col)`` under a widget position, None off the slide."""
        row, col = self._level0_to_thumbnail(*self.to_level0(position))
        inside = -0.5 <= row <= self._thumbnail.height() - 0.5 and -0.5 <= col <= self._thumbnail.width() - 0.5
        return (row, col) if inside else None

    # -- input ---------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.loader is None:
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        position, button = event.position(), event.button()
        if button == Qt.MouseButton.LeftButton and self.minimap_rect().contains(position):
            self._minimap_drag = True
            self._centre_on_minimap(position)
            return
        tool = self.annotation.tool
        if button == Qt.MouseButton.LeftButton and tool in ("point", "box"):
            point = self._thumbnail_point(position)
            if point is not None and tool == "point":
                self.annotation.add_point(*point)
            elif point is not None:
                self._box_start = self._box_end = point
            return
        self._drag_button, self._drag_start, self._drag_centre = button, position, QPointF(self._centre)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        position = event.position()
        if self._minimap_drag:
            self._centre_on_minimap(position)
        elif self._box_start is not None:
            row, col = self._level0_to_thumbnail(*self.to_level0(position))
            self._box_end = (min(max(row, -0.5), self._thumbnail.height() - 0.5),
                             min(max(col, -0.5), self._thumbnail.width() - 0.5))
            self.update()
        elif self._drag_button in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            delta = position - self._drag_start
            self.set_view(self._scale, self._drag_centre - delta / self._scale)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._box_start is not None and self._box_end is not None:
            start, end = self._box_start, self._box_end
            self._box_start = self._box_end = None
            if abs(end[0] - start[0]) >= 0.5 and abs(end[1] - start[1]) >= 0.5:
                self.annotation.add_box(start, end)
            self.update()
        self._minimap_drag = False
        if event.button() == self._drag_button:
            self._drag_button = Qt.MouseButton.NoButton

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self.loader is not None and event.angleDelta().y():
            self.zoom_by(NOTCH_FACTOR ** (event.angleDelta().y() / 120.0), event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        pans = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
        if key == Qt.Key.Key_F:
            self.fit()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(KEY_FACTOR)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1.0 / KEY_FACTOR)
        elif key in pans:
            dx, dy = pans[key]
            step = KEY_PAN / self._scale
            self.set_view(self._scale, self._centre + QPointF(dx * self.width() * step, dy * self.height() * step))
        else:
            super().keyPressEvent(event)
