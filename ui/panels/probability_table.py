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

    def set_probabilities(self, probabilities: Mapping[str, float], shown: str | None, answer: str | None = None) -> None:
        """Show ``probabilities`` (class -> probability), the answer bold, ``shown`` marked.

        ``answer`` is the class the model's answer names when a rule other than the largest
        figure decides it (a slide's finding present in enough tiles while benign tissue is the
        larger share); None: the top class. The rows' labels are kept while the classes stay the
        same (a slice change only rewrites their text)."""
        names = list(probabilities)
        if [labels[0].text() for labels in self.rows] != names:
            self._build(names)
        top = answer if answer in probabilities else (max(probabilities, key=probabilities.get) if probabilities else None)
        for (name_label, value_label, marker), name in zip(self.rows, names):
            value_label.setText(percent(probabilities[name]))
            marker.setText(MAP_MARKER if name == shown else "")
            for label in (name_label, value_label):
                if label.font().bold() != (name == top):
                    font = label.font()
                    font.setBold(name == top)
                    label.setFont(font)
        self.setVisible(bool(probabilities))

    def _build(self, names: list[str]) -> None:
        for labels in self.rows:
            for label in labels:
                self._grid.removeWidget(label)
                label.deleteLater()
        self.rows = []
        for row, name in enumerate(names):
            labels = (QLabel(name), QLabel(), QLabel())
            labels[0].setWordWrap(True)
            labels[1].setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            labels[2].setStyleSheet("color: #9fb7cc")
            for column, label in enumerate(labels):
                self._grid.addWidget(label, row, column)
            self.rows.append(labels)

    def text(self) -> str:
        """The rows as plain text, one per line: "name<TAB>percentage[<TAB>marker]"."""
        return "\n".join("\t".join(label.text() for label in labels if label.text()) for labels in self.rows)


def percent(probability: float) -> str:
    """A probability as a percentage with one decimal: "99.9%", "0.1%", "<0.1%" for less."""
    value = 100.0 * float(probability)
    if 0.0 < value < 0.05:
        return "<0.1%"
    return f"{value:.1f}%"
