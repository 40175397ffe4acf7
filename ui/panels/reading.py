"""The reading form (diagnosis, confidence 1-5, comment, Save) and the reader's saved readings."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QComboBox, QFormLayout, QHBoxLayout, QLabel, QListWidget, QPlainTextEdit,
    QPushButton, QVBoxLayout, QWidget,
)

from ui.backend import SavedReading

CONFIDENCE_HINTS = {1: "very unsure", 2: "unsure", 3: "moderately sure", 4: "sure", 5: "certain"}


class ReadingForm(QWidget):
    """Collects one reading. Save is enabled once a diagnosis and a confidence are chosen.

    Signals:
        save_requested(): the reader pressed Save with a complete form.
        edited(): any field changed.
    """

    save_requested = Signal()
    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.diagnosis = QComboBox()
        self.diagnosis.setPlaceholderText("Choose a diagnosis\u2026")
        self.confidence = QButtonGroup(self)
        confidence_row = QHBoxLayout()
        confidence_row.setSpacing(2)
        for level in range(1, 6):
            button = QPushButton(str(level))
            button.setCheckable(True)
            button.setToolTip(f"{level} = {CONFIDENCE_HINTS[level]}")
            button.setFixedWidth(34)
            self.confidence.addButton(button, level)
            confidence_row.addWidget(button)
        self.confidence_hint = QLabel()
        confidence_row.addWidget(self.confidence_hint, 1)
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("Findings, reasons, doubts (optional)")
        self.comment.setFixedHeight(64)
        self.save_button = QPushButton("Save reading")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Diagnosis", self.diagnosis)
        form.addRow("Confidence", confidence_row)
        form.addRow("Comment", self.comment)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        layout.addWidget(self.save_button)
        self.diagnosis.currentIndexChanged.connect(self._changed)
        self.confidence.idToggled.connect(lambda _id, on: on and self._changed())
        self.comment.textChanged.connect(self._changed)
        self.save_button.clicked.connect(self.save_requested)
        self._changed()

    def set_diagnoses(self, names: list[str]) -> None:
        self.diagnosis.blockSignals(True)
        self.diagnosis.clear()
        self.diagnosis.addItems(names)
        self.diagnosis.setCurrentIndex(-1)
        self.diagnosis.blockSignals(False)
        self._changed()

    def values(self) -> tuple[str, int, str]:
        """``(diagnosis, confidence, comment)``; confidence 0 while none is chosen."""
        confidence = max(self.confidence.checkedId(), 0)
        return self.diagnosis.currentText(), confidence, self.comment.toPlainText().strip()

    def is_complete(self) -> bool:
        diagnosis, confidence, _ = self.values()
        return bool(diagnosis) and 1 <= confidence <= 5

    def is_dirty(self) -> bool:
        """True when any field holds something not yet saved."""
        diagnosis, confidence, comment = self.values()
        return bool(diagnosis or confidence or comment)

    def reset(self) -> None:
        """Empty the form (after saving or when another case opens)."""
        for widget in (self.diagnosis, self.comment):
            widget.blockSignals(True)
        self.diagnosis.setCurrentIndex(-1)
        self.comment.clear()
        self.confidence.setExclusive(False)
        for button in self.confidence.buttons():
            button.setChecked(False)
        self.confidence.setExclusive(True)
        for widget in (self.diagnosis, self.comment):
            widget.blockSignals(False)
        self._changed()

    def _changed(self) -> None:
        _, confidence, _ = self.values()
        self.confidence_hint.setText(CONFIDENCE_HINTS.get(confidence, ""))
        complete = self.is_complete()
        self.save_button.setEnabled(complete)
        self.hint.setText("" if complete else "Choose a diagnosis and a confidence to save.")
        self.edited.emit()


def describe_reading(reading: SavedReading) -> str:
    """Two list lines: when, diagnosis, confidence and marks; then the comment."""
    marks = len(reading.annotations)
    first = (f"{reading.created_at} \u00b7 {reading.diagnosis} \u00b7 confidence {reading.confidence}"
             f" \u00b7 {marks} mark{'s' if marks != 1 else ''}")
    return f"{first}\n    {reading.comment}" if reading.comment else first


class SavedReadingsList(QListWidget):
    """The signed-in reader's saved readings of the open case, newest first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.readings: list[SavedReading] = []
        self.set_readings([])

    def set_readings(self, readings: list[SavedReading]) -> None:
        self.readings = list(readings)
        self.clear()
        if not readings:
            self.addItem("No saved readings of this case yet.")
            self.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
            return
        self.addItems([describe_reading(reading) for reading in readings])
