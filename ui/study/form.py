"""``StudyForm``: the study's reading form beside the viewer.

It shows one reading (``ReaderCase``): which case, arm and step, a running timer, the questions of
this arm and step with the reader's drafts, the locked unaided answers in an aided step, and the
buttons the design allows (previous, submit or lock, revise, next). It stores nothing itself:
it reports each answer as it is given and each button press, and the reader mode acts on them.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from db.study_reader import ReaderCase
from ui.model import ViewerState
from ui.study.questions import PairwiseQuestion, QuestionWidget, RegionQuestion, describe_answer, question_widget


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def step_name(form: ReaderCase) -> str:
    """Which step of a sequential reading this is, and which revision ("" for a first, single read)."""
    step = ""
    if form.phases == 2:
        step = "step 1 of 2: your own read, without the AI" if form.phase == 1 else "step 2 of 2: with the AI"
    version = f"revision {form.version - 1}" if form.version > 1 else ""
    return ", ".join(part for part in (step, version) if part)


class StudyForm(QWidget):
    """The questions of one reading and its buttons.

    Signals:
        answered(question_id, value): an answer given (None: cleared).
        submit_requested(): Submit (or Lock, in an unaided first step) with every required answer.
        revise_requested(), next_requested(), previous_requested(), copy_earlier_requested()
        show_pair(question_id, on): show a pairwise question's two maps side by side.
    """

    answered = Signal(int, object)
    submit_requested = Signal()
    revise_requested = Signal()
    next_requested = Signal()
    previous_requested = Signal()
    copy_earlier_requested = Signal()
    show_pair = Signal(int, bool)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.form: ReaderCase | None = None
        self.widgets: dict[int, QuestionWidget] = {}
        self._opened = time.monotonic()
        self.title = QLabel("No case open")
        self.title.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.step = QLabel()
        self.step.setWordWrap(True)
        self.timer_label = QLabel()
        self.earlier = QLabel()
        self.earlier.setWordWrap(True)
        self.earlier.setStyleSheet("color: #9fb7cc;")
        self.copy_button = QPushButton("Start from my unaided answers")
        self.copy_button.setToolTip("Copy your locked answers of step 1 into this step as drafts; change what the AI changed")
        self.copy_button.clicked.connect(self.copy_earlier_requested)
        self.questions = QVBoxLayout()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.previous_button = QPushButton("\u2190 Previous")
        self.submit_button = QPushButton("Submit")
        self.submit_button.setDefault(True)
        self.revise_button = QPushButton("Revise")
        self.next_button = QPushButton("Next \u2192")
        buttons = QHBoxLayout()
        for button in (self.previous_button, self.submit_button, self.revise_button, self.next_button):
            buttons.addWidget(button)
        self.previous_button.clicked.connect(self.previous_requested)
        self.submit_button.clicked.connect(self._submit)
        self.revise_button.clicked.connect(self.revise_requested)
        self.next_button.clicked.connect(self.next_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.step)
        layout.addWidget(self.timer_label)
        layout.addWidget(self.earlier)
        layout.addWidget(self.copy_button)
        layout.addLayout(self.questions)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_time)
        self.clear()

    # -- showing a reading -------------------------------------------------------------------
    def clear(self) -> None:
        """No case: no questions, no buttons."""
        self._drop_questions()
        self.form = None
        self._tick.stop()
        self.title.setText("No case open")
        for widget in (self.step, self.timer_label, self.earlier, self.message):
            widget.clear()
        self.earlier.hide()
        self.copy_button.hide()
        for button in (self.previous_button, self.submit_button, self.revise_button, self.next_button):
            button.setEnabled(False)

    def set_reading(self, form: ReaderCase, *, has_previous: bool, has_next: bool, position: str = "") -> None:
        """Show ``form``: its questions with the reader's drafts, locked if submitted.

        Args:
            form: the reading.
            has_previous, has_next: whether there is a case before or after it in the order.
            position: e.g. "case 3 of 9".
        """
        self._drop_questions()
        self.form = form
        self.title.setText(f"{form.pseudonym}  \u00b7  arm: {form.arm}")
        self.step.setText(" \u00b7 ".join(part for part in (position, step_name(form)) if part))
        by_id = {q.id: q for q in form.questions}
        for question in form.questions:
            widget = question_widget(question, self.state)
            widget.answered.connect(self._answered)
            if isinstance(widget, PairwiseQuestion):
                widget.show_pair.connect(self.show_pair)
            self.questions.addWidget(widget)
            self.widgets[question.id] = widget
            widget.set_value(form.answers.get(question.id))
            widget.set_locked(form.locked)
            if form.phase == 2:
                widget.set_earlier(describe_answer(question.kind, form.earlier_answers.get(question.id))
                                   if question.id in form.earlier_answers else None)
        earlier = [f"{q.prompt}: {describe_answer(q.kind, v)}" for qid, v in form.earlier_answers.items()
                   if (q := by_id.get(qid)) is not None]
        self.earlier.setText("Your locked unaided answers are kept; this step records your answers with the AI."
                             if form.phase == 2 else "")
        self.earlier.setVisible(form.phase == 2)
        self.copy_button.setVisible(form.phase == 2 and not form.locked and bool(earlier))
        self.submit_button.setText("Lock my unaided answer" if form.phases == 2 and form.phase == 1 else "Submit")
        self.submit_button.setEnabled(not form.locked)
        self.revise_button.setVisible(form.can_revise)
        self.revise_button.setEnabled(form.can_revise)
        self.previous_button.setEnabled(has_previous)
        self.next_button.setEnabled(has_next and form.locked and form.phase == form.phases)
        self.message.setText("Submitted: the answers are locked." if form.locked and form.phase == form.phases else "")
        self._opened = time.monotonic()
        self._show_time()
        if form.locked:
            self._tick.stop()
        else:
            self._tick.start()

    def _drop_questions(self) -> None:
        for widget in self.widgets.values():
            if isinstance(widget, RegionQuestion):
                widget.disconnect_model()
            widget.answered.disconnect()
            self.questions.removeWidget(widget)
            widget.setParent(None)
            widget.deleteLater()
        self.widgets = {}

    def _show_time(self) -> None:
        if self.form is None:
            return
        spent = self.form.seconds_open + (0.0 if self.form.locked else time.monotonic() - self._opened)
        first = self.form.seconds_to_first_answer
        first_text = f" \u00b7 first answer {clock(first)} after it was opened" if first is not None else ""
        self.timer_label.setText(f"Time on this case: {clock(spent)}{first_text}")

    # -- answers -----------------------------------------------------------------------------
    def _answered(self, question_id: int, value: Any) -> None:
        self.message.clear()
        self.answered.emit(question_id, value)

    def values(self) -> dict[int, Any]:
        """Every question's current answer (None where unanswered)."""
        return {qid: widget.value() for qid, widget in self.widgets.items()}

    def flush(self) -> None:
        """Report the answers still settling (a slider being dragged, text being typed)."""
        for widget in self.widgets.values():
            widget.flush()

    def missing(self) -> list[str]:
        """The prompts of required questions without an answer, and marks them on the form."""
        absent = []
        for widget in self.widgets.values():
            lacking = widget.question.required and widget.value() is None
            widget.mark_missing(lacking)
            if lacking:
                absent.append(widget.question.prompt)
        return absent

    def _submit(self) -> None:
        self.flush()
        absent = self.missing()
        if absent:
            self.message.setText("Please answer the required questions first: " + "; ".join(absent))
            return
        self.submit_requested.emit()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
