"""The review column's scrolling: never clipped sideways, and the wheel scrolls it.

Two things went wrong in a column of controls inside a ``QScrollArea``: when the column grew
taller than the window, the vertical scroll bar took its width from the content, whose right edge
(the percentages) was cut off; and the wheel, meant to scroll the column, changed whichever combo
box or spin box passed under the pointer (a mark was silently relabelled). ``ReviewScrollArea``
asks for the content's minimum width plus the scroll bar's; ``guard_wheel`` makes value widgets
ignore the wheel unless the reader has focused them (clicked or tabbed in), and hands the turn
to the scroll area instead.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox, QApplication, QComboBox, QScrollArea, QWidget,
)

_GUARDED = (QComboBox, QAbstractSpinBox, QAbstractSlider)


class ReviewScrollArea(QScrollArea):
    """A vertically scrolling column that is always wide enough for its content and the bar."""

    def __init__(self, column: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(column)
        column.installEventFilter(self)  # its minimum width changes with what it shows

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the dock asks our minimum again
        return super().eventFilter(watched, event)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        hint = super().minimumSizeHint()
        column = self.widget()
        if column is None:
            return hint
        bar = self.verticalScrollBar().sizeHint().width()
        frame = 2 * self.frameWidth()
        return QSize(max(hint.width(), column.minimumSizeHint().width() + bar + frame), hint.height())

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.minimumSizeHint().width()), hint.height())


class WheelGuard(QObject):
    """Event filter: an unfocused value widget passes the wheel to the scroll area around it."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, _GUARDED) or watched.hasFocus():
            return False
        area = _scroll_area_around(watched)
        if area is not None:
            QApplication.sendEvent(area.viewport(), event)
        return True  # the value stays as it was


def guard_wheel(root: QWidget) -> WheelGuard:
    """Guard every combo box, spin box and slider under ``root`` (they take focus by click or Tab
    only, never by the wheel). Returns the guard, parented to ``root``."""
    guard = root.findChild(WheelGuard) or WheelGuard(root)
    for widget in root.findChildren(QWidget):
        if isinstance(widget, _GUARDED):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            widget.installEventFilter(guard)
    return guard


def _scroll_area_around(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and not isinstance(parent, _GUARDED):
            return parent
        parent = parent.parentWidget()
    return None
