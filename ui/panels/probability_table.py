"""A table of class probabilities whose percentages are never clipped.

Each percentage is its own non-wrapping label, so the layout gives it its full width (a rich-text
table in a wrapping label is cut at the label's edge: "99." for "99.9%"). The model's answer (the
most likely class) is bold; the class whose map is on screen carries a marker.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

MAP_MARKER = "\u25c0 map"


class ProbabilityTable(QWidget):
    """Rows of (class, percentage, marker)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(8)
        self._grid.setVerticalSpacing(1)
        self._grid.setColumnStretch(0, 1)
        self.rows: list[tuple[QLabel, QLabel, QLabel]] = []

    def set_probabilities(self, probabilities: Mapping[str, float], shown: str | None) -> None:
        """Show ``probabilities`` (class -> probability), the top class bold, ``shown`` marked."""
        for labels in self.rows:
            for label in labels:
                self._grid.removeWidget(label)
                label.deleteLater()
        self.rows = []
        top = max(probabilities, key=probabilities.get) if probabilities else None
        for row, (name, probability) in enumerate(probabilities.items()):
            labels = (QLabel(name), QLabel(percent(probability)), QLabel(MAP_MARKER if name == shown else ""))
            labels[0].setWordWrap(True)
            labels[1].setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            labels[2].setStyleSheet("color: #9fb7cc")
            for column, label in enumerate(labels):
                font = label.font()
                font.setBold(name == top and column < 2)
                label.setFont(font)
                self._grid.addWidget(label, row, column)
            self.rows.append(labels)
        self.setVisible(bool(probabilities))

    def text(self) -> str:
        """The rows as plain text, one per line: "name<TAB>percentage[<TAB>marker]"."""
        return "\n".join("\t".join(label.text() for label in labels if label.text()) for labels in self.rows)


def percent(probability: float) -> str:
    """A probability as a percentage with one decimal: "99.9%", "0.1%", "<0.1%" for less."""
    value = 100.0 * float(probability)
    if 0.0 < value < 0.05:
        return "<0.1%"
    return f"{value:.1f}%"
