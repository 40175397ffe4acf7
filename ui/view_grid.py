"""``ViewGrid``: the main slice view and, while comparing, up to three more methods' views.

One method fills the grid; two sit side by side; three or four make a 2 x 2 grid (first method at
the top left, then reading order). Every view follows one ``ViewerState`` (slice, window, class,
opacity, colour map, threshold, normalisation); zoom and pan are linked here, so the same anatomy
is under the same screen position in every view. While comparing, each view has a close button
that removes its method (``OverlayModel.remove_method``) and the grid closes up.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QGridLayout, QToolButton, QWidget

from engine.explain.names import display_name
from ui.model import MAP_ROLES, ViewerState
from ui.slice_view import SliceView

_CLOSE_SIZE = 22  # the close button's side, in pixels, at a view's top right corner


def grid_cells(count: int) -> tuple[tuple[int, int], ...]:
    """The ``(row, column)`` of each of ``count`` views: one row for one or two, 2 x 2 for more."""
    if not 1 <= count <= len(MAP_ROLES):
        raise ValueError(f"a view grid shows 1 to {len(MAP_ROLES)} views, not {count}")
    return ((0, 0), (0, 1))[:count] if count <= 2 else ((0, 0), (0, 1), (1, 0), (1, 1))[:count]


class ViewGrid(QWidget):
    """The views of the shown analyses, one per method, in a grid that follows the comparison.

    Attributes:
        main: the view of the first analysis (always shown).
        views: every view, in role order (``main``, ``compare``, ``compare2``, ``compare3``);
            those past the shown methods are hidden.
        compare: the view of the first compared method (``views[1]``).
        close_buttons: per view, the button that removes its method (shown while comparing).
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlay = state.overlay
        self.views = tuple(SliceView(state, role=role) for role in MAP_ROLES)
        self.main, self.compare = self.views[0], self.views[1]
        self.close_buttons = tuple(self._close_button(view) for view in self.views)
        self._removable = True
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        for view in self.views:
            view.viewport_changed.connect(lambda source=view: self._link(source))
        self.overlay.events.compared.connect(self._relayout)
        self.overlay.events.analysis.connect(self._relayout)
        self._relayout()

    @property
    def removable(self) -> bool:
        """Whether the reader may remove a method from the comparison (a study's pairs: no)."""
        return self._removable

    @removable.setter
    def removable(self, removable: bool) -> None:
        self._removable = bool(removable)
        self._relayout()

    def shown_views(self) -> tuple[SliceView, ...]:
        """The views on screen, in role order."""
        return self.views[: max(1, len(self.overlay.shown_analyses))]

    def _close_button(self, view: SliceView) -> QToolButton:
        button = QToolButton(view)
        button.setText("\u2715")
        button.setAutoRaise(True)
        button.setFixedSize(_CLOSE_SIZE, _CLOSE_SIZE)
        button.setCursor(Qt.CursorShape.ArrowCursor)
        button.clicked.connect(lambda: self._remove(view))
        button.hide()
        view.caption_inset = _CLOSE_SIZE + 4  # the method's caption stays clear of the button
        view.installEventFilter(self)
        return button

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Resize and watched in self.views:
            button = self.close_buttons[self.views.index(watched)]
            button.move(watched.width() - _CLOSE_SIZE - 2, 2)
        return super().eventFilter(watched, event)

    def _remove(self, view: SliceView) -> None:
        analysis = self.overlay.analysis_for(view.role)
        if analysis is not None and len(self.overlay.shown_analyses) > 1:
            self.overlay.remove_method(analysis.method)

    def _relayout(self, *_args: object) -> None:
        shown = self.shown_views()
        for view in self.views:
            self._layout.removeWidget(view)
        for view, (row, column) in zip(shown, grid_cells(len(shown))):
            self._layout.addWidget(view, row, column)
        rows = 2 if len(shown) > 2 else 1
        for index in range(2):
            self._layout.setRowStretch(index, 1 if index < rows else 0)
            self._layout.setColumnStretch(index, 1 if index < min(len(shown), 2) else 0)
        comparing = len(shown) > 1
        for view, button in zip(self.views, self.close_buttons):
            on_screen = view in shown
            if on_screen and view is not self.main and not view.isVisible():
                view.set_viewport(*self.main.viewport())
            view.setVisible(on_screen)
            analysis = self.overlay.analysis_for(view.role)
            button.setVisible(on_screen and comparing and self._removable)
            if analysis is not None:
                button.setToolTip(f"Remove {display_name(analysis.method)} from the comparison")

    def _link(self, source: SliceView) -> None:
        for view in self.views:
            if view is not source:
                view.set_viewport(*source.viewport())

    def fit(self) -> None:
        """Show the whole image in every view."""
        for view in self.views:
            view.fit()
