"""The reading form (diagnosis, confidence 1-5, comment, Save) and the reader's saved readings.

A saved reading can be opened again from the list: its marks return to the image (dashed) with
the analysis it was made on, and a banner above the form says which reading is on show.
"""

from __future__ import annotations

from html import escape

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
    saved_closed = Signal()

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
        self.saved_banner = QLabel()
        self.saved_banner.setWordWrap(True)
        self.saved_banner.setTextFormat(Qt.TextFormat.RichText)
        self.saved_banner.setStyleSheet("background: #2a3540; border: 1px solid #4a90c8; padding: 4px;")
        self.close_saved_button = QPushButton("Hide saved reading")
        self.close_saved_button.clicked.connect(self.saved_closed)
        banner = QHBoxLayout()
        banner.addWidget(self.saved_banner, 1)
        banner.addWidget(self.close_saved_button, 0, Qt.AlignmentFlag.AlignTop)
        form = QFormLayout()
        form.addRow("Diagnosis", self.diagnosis)
        form.addRow("Confidence", confidence_row)
        form.addRow("Comment", self.comment)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(banner)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        layout.addWidget(self.save_button)
        self.diagnosis.currentIndexChanged.connect(self._changed)
        self.confidence.idToggled.connect(lambda _id, on: on and self._changed())
        self.comment.textChanged.connect(self._changed)
        self.save_button.clicked.connect(self.save_requested)
        self.show_saved(None)
        self._changed()

    def show_saved(self, reading: SavedReading | None, analysis_shown: bool = True) -> None:
        """Say which saved reading's marks are on the image (None: none). The form stays free
        for a new reading: a saved reading is locked, a change of mind is a new reading."""
        self.saved_banner.setVisible(reading is not None)
        self.close_saved_button.setVisible(reading is not None)
        if reading is None:
            self.saved_banner.clear()
            return
        marks = len(reading.annotations)
        shown = ("with the analysis it was made on" if reading.prediction_id is not None and analysis_shown
                 else "made without an analysis" if reading.prediction_id is None
                 else "its analysis could not be loaded")
        comment = f"<br><i>{escape(reading.comment)}</i>" if reading.comment else ""
        self.saved_banner.setText(
            f"<b>Saved reading of {escape(reading.created_at)}</b>: {escape(reading.diagnosis)}, "
            f"confidence {reading.confidence}; {marks} mark{'s' if marks != 1 else ''} "
            f"(dashed on the image), {shown}.{comment}")

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
    """The signed-in reader's saved readings of the open case, newest first, each on wrapped
    lines (never cut off); clicking one asks to show it again.

    Signals:
        reopen_requested(SavedReading): the reader clicked a saved reading.
    """

    reopen_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.readings: list[SavedReading] = []
        self.setWordWrap(True)
        self.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setToolTip("Click a saved reading to see its marks and the analysis it was made on")
        self.itemClicked.connect(self._clicked)
        self.itemActivated.connect(self._clicked)
        self.set_readings([])

    def set_readings(self, readings: list[SavedReading]) -> None:
        self.readings = list(readings)
        self.clear()
        if not readings:
            self.addItem("No saved readings of this case yet.")
            self.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
            return
        for reading in readings:
            self.addItem(describe_reading(reading))
            self.item(self.count() - 1).setToolTip(describe_reading(reading))

    def _clicked(self, item) -> None:
        row = self.row(item)
        if 0 <= row < len(self.readings):
            self.reopen_requested.emit(self.readings[row])
