"""``SlideView``: a whole-slide image at any zoom, its heatmap on top, a minimap and a scale bar.

The view shows the open slide (``ImageVolume`` of kind "slide": its array is the thumbnail,
``extras["slide"]`` the open ``SlideReader``). It keeps a screen scale (screen pixels per level-0
pixel) and the level-0 point at its centre; each paint draws, bottom to top:

1. the thumbnail stretched over the slide, so the view is never blank;
2. every cached tile of the coarser levels, then the cached tiles of the level
   ``TileGrid.level_for_scale`` picks for the scale (the sharpest drawn last);
3. the overlay's map (``OverlayModel.spec``: the shown class's CAM or tile probabilities, with
   its colour map, opacity, threshold and contours) as a layer aligned to level 0;
4. the reader's marks and the ruler and ROI (thumbnail ``(row, col)``, as ``app.workstation``
   stores a slide's marks), the scale bar (when the slide gives its pixel size), the level and
   zoom, the compared method shown, and the minimap with the viewport.

The display's window and inversion apply per channel to the slide's colours, as
``engine.imaging.render.render_slice`` does for an RGB patch in ``SliceView`` (the map stays on
top, unwindowed); picking channel R, G or B shows that channel as grey, as it does there.
While methods are compared the view shows one of them at a time: the selector at the top right
picks which (side-by-side slide views are not built).

Missing tiles are asked of ``ui.slide_loader.TileLoader`` after every move; they are read on its
thread pool and repainted when they arrive. Mouse: the wheel zooms about the cursor (smoothly,
by the wheel's angle), middle-drag (and left-drag with Navigate off a mark) pans, a click or
drag in the minimap moves there; marks and measures are drawn, selected, moved and deleted as in
``SliceView`` (``ui.mark_editing``); the brush and eraser pan (slides have no label masks). The
position under the cursor (level-0 pixels, µm) and its colour are read out (``cursor_moved``).
When the shown slide changes its file is closed (``TileLoader.close_reader``). Keys: F fits, +
and - zoom about the centre, arrows pan, Delete/Esc/Enter as in ``SliceView``.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QComboBox, QSizePolicy, QWidget

from engine.explain.names import display_name
from engine.imaging.render import overlay_rgba, window_to_uint8
from engine.imaging.slide_tiles import RegionColour, TileKey, microns_label, region_colour, scale_bar
from ui.mark_editing import MarkEditing
from ui.model import MAP_ROLES, PAINT_TOOLS, MapRole, ViewerState
from ui.model.geometry import Point
from ui.model.measure import Segment
from ui.slice_view import CAPTION_COLOUR, TEXT_COLOUR
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


class SlideView(MarkEditing, QWidget):
    """Pan and zoom across a slide's pyramid levels; follows ``state`` like ``SliceView``.

    Args:
        state: the viewer state (the display's volume, the overlay, the marks).
        parent: optional parent widget.

    Attributes:
        loader: the open slide's ``TileLoader`` (None when no slide is shown).
        role: which analysis's map is drawn (``"main"``, or a compared one, ``ui.model.MAP_ROLES``).
        method_picker: the selector of the compared method shown (visible while comparing).
        cursor_text: the read-out of the point under the cursor ("" off the slide).

    Signals:
        viewport_changed(): zoom or pan changed.
        cursor_moved(str): the read-out under the cursor changed ("" off the slide).
    """

    viewport_changed = Signal()
    cursor_moved = Signal(str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.display, self.overlay, self.annotation = state.display, state.overlay, state.annotation
        self.measure = state.measure
        self.loader: TileLoader | None = None
        self.role: MapRole = "main"
        self.cursor_text = ""
        self._polygon: list[Point] = []
        self._lut: np.ndarray | None = None  # the window and inversion as a 256-entry table; None: as stored
        self._channel: int | None = None  # the one channel shown as grey (R, G or B), None for colour
        self._windowed: dict[TileKey, QImage] = {}  # tiles through _lut, for the present window
        self._windowed_thumbnail: QImage | None = None
        self._roi_colour: tuple[Segment, RegionColour | None] | None = None
        self._thumbnail: QImage | None = None
        self._heatmap: QImage | None = None
        self._scale = 1.0
        self._centre = QPointF()
        self._fitted = True  # follows the widget's size until the reader zooms or pans
        self._drag_button = Qt.MouseButton.NoButton
        self._drag_start = QPointF()
        self._drag_centre = QPointF()
        self._minimap_drag = False
        self.failed_tiles: dict[TileKey, str] = {}
        self.method_picker = QComboBox(self)
        self.method_picker.setToolTip("Which compared method's map the slide shows (one at a time on a slide)")
        self.method_picker.hide()
        self.method_picker.activated.connect(self._pick_method)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.display.events.volume.connect(self._on_volume)
        self.overlay.events.all.connect(self._on_overlay)
        self.overlay.events.compared.connect(self._on_compared)
        for signal in (self.display.events.window, self.display.events.invert, self.display.events.channel):
            signal.connect(self._on_window)
        for signal in (self.annotation.events.drafts, self.annotation.events.selected,
                       self.annotation.events.saved_marks, self.measure.events.ruler, self.measure.events.roi):
            signal.connect(self._repaint)
        self.annotation.events.tool.connect(self._on_tool)
        self._on_volume(self.display.volume)

    # -- the slide -----------------------------------------------------------------------------
    @property
    def size0(self) -> tuple[int, int]:
        """``(width, height)`` of the slide's level 0 (``(1, 1)`` when none is shown)."""
        return self.loader.grid.size0 if self.loader is not None else (1, 1)

    def _on_volume(self, volume: object) -> None:
        reader = getattr(volume, "extras", {}).get("slide") if getattr(volume, "kind", None) == "slide" else None
        if self.loader is not None:
            if self.loader.reader is reader:
                self.loader.shutdown()  # the same slide shown again: its file stays open
            else:
                self.loader.close_reader()  # no read in flight any more, then the file is closed
            self.loader.deleteLater()
            self.loader = None
        self._thumbnail = self._heatmap = None
        self._windowed, self._windowed_thumbnail, self._roi_colour = {}, None, None
        self.failed_tiles = {}
        self._cancel_drawing()
        self._set_cursor_text("")
        if reader is not None:
            self.loader = TileLoader(reader, parent=self)
            self.loader.tile_loaded.connect(self._on_tile)
            self.loader.tile_failed.connect(self._on_tile_failed)
            rgb = np.ascontiguousarray(np.moveaxis(volume.array[:, 0], 0, 2)).astype(np.uint8)
            height, width = rgb.shape[:2]
            self._thumbnail = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
            self._on_window()
            self._on_compared(self.overlay.compared)
        self.fit()

    def _repaint(self, *_args: object) -> None:
        self.update()

    def _on_tile(self, _key: TileKey) -> None:
        self.update()

    def _on_tile_failed(self, key: TileKey, reason: str) -> None:
        self.failed_tiles[key] = reason
        self.update()

    def _on_overlay(self, *_args: object) -> None:
        spec = self.overlay.spec(self.role) if self.loader is not None else None
        if spec is None:
            self._heatmap = None
        else:
            rgba = overlay_rgba(spec)
            rows, cols = rgba.shape[:2]
            self._heatmap = QImage(rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888).copy()
        self.update()

    def _on_tool(self, _tool: str) -> None:
        self._cancel_drawing()
        self.update()

    # -- comparing -----------------------------------------------------------------------------
    def _on_compared(self, compared: tuple) -> None:
        """List the compared methods in the selector (hidden when not comparing); keep the shown
        one if it is still compared, else show the first analysis."""
        shown = self.overlay.shown_analyses if compared else ()
        if MAP_ROLES.index(self.role) >= len(shown):
            self.role = "main"
        self.method_picker.clear()
        for role, analysis in zip(MAP_ROLES, shown):
            self.method_picker.addItem(display_name(analysis.method), role)
        if shown:
            self.method_picker.setCurrentIndex(MAP_ROLES.index(self.role))
            self.method_picker.adjustSize()
        self.method_picker.setVisible(bool(shown) and self.loader is not None)
        self._place_picker()
        self._on_overlay()

    def _pick_method(self, index: int) -> None:
        self.show_method(MAP_ROLES[index])

    def show_method(self, role: MapRole) -> None:
        """Draw the map of ``role`` (``"main"`` or a compared method shown now).

        Raises:
            ValueError: no analysis is shown in that role.
        """
        if self.overlay.analysis_for(role) is None:
            raise ValueError(f"no method is shown as {role!r}")
        self.role = role
        if self.method_picker.count() > MAP_ROLES.index(role):
            self.method_picker.setCurrentIndex(MAP_ROLES.index(role))
        self._on_overlay()

    def _place_picker(self) -> None:
        self.method_picker.move(self.width() - self.method_picker.width() - 8, 6)

    # -- window and inversion ------------------------------------------------------------------
    def _on_window(self, *_args: object) -> None:
        """Turn the display's window and inversion into one table for all three channels (the
        levels ``render_slice`` gives an RGB patch), and a picked channel (R, G or B) into grey as
        the slice view shows it; no table when the colours show as stored."""
        centre, width = self.display.window
        lut = window_to_uint8(np.arange(256, dtype=np.float32), centre, width)
        if self.display.invert:
            lut = 255 - lut
        names = getattr(self.display.volume, "channel_names", ())
        self._channel = names.index(self.display.channel) if self.display.channel in names else None
        identity = np.array_equal(lut, np.arange(256)) and self._channel is None
        self._lut = None if identity else lut
        self._windowed, self._windowed_thumbnail = {}, None
        self.update()

    def _shown(self, image: QImage, key: TileKey | None = None) -> QImage:
        """``image`` (a tile, or the thumbnail when ``key`` is None) as windowed for display."""
        if self._lut is None:
            return image
        cached = self._windowed.get(key) if key is not None else self._windowed_thumbnail
        if cached is None:
            cached = windowed_image(image, self._lut, self._channel)
            if key is None:
                self._windowed_thumbnail = cached
            else:
                if len(self._windowed) >= WINDOWED_TILES:
                    del self._windowed[next(iter(self._windowed))]  # the oldest made
                self._windowed[key] = cached
        return cached

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

    def plane_grid(self) -> tuple[int, int, float, float]:
        """``(rows, cols, row_mm, col_mm)`` of the thumbnail, the image marks are kept on."""
        _, rows, cols = self.display.volume.shape
        _, dy, dx = self.display.volume.spacing
        return rows, cols, dy, dx

    def widget_to_image(self, point: QPointF) -> Point:
        """Thumbnail ``(row, col)`` under a widget position (may lie off the slide)."""
        return self._level0_to_thumbnail(*self.to_level0(point))

    def image_to_widget(self, row: float, col: float) -> QPointF:
        """Widget position of thumbnail ``(row, col)`` (whole numbers are pixel centres)."""
        return self.to_screen(*self._thumbnail_to_level0(row, col))

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
        self._place_picker()
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
        self._draw_stretched(painter, self._shown(self._thumbnail))
        self._draw_tiles(painter)
        if self._heatmap is not None:
            self._draw_stretched(painter, self._heatmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self._draw_marks(painter)
        self._draw_measures(painter)
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
                    painter.drawImage(self._rect_on_screen(*grid.rect0(key)), self._shown(tile, key))

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
        if self._lut is not None:
            centre, width = self.display.window
            text += f"\nW {width:.0f}  L {centre:.0f}{'  inverted' if self.display.invert else ''}"
        if self.failed_tiles:
            text += f"\n{len(self.failed_tiles)} tiles could not be read"
        if self.cursor_text:
            text += "\n" + self.cursor_text
        margin = self.rect().adjusted(8, 6, -8, -6)
        painter.drawText(margin, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, text)
        caption = self.overlay.method_caption(self.role)
        if caption:  # comparing: which method's map this is, under the selector
            painter.setPen(CAPTION_COLOUR)
            painter.setFont(QFont(self.font().family(), 9))
            painter.drawText(margin.adjusted(0, self.method_picker.height() + 4, 0, 0),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
                             caption + "\n(one method at a time on a slide)")

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

    # -- marks, measures and the read-out -------------------------------------------------------
    def _level0_distance(self, start: Point, end: Point) -> float:
        (xa, ya), (xb, yb) = self._thumbnail_to_level0(*start), self._thumbnail_to_level0(*end)
        return math.hypot(xb - xa, yb - ya)

    def _mpp(self) -> tuple[float, float] | None:
        mpp = getattr(self.loader.reader, "mpp", None) if self.loader is not None else None
        return (float(mpp[0]), float(mpp[1])) if mpp else None

    def ruler_text(self, start: Point, end: Point) -> str:
        """The ruler's length on the slide: µm or mm from the slide's pixel size, else level-0 pixels."""
        mpp = self._mpp()
        if mpp is None:
            return f"{self._level0_distance(start, end):.0f} px (level 0; pixel size unknown)"
        (xa, ya), (xb, yb) = self._thumbnail_to_level0(*start), self._thumbnail_to_level0(*end)
        return microns_label(math.hypot((xb - xa) * mpp[0], (yb - ya) * mpp[1]))

    def roi_rect0(self, roi: Segment) -> tuple[float, float, float, float]:
        """The ROI box in level-0 pixels ``(x, y, w, h)``, clipped to the slide (corners taken as
        the box's edges, as drawn)."""
        (xa, ya), (xb, yb) = self._thumbnail_to_level0(*roi.start), self._thumbnail_to_level0(*roi.end)
        width0, height0 = self.size0
        left, right = max(min(xa, xb), 0.0), min(max(xa, xb), float(width0))
        top, bottom = max(min(ya, yb), 0.0), min(max(ya, yb), float(height0))
        return left, top, right - left, bottom - top

    def roi_colour(self, roi: Segment) -> RegionColour | None:
        """Mean colour inside the ROI, read from the slide (once per ROI); None when unreadable."""
        if self._roi_colour is None or self._roi_colour[0] != roi:
            try:  # through the loader: its threads read the same file
                colour = region_colour(self.loader, self.roi_rect0(roi))
            except Exception:  # noqa: BLE001 (a damaged region: the box says so, the view goes on)
                colour = None
            self._roi_colour = (roi, colour)
        return self._roi_colour[1]

    def roi_text(self, roi: Segment) -> str:
        """Area (mm² from the slide's pixel size, else level-0 pixels) and mean colour of the ROI."""
        x, y, w, h = self.roi_rect0(roi)
        mpp = self._mpp()
        area = f"{w * h * mpp[0] * mpp[1] / 1e6:.4g} mm\u00b2" if mpp else f"{w * h:.0f} px\u00b2 (level 0)"
        colour = self.roi_colour(roi)
        shown = "unreadable" if colour is None else "RGB " + " ".join(f"{v:.0f}" for v in colour.rgb)
        return f"{area}\nmean {shown}"

    def readout(self, position: QPointF) -> str:
        """Where the cursor is on the slide (level-0 pixels, and µm when the pixel size is known)
        and the stored colour there (from the sharpest tile in memory, else the thumbnail);
        "" off the slide."""
        if self.loader is None:
            return ""
        x0, y0 = self.to_level0(position)
        width0, height0 = self.size0
        if not (0.0 <= x0 < width0 and 0.0 <= y0 < height0):
            return ""
        text = f"x {int(x0)}, y {int(y0)} px"
        mpp = self._mpp()
        if mpp is not None:
            text += f" \u00b7 {x0 * mpp[0]:.1f}, {y0 * mpp[1]:.1f} \u00b5m"
        red, green, blue = self.colour_at(x0, y0)
        return f"{text}  RGB {red} {green} {blue}"

    def colour_at(self, x0: float, y0: float) -> tuple[int, int, int]:
        """The stored colour at level-0 ``(x0, y0)``: the sharpest cached tile's, else the thumbnail's."""
        grid, cache = self.loader.grid, self.loader.cache
        for level in range(self.level_shown(), grid.levels):
            for key in grid.tiles_in_view(level, (x0, y0, 1e-6, 1e-6)):
                tile = cache.peek(key)
                if tile is not None:
                    tx, ty, tw, th = grid.rect0(key)
                    col = min(int((x0 - tx) * tile.width() / tw), tile.width() - 1)
                    row = min(int((y0 - ty) * tile.height() / th), tile.height() - 1)
                    colour = tile.pixelColor(col, row)
                    return colour.red(), colour.green(), colour.blue()
        row, col = self._level0_to_thumbnail(x0, y0)
        r = min(max(int(round(row)), 0), self._thumbnail.height() - 1)
        c = min(max(int(round(col)), 0), self._thumbnail.width() - 1)
        colour = self._thumbnail.pixelColor(c, r)
        return colour.red(), colour.green(), colour.blue()

    def _set_cursor_text(self, text: str) -> None:
        if text != self.cursor_text:
            self.cursor_text = text
            self.cursor_moved.emit(text)
            self.update()

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
        if self.annotation.tool not in PAINT_TOOLS and self._press_marks(button, position):
            return
        self._drag_button, self._drag_start, self._drag_centre = button, position, QPointF(self._centre)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.loader is None:
            return
        position = event.position()
        self._set_cursor_text(self.readout(position))
        if self._minimap_drag:
            self._centre_on_minimap(position)
        elif self._drag_marks(*self.widget_to_image(position)):
            return
        elif self._drag_button in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            delta = position - self._drag_start
            self.set_view(self._scale, self._drag_centre - delta / self._scale)

    def leaveEvent(self, _event: object) -> None:  # noqa: N802
        self._set_cursor_text("")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._minimap_drag = False
        if self._release_marks(event):
            return
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
        elif self._mark_key(key):
            pass
        elif key in pans:
            dx, dy = pans[key]
            step = KEY_PAN / self._scale
            self.set_view(self._scale, self._centre + QPointF(dx * self.width() * step, dy * self.height() * step))
        else:
            super().keyPressEvent(event)


#: Windowed tiles kept for the present window, oldest dropped first (384 RGB tiles of 256 x 256
#: are about 75 MB); all are made again after a window change.
WINDOWED_TILES = 384


def windowed_image(image: QImage, lut: np.ndarray, channel: int | None = None) -> QImage:
    """An RGB image with every channel passed through ``lut`` (``(256,)`` uint8: a window and
    perhaps an inversion, the same for red, green and blue as ``render_slice`` windows colour);
    with ``channel`` (0, 1, 2) that channel alone, as grey."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), np.uint8, count=stride * height).reshape(height, stride)
    values = rows[:, : 3 * width].reshape(height, width, 3)
    if channel is not None:
        values = np.repeat(values[..., channel : channel + 1], 3, axis=2)
    out = np.ascontiguousarray(lut[values])
    return QImage(out.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
