"""The reader's unsaved marks: label picker, list, delete (undo with Ctrl+Z)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QHBoxLayout, QListWidget, QPushButton, QVBoxLayout, QWidget,
)

from ui.backend import AnnotationDraft
from ui.model import ViewerState


def describe(number: int, mark: AnnotationDraft) -> str:
    """One list line: number, kind, slice (1-based), position in image pixels, label."""
    if mark.kind == "point":
        (row, col), = mark.points
        where = f"row {row:.0f}, col {col:.0f}"
    elif mark.kind == "mask":
        where = f"{mark.mask.area} px painted"
    elif mark.kind in ("box", "ellipse"):
        (top, left), (bottom, right) = mark.points
        where = f"rows {top:.0f}\u2013{bottom:.0f}, cols {left:.0f}\u2013{right:.0f}"
    else:
        rows = [r for r, _ in mark.points]
        cols = [c for _, c in mark.points]
        where = (f"{len(mark.points)} vertices, rows {min(rows):.0f}\u2013{max(rows):.0f}, "
                 f"cols {min(cols):.0f}\u2013{max(cols):.0f}")
    label = mark.label or "(no label)"
    dot = " \u00b7 "
    return f"{number}. {mark.kind.capitalize()}{dot}slice {mark.slice_index + 1}{dot}{where}{dot}{label}"


class AnnotationsPanel(QWidget):
    """Lists the drafts of ``AnnotationModel``; picking a label relabels the selected mark and labels new ones.

    Selecting a mark jumps to its slice; Delete (button or key) removes it.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.annotation = state.display, state.annotation
        self.label_box = QComboBox()
        self.label_box.setToolTip("Label for the next mark, and for the selected one")
        self.list = QListWidget()
        self.list.setMinimumHeight(60)
        self.list.setMaximumHeight(110)
        self.delete_button = QPushButton("Delete")
        self.clear_button = QPushButton("Delete all")
        form = QFormLayout()
        form.addRow("Label", self.label_box)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        QShortcut(QKeySequence.StandardKey.Delete, self.list, self.delete_selected,
                  context=Qt.ShortcutContext.WidgetShortcut)
        self.label_box.currentTextChanged.connect(self._label_picked)
        self.list.currentRowChanged.connect(self._row_picked)
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button.clicked.connect(self.annotation.clear)
        self.annotation.events.drafts.connect(self._show)
        self._show(self.annotation.drafts)

    def set_labels(self, labels: list[str]) -> None:
        """Offer these labels; the first becomes the label of new marks."""
        self.label_box.blockSignals(True)
        self.label_box.clear()
        self.label_box.addItems(labels)
        self.label_box.blockSignals(False)
        self.annotation.label = labels[0] if labels else ""

    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.annotation.drafts):
            self.annotation.remove(row)

    def _label_picked(self, label: str) -> None:
        self.annotation.label = label
        row = self.list.currentRow()
        if 0 <= row < len(self.annotation.drafts):
            self.annotation.relabel(row, label)

    def _row_picked(self, row: int) -> None:
        if 0 <= row < len(self.annotation.drafts):
            mark = self.annotation.drafts[row]
            self.display.slice_index = mark.slice_index
            self.label_box.blockSignals(True)
            self.label_box.setCurrentText(mark.label)
            self.label_box.blockSignals(False)
        self.delete_button.setEnabled(row >= 0)

    def _show(self, marks: tuple[AnnotationDraft, ...]) -> None:
        previous = self.list.count()
        selected = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        self.list.addItems([describe(n, mark) for n, mark in enumerate(marks, start=1)])
        if len(marks) > previous:  # a new mark: select it so a label pick applies to it
            self.list.setCurrentRow(len(marks) - 1)
        elif marks:
            self.list.setCurrentRow(min(max(selected, 0), len(marks) - 1))
        self.list.blockSignals(False)
        self.delete_button.setEnabled(bool(marks))
        self.clear_button.setEnabled(bool(marks))
