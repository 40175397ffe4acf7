"""One widget per kind of study question; each reports its answer the moment it is given.

``question_widget(question, state)`` builds the widget of a ``db.study_reader.QuestionView``.
Every widget has ``answered(question_id, value)`` (``None`` clears the answer), ``value()``,
``set_value(value)`` (shows a stored answer without reporting it), ``set_locked``, ``set_earlier``
(the reader's locked unaided answer, shown in the aided step) and ``flush()``: sliders, spin
boxes and text report after a short pause in typing or dragging, and ``flush`` reports at once
what is still pending (before a submit, a move to another case or closing the window).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QRadioButton,
    QSlider, QSpinBox, QVBoxLayout, QWidget,
)

from db.study_reader import QuestionView
from engine.imaging.mask_rle import MaskRLE
from ui.backend import AnnotationDraft
from ui.model import ViewerState

#: Milliseconds of quiet after which a dragged slider or typed text is stored.
SETTLE_MS = 600
CONFIDENCE_HINTS = {1: "guess", 2: "unsure", 3: "fairly sure", 4: "sure", 5: "certain"}
HELPFULNESS_ENDS = ("misleading", "very helpful")
PAIRWISE_TEXT = {"left": "A (left) is better", "right": "B (right) is better", "equal": "About equal"}


def describe_answer(kind: str, value: Any) -> str:
    """An answer in a few words (for the locked unaided answer shown in the aided step)."""
    if value is None:
        return "no answer"
    if kind == "multiple_choice":
        return ", ".join(value) or "none"
    if kind == "region":
        return f"{len(value)} mark{'s' if len(value) != 1 else ''}"
    if kind == "pairwise_explanation":
        return PAIRWISE_TEXT.get(value, str(value))
    if kind == "helpfulness":
        return f"{value:+d}"
    if kind == "free_text":
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "\u2026"
    return str(value)


def region_value(marks: tuple[AnnotationDraft, ...]) -> list[dict] | None:
    """The region answer of the drawn marks (None when there is none)."""
    if not marks:
        return None
    return [{"kind": m.kind, "slice_index": m.slice_index, "points": [list(p) for p in m.points], "label": m.label,
             **({"mask": m.mask.to_json()} if m.kind == "mask" else {})}
            for m in marks]


class QuestionWidget(QWidget):
    """The frame of every question: its prompt (a star when required), the body, the earlier
    answer and a warning line.

    Signals:
        answered(question_id, value): the reader gave (or, with None, cleared) an answer.
    """

    answered = Signal(int, object)

    def __init__(self, question: QuestionView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.question = question
        self._quiet = False  # set while a stored answer is shown: nothing is reported
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._report)
        star = " *" if question.required else ""
        self.prompt = QLabel(f"<b>{question.prompt}</b>{star}")
        self.prompt.setWordWrap(True)
        self.prompt.setToolTip("Required" if question.required else "Optional")
        self.body = QVBoxLayout()
        self.earlier = QLabel()
        self.earlier.setStyleSheet("color: #9fb7cc;")
        self.earlier.hide()
        self.warning = QLabel("Required: please answer.")
        self.warning.setStyleSheet("color: #ff8a80;")
        self.warning.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 4, 2, 4)
        layout.setSpacing(3)
        layout.addWidget(self.prompt)
        layout.addLayout(self.body)
        layout.addWidget(self.earlier)
        layout.addWidget(self.warning)

    # -- what subclasses implement -----------------------------------------------------------
    def value(self) -> Any:
        """The answer shown now, or None."""
        raise NotImplementedError

    def _show(self, value: Any) -> None:
        raise NotImplementedError

    def _inputs(self) -> list[QWidget]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def set_value(self, value: Any) -> None:
        """Show a stored answer (None: empty) without reporting it."""
        self._settle.stop()
        self._quiet = True
        try:
            self._show(value)
        finally:
            self._quiet = False
        self.mark_missing(False)

    def set_locked(self, locked: bool) -> None:
        for widget in self._inputs():
            widget.setEnabled(not locked)

    def set_earlier(self, text: str | None) -> None:
        self.earlier.setText(f"Your unaided answer: {text}" if text is not None else "")
        self.earlier.setVisible(text is not None)

    def mark_missing(self, missing: bool) -> None:
        self.warning.setVisible(missing)

    def flush(self) -> None:
        """Report a pending answer now."""
        if self._settle.isActive():
            self._settle.stop()
            self._report()

    def _changed(self, settle: bool = False) -> None:
        if self._quiet:
            return
        self.mark_missing(False)
        if settle:
            self._settle.start()
        else:
            self._report()

    def _report(self) -> None:
        self.answered.emit(self.question.id, self.value())


class ChoiceQuestion(QuestionWidget):
    """Single choice (radio buttons) or multiple choice (check boxes)."""

    def __init__(self, question: QuestionView, parent: QWidget | None = None) -> None:
        super().__init__(question, parent)
        self.multiple = question.kind == "multiple_choice"
        self.group = QButtonGroup(self)
        self.group.setExclusive(not self.multiple)
        for index, option in enumerate(question.options):
            button = QCheckBox(option) if self.multiple else QRadioButton(option)
            self.group.addButton(button, index)
            self.body.addWidget(button)
        self.group.idToggled.connect(lambda _index, on: (self.multiple or on) and self._changed())

    def value(self) -> Any:
        chosen = [self.question.options[i] for i in range(len(self.question.options)) if self.group.button(i).isChecked()]
        if self.multiple:
            return chosen or None
        return chosen[0] if chosen else None

    def _show(self, value: Any) -> None:
        wanted = set(value or ()) if self.multiple else {value}
        self.group.setExclusive(False)
        for index, option in enumerate(self.question.options):
            self.group.button(index).setChecked(option in wanted)
        self.group.setExclusive(not self.multiple)

    def _inputs(self) -> list[QWidget]:
        return list(self.group.buttons())


class ScaleQuestion(QuestionWidget):
    """A row of buttons: confidence 1..5 or helpfulness -3..+3."""

    def __init__(self, question: QuestionView, parent: QWidget | None = None) -> None:
        super().__init__(question, parent)
        low, high = (1, 5) if question.kind == "confidence_1_5" else (-3, 3)
        self.values = list(range(low, high + 1))
        self.group = QButtonGroup(self)
        row = QHBoxLayout()
        row.setSpacing(2)
        if question.kind == "helpfulness":
            row.addWidget(QLabel(HELPFULNESS_ENDS[0]))
        for value in self.values:
            button = QPushButton(f"{value:+d}" if low < 0 else str(value))
            button.setCheckable(True)
            button.setFixedWidth(34 if low > 0 else 32)
            if question.kind == "confidence_1_5":
                button.setToolTip(f"{value} = {CONFIDENCE_HINTS[value]}")
            self.group.addButton(button, value - low)
            row.addWidget(button)
        if question.kind == "helpfulness":
            row.addWidget(QLabel(HELPFULNESS_ENDS[1]))
        row.addStretch(1)
        self.body.addLayout(row)
        self._low = low
        self.group.idToggled.connect(lambda _index, on: on and self._changed())

    def value(self) -> Any:
        index = self.group.checkedId()
        return None if index < 0 else index + self._low

    def _show(self, value: Any) -> None:
        self.group.setExclusive(False)
        for index, button in enumerate(self.group.buttons()):
            button.setChecked(value is not None and index == int(value) - self._low)
        self.group.setExclusive(True)

    def _inputs(self) -> list[QWidget]:
        return list(self.group.buttons())


class ProbabilityQuestion(QuestionWidget):
    """A 0-100 slider with a spin box; unanswered until the reader moves either."""

    UNANSWERED = -1

    def __init__(self, question: QuestionView, parent: QWidget | None = None) -> None:
        super().__init__(question, parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setPageStep(10)
        self.spin = QSpinBox()
        self.spin.setRange(self.UNANSWERED, 100)
        self.spin.setSpecialValueText("not answered")
        self.spin.setSuffix(" %")
        self.spin.setMinimumWidth(110)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        self.body.addLayout(row)
        self.slider.valueChanged.connect(self._slid)
        self.spin.valueChanged.connect(self._typed)
        self.slider.sliderReleased.connect(self.flush)
        self.spin.editingFinished.connect(self.flush)

    def value(self) -> Any:
        number = self.spin.value()
        return None if number == self.UNANSWERED else number

    def _slid(self, number: int) -> None:
        if self.spin.value() != number:
            self.spin.blockSignals(True)
            self.spin.setValue(number)
            self.spin.blockSignals(False)
        self._changed(settle=True)

    def _typed(self, number: int) -> None:
        if number != self.UNANSWERED and self.slider.value() != number:
            self.slider.blockSignals(True)
            self.slider.setValue(number)
            self.slider.blockSignals(False)
        self._changed(settle=True)

    def _show(self, value: Any) -> None:
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
        self.spin.setValue(self.UNANSWERED if value is None else round(float(value)))
        self.slider.setValue(0 if value is None else round(float(value)))
        for widget in (self.slider, self.spin):
            widget.blockSignals(False)

    def _inputs(self) -> list[QWidget]:
        return [self.slider, self.spin]


class PairwiseQuestion(QuestionWidget):
    """Which of two maps explains better; a button shows the two side by side (A left, B right).

    Signals:
        show_pair(question_id, on): the reader wants the two maps side by side (or not).
    """

    show_pair = Signal(int, bool)

    def __init__(self, question: QuestionView, parent: QWidget | None = None) -> None:
        super().__init__(question, parent)
        self.show_button = QPushButton("Show maps A | B side by side")
        self.show_button.setCheckable(True)
        self.show_button.toggled.connect(lambda on: self.show_pair.emit(self.question.id, on))
        self.body.addWidget(self.show_button)
        self.group = QButtonGroup(self)
        row = QHBoxLayout()
        for index, choice in enumerate(question.options):
            button = QRadioButton(PAIRWISE_TEXT.get(choice, choice))
            self.group.addButton(button, index)
            row.addWidget(button)
        row.addStretch(1)
        self.body.addLayout(row)
        self.group.idToggled.connect(lambda _index, on: on and self._changed())

    def value(self) -> Any:
        index = self.group.checkedId()
        return None if index < 0 else self.question.options[index]

    def _show(self, value: Any) -> None:
        self.group.setExclusive(False)
        for index, choice in enumerate(self.question.options):
            self.group.button(index).setChecked(choice == value)
        self.group.setExclusive(True)

    def _inputs(self) -> list[QWidget]:
        return list(self.group.buttons())


class RegionQuestion(QuestionWidget):
    """Marks drawn on the image with the Point and Box tools; the drawn marks are the answer."""

    def __init__(self, question: QuestionView, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(question, parent)
        self.state, self.annotation = state, state.annotation
        self.count = QLabel()
        self.count.setWordWrap(True)
        self.point_button = QPushButton("Point")
        self.box_button = QPushButton("Box")
        self.clear_button = QPushButton("Clear marks")
        self.point_button.clicked.connect(lambda: setattr(self.annotation, "tool", "point"))
        self.box_button.clicked.connect(lambda: setattr(self.annotation, "tool", "box"))
        self.clear_button.clicked.connect(self.annotation.clear)
        grid = QGridLayout()
        grid.addWidget(self.count, 0, 0, 1, 3)
        grid.addWidget(self.point_button, 1, 0)
        grid.addWidget(self.box_button, 1, 1)
        grid.addWidget(self.clear_button, 1, 2)
        self.body.addLayout(grid)
        self.annotation.events.drafts.connect(self._drawn)
        self._count(self.annotation.drafts)

    def disconnect_model(self) -> None:
        """Stop following the marks (the form is being rebuilt)."""
        self.annotation.events.drafts.disconnect(self._drawn)

    def value(self) -> Any:
        return region_value(self.annotation.drafts)

    def _drawn(self, marks: tuple[AnnotationDraft, ...]) -> None:
        self._count(marks)
        if self.isEnabled() and self.point_button.isEnabled():
            self._changed()

    def _count(self, marks: tuple[AnnotationDraft, ...]) -> None:
        self.count.setText(f"{len(marks)} mark{'s' if len(marks) != 1 else ''} on the image "
                           "(Point or Box tool, then click or drag on the image)")

    def _show(self, value: Any) -> None:
        restore_marks(self.state, value or [])
        self._count(self.annotation.drafts)

    def _inputs(self) -> list[QWidget]:
        return [self.point_button, self.box_button, self.clear_button]


def restore_marks(state: ViewerState, regions: list[dict]) -> None:
    """Draw stored region answers again as the viewer's marks (points, boxes, masks), each on its
    slice; the shown slice and the label of new marks are left as they were."""
    display, annotation = state.display, state.annotation
    slice_before, label_before = display.slice_index, annotation.label
    annotation.clear()
    for region in regions:
        display.slice_index = int(region["slice_index"])
        annotation.label = str(region.get("label", ""))
        points = [tuple(p) for p in region["points"]]
        if region["kind"] == "point":
            annotation.add_point(*points[0])
        elif region["kind"] == "box":
            annotation.add_box(points[0], points[1])
        elif region["kind"] == "mask":
            annotation.add_mask(MaskRLE.from_json(region["mask"]))
    display.slice_index = slice_before
    annotation.label = label_before


class FreeTextQuestion(QuestionWidget):
    """Free text, stored after a pause in typing (and when the reader leaves the case)."""

    def __init__(self, question: QuestionView, parent: QWidget | None = None) -> None:
        super().__init__(question, parent)
        self.text = QPlainTextEdit()
        self.text.setFixedHeight(60)
        self.text.setPlaceholderText("Optional" if not question.required else "")
        self.text.textChanged.connect(lambda: self._changed(settle=True))
        self.body.addWidget(self.text)

    def value(self) -> Any:
        text = self.text.toPlainText().strip()
        return text or None

    def _show(self, value: Any) -> None:
        self.text.blockSignals(True)
        self.text.setPlainText("" if value is None else str(value))
        self.text.blockSignals(False)

    def _inputs(self) -> list[QWidget]:
        return [self.text]


def question_widget(question: QuestionView, state: ViewerState) -> QuestionWidget:
    """The widget of one question, by its kind."""
    if question.kind in ("single_choice", "multiple_choice"):
        return ChoiceQuestion(question)
    if question.kind in ("confidence_1_5", "helpfulness"):
        return ScaleQuestion(question)
    if question.kind == "probability_0_100":
        return ProbabilityQuestion(question)
    if question.kind == "pairwise_explanation":
        return PairwiseQuestion(question)
    if question.kind == "region":
        return RegionQuestion(question, state)
    if question.kind == "free_text":
        return FreeTextQuestion(question)
    raise ValueError(f"question {question.key!r}: no widget for kind {question.kind!r}")
