"""``ViewGrid``: the main slice view and, while comparing, the second method's view beside it.

Both views follow one ``ViewerState`` (slice, window, class, opacity); zoom and pan are linked
here, so the same anatomy is under the same screen position in both.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QWidget

from ui.model import ViewerState
from ui.slice_view import SliceView


class ViewGrid(QWidget):
    """Left: the first analysis's map; right (while comparing): the compared method's.

    Attributes:
        main: the view of the first analysis (always shown).
        compare: the view of the compared method (hidden unless comparing).
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.main = SliceView(state)
        self.compare = SliceView(state, role="compare")
        self.compare.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.main, 1)
        layout.addWidget(self.compare, 1)
        self.views = (self.main, self.compare)
        for view in self.views:
            view.viewport_changed.connect(lambda source=view: self._link(source))
        state.overlay.events.compare_analysis.connect(self._on_compare)

    def _on_compare(self, analysis: object) -> None:
        self.compare.setVisible(analysis is not None)
        if analysis is not None:
            self.compare.set_viewport(*self.main.viewport())

    def _link(self, source: SliceView) -> None:
        for view in self.views:
            if view is not source:
                view.set_viewport(*source.viewport())

    def fit(self) -> None:
        """Show the whole image in every view."""
        for view in self.views:
            view.fit()
