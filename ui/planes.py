"""Three linked planes: ``PlaneView`` shows one plane through the volume, ``PlanesLayout`` the three.

A ``PlaneView`` is a ``SliceView`` that shows the axial (item), coronal or sagittal plane through
the cursor of ``ViewerState.planes``: the grey image windowed like the single view, the CAM
resliced with the same look, the anatomical letters on all four sides, and a crosshair where the
other two planes cut it. Its pixels keep their physical size (the coronal and sagittal planes use
the slice spacing), so anatomy is not stretched.

Mouse and keys in a plane: a left click or drag (with Navigate) moves the cursor there and the
other planes follow; the wheel, Up/Down and PageUp/PageDown step this plane; Ctrl+wheel zooms,
middle-drag pans and right-drag sets the window as in the single view. Marks and measures belong
to the axial plane: a drawing tool works there as in the single view, and in the coronal or
sagittal plane a click says so in the status bar instead.

``ViewModes`` holds the single view and the three planes and shows the one the state asks for;
``three_planes_action`` is the View menu's switch, off (with the reason as its tooltip) for
clips, patches, slides and single images.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeyEvent, QKeySequence, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QGridLayout, QMenu, QStackedWidget, QWidget

from engine.imaging.render import OverlaySpec
from ui.model import PLANES, Plane, PlanesModel, ViewerState
from ui.model.planes import to_voxel
from ui.slice_view import PAGE_STEP, SliceView

#: Each plane's colour: its crosshair line in the other planes, and its caption.
PLANE_COLOURS: dict[Plane, QColor] = {
    "axial": QColor(90, 160, 255),  # blue
    "coronal": QColor(255, 100, 210),  # pink
    "sagittal": QColor(120, 230, 90),  # green
}
#: The View menu shortcut that switches between the single view and the three planes.
THREE_PLANES_KEY = "V"
_CROSSHAIR_GAP = 6.0  # screen pixels left open around the cursor so the anatomy under it shows
_STEP_KEYS = {Qt.Key.Key_Up: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_Left: -1,
              Qt.Key.Key_PageUp: PAGE_STEP, Qt.Key.Key_PageDown: -PAGE_STEP}


class PlaneView(SliceView):
    """One plane through the volume at the cursor of ``state.planes``, with its crosshair.

    Args:
        state: the viewer state (its ``planes`` holds the cursor).
        plane: ``"axial"`` (the item plane, with marks and measures), ``"coronal"`` or ``"sagittal"``.
        parent: optional parent widget.

    Signals:
        message(str): something to tell the reader in the status bar (a drawing tool used
            outside the axial plane).
    """

    message = Signal(str)

    def __init__(self, state: ViewerState, plane: Plane, parent: QWidget | None = None) -> None:
        super().__init__(state, "main", parent)
        if plane not in PLANES:
            raise ValueError(f"no plane {plane!r}; planes are {PLANES}")
        self.plane = plane
        self.planes: PlanesModel = state.planes
        self.setMinimumSize(96, 96)  # two stacked planes need no more room than the single view
        self._steering = False  # the left button is down and drags the cursor
        self._shown_index = -1
        self.planes.events.cursor.connect(self._on_cursor)

    # -- what is shown --------------------------------------------------------------------------
    def plane_grid(self) -> tuple[int, int, float, float]:
        axes = self.planes.axes(self.plane)
        return axes.shape[0], axes.shape[1], axes.spacing[0], axes.spacing[1]

    def shown_image(self) -> np.ndarray | None:
        self._shown_index = self.planes.index(self.plane)
        return self.planes.image(self.plane)

    def shown_overlay(self) -> OverlaySpec | None:
        return self.planes.overlay_spec(self.plane, self.role)

    def edge_letters(self) -> tuple[str, str, str, str] | None:
        return self.planes.letters(self.plane)

    def position_text(self) -> str:
        volume = self.display.volume
        fixed = self.planes.axes(self.plane).fixed
        return (f"{self.display.channel.upper()}\n{self.planes.title(self.plane)} "
                f"{self.planes.index(self.plane) + 1} / {volume.shape[fixed]}")

    def readout(self, row: float, col: float) -> str:
        """The read-out at plane ``(row, col)``: the voxel (slice numbered from 1), its value and
        its patient position; "" off the image."""
        voxel = to_voxel(self.planes.axes(self.plane), self.planes.index(self.plane), row, col)
        value = self.planes.value_at(voxel)
        if value is None:
            return ""
        item, r, c = (int(np.floor(v + 0.5)) for v in voxel)
        shown = " ".join(f"{v:.4g}" for v in value) if isinstance(value, tuple) else f"{value:.4g}"
        text = f"row {r}, col {c}, {self.display.item_word()} {item + 1}  value {shown}"
        position = self.planes.patient_position((item, r, c))
        if position is not None:
            text += "\nLPS {:.1f}, {:.1f}, {:.1f} mm".format(*position)
        return text

    def _on_cursor(self, _voxel: object) -> None:
        if self.display.volume is None:
            return
        if self.plane != "axial" and self.planes.index(self.plane) != self._shown_index:
            self._rerender()  # this plane moved: new pixels (the axial one follows the slice index itself)
        else:
            self.update()  # another plane moved: only the crosshair

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: object) -> None:  # noqa: N802 (Qt name)
        if self.plane == "axial" or self._image is None or self.display.volume is None:
            super().paintEvent(event)  # the item plane keeps its marks and measures
        else:
            painter = QPainter(self)
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            painter.drawImage(self.image_rect(), self._image)
            self._draw_text(painter)
            painter.end()
        if self._image is not None and self.display.volume is not None:
            painter = QPainter(self)
            self._draw_crosshair(painter)
            painter.end()

    def crosshair_position(self) -> QPointF:
        """Widget position of the cursor: where the two crosshair lines meet."""
        return self.image_to_widget(*self.planes.crosshair(self.plane))

    def _draw_crosshair(self, painter: QPainter) -> None:
        """A horizontal line where the plane fixed along the screen's down axis cuts this one, a
        vertical one where the plane fixed along its across axis does, each in that plane's colour."""
        axes = self.planes.axes(self.plane)
        rect = self.image_rect()
        centre = self.crosshair_position()
        gap = _CROSSHAIR_GAP
        painter.setPen(QPen(PLANE_COLOURS[PLANES[axes.down]], 1.0))
        painter.drawLine(QPointF(rect.left(), centre.y()), QPointF(centre.x() - gap, centre.y()))
        painter.drawLine(QPointF(centre.x() + gap, centre.y()), QPointF(rect.right(), centre.y()))
        painter.setPen(QPen(PLANE_COLOURS[PLANES[axes.across]], 1.0))
        painter.drawLine(QPointF(centre.x(), rect.top()), QPointF(centre.x(), centre.y() - gap))
        painter.drawLine(QPointF(centre.x(), centre.y() + gap), QPointF(centre.x(), rect.bottom()))

    # -- input ----------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.display.volume is None or event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        tool = self.annotation.tool
        if self.plane == "axial" and (tool != "navigate" or self.mark_at(event.position()) >= 0):
            super().mousePressEvent(event)  # draw, or pick and move a mark, as in the single view
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if tool != "navigate":
            self.message.emit(f"Marks and measures are drawn in the axial plane only: the "
                              f"{tool} tool does nothing in the {self.plane} plane")
            return
        row, col = self.widget_to_image(event.position())
        if self._inside(row, col):
            self._steering = True
            self.planes.move_in_plane(self.plane, row, col)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        super().mouseMoveEvent(event)
        if self._steering and self.display.volume is not None:
            self.planes.move_in_plane(self.plane, *self._clamp_inside(*self.widget_to_image(event.position())))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._steering and event.button() == Qt.MouseButton.LeftButton:
            self._steering = False
            return
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if (self.plane == "axial" or self.display.volume is None
                or event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            super().wheelEvent(event)
            return
        if steps:
            self.planes.step(self.plane, int(np.sign(steps) * max(1, round(abs(steps)))))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if self.plane != "axial" and self.display.volume is not None and event.key() in _STEP_KEYS:
            self.planes.step(self.plane, _STEP_KEYS[event.key()])
        else:
            super().keyPressEvent(event)


class PlanesLayout(QWidget):
    """The axial plane large on the left, the coronal and sagittal planes stacked on the right.

    Attributes:
        views: the three ``PlaneView``s by plane name.

    Signals:
        message(str): a plane's message for the status bar.
    """

    message = Signal(str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views: dict[Plane, PlaneView] = {plane: PlaneView(state, plane) for plane in PLANES}
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.views["axial"], 0, 0, 2, 1)
        layout.addWidget(self.views["coronal"], 0, 1)
        layout.addWidget(self.views["sagittal"], 1, 1)
        layout.setColumnStretch(0, 2)
        layout.setColumnStretch(1, 1)
        for view in self.views.values():
            view.message.connect(self.message)

    def fit(self) -> None:
        """Show the whole image in every plane."""
        for view in self.views.values():
            view.fit()


class ViewModes(QStackedWidget):
    """The single view (``single``, the main view and the compared one) or the three planes,
    whichever ``state.planes.three_planes`` asks for. Opening a comparison of two CAM methods
    goes back to the single view, where the two are shown side by side.

    Args:
        state: the viewer state.
        single: the widget of the single-plane mode (``ui.view_grid.ViewGrid``).
        parent: optional parent widget.

    Attributes:
        single: as given.
        planes: the ``PlanesLayout``.

    Signals:
        message(str): something to say in the status bar.
    """

    message = Signal(str)

    def __init__(self, state: ViewerState, single: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.single = single
        self.planes = PlanesLayout(state)
        self.addWidget(single)
        self.addWidget(self.planes)
        self.planes.message.connect(self.message)
        state.planes.events.three_planes.connect(self._on_mode)
        state.annotation.events.tool.connect(self._on_tool)
        state.overlay.events.compared.connect(self._on_compare)

    def _on_mode(self, three_planes: bool) -> None:
        self.setCurrentWidget(self.planes if three_planes else self.single)
        if three_planes:
            self.planes.views["axial"].setFocus()

    def _on_tool(self, tool: str) -> None:
        if self.state.planes.three_planes and tool != "navigate":
            self.message.emit(f"The {tool} tool draws in the axial plane (left) only")

    def _on_compare(self, analyses: tuple) -> None:
        if analyses and self.state.planes.three_planes:
            self.state.planes.three_planes = False  # the methods are compared side by side in one plane
            self.message.emit("Back to one plane: CAM methods are compared side by side there")

    def fit(self) -> None:
        """Show the whole image in every view of both modes."""
        self.single.fit()
        self.planes.fit()


def three_planes_action(menu: QMenu, planes: PlanesModel) -> QAction:
    """Add the checkable "Three planes" switch (``THREE_PLANES_KEY``) to ``menu``; it is off for a
    volume that cannot be shown in three planes, with the reason as its tooltip."""
    action = menu.addAction("Three &planes (axial, coronal, sagittal)")
    action.setShortcut(QKeySequence(THREE_PLANES_KEY))
    action.setCheckable(True)
    menu.setToolTipsVisible(True)

    def follow_volume(available: bool) -> None:
        action.setEnabled(available)
        reason = planes.problem()
        action.setToolTip(reason or "Show the volume in three linked planes, or back in one")
        action.setStatusTip(reason)

    def toggled(on: bool) -> None:
        if on != planes.three_planes and planes.available:
            planes.three_planes = on
        action.setChecked(planes.three_planes)

    action.toggled.connect(toggled)
    planes.events.three_planes.connect(lambda on: action.setChecked(on))
    planes.events.available.connect(follow_volume)
    follow_volume(planes.available)
    return action
