"""``StudyReaderMode``: the main window as a study reader's workstation.

Left, "My studies": the reader's studies and their own cases (pseudonyms, their order, their
progress). Right, "Study reading": the AI output where the arm and step show it, the map's
display controls, the marks of a region question, and the reading form. The image is the
viewer's, opened from the case's pixels only.

Every answer goes to the database the moment it is given (``save_study_answer``): closing the
window, a crash or a power cut loses nothing, and the reader resumes at the first unfinished
case with their drafts. A reader taking part in an open study sees no free review (no demo
worklist, no File > Open, no Analyse): the AI is never run on a study image outside its arm.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QGroupBox, QScrollArea, QVBoxLayout, QWidget

from db.study_reader import ReaderStudy
from engine.errors import SalienceError
from ui.backend import OpenedStudyCase, StudyCaseView
from ui.panels.annotations import AnnotationsPanel
from ui.panels.overlay import OverlayPanel
from ui.study.ai_panel import StudyAiPanel
from ui.study.form import StudyForm
from ui.study.worklist import StudyWorklistPanel, reachable
from ui.workers import Task

log = logging.getLogger(__name__)

FREE_REVIEW_DOCKS = ("Demo cases", "Review")


def why_no_ai(form) -> str:
    """What the AI panel says where a reading shows no AI."""
    if form.phases == 2 and form.phase == 1:
        return "Read this case on your own first. The AI's output is shown once you lock your unaided answer."
    return "This arm shows no AI output: read the case on your own."


class StudyReaderMode(QObject):
    """Adds the reader's study docks to ``window`` and runs their readings.

    Args:
        window: the ``MainWindow`` (its state, runner, workstation, status bar and docks).
        studies: the reader's studies (``Workstation.my_studies``).

    Attributes:
        assignment_id: the open case's assignment, or None.
        view: the open reading (form and AI), or None.
    """

    def __init__(self, window, studies: list[ReaderStudy]) -> None:
        super().__init__(window)
        self.window, self.workstation, self.state = window, window.workstation, window.state
        self.assignment_id: int | None = None
        self.view: StudyCaseView | None = None
        self.study_name = ""
        self._open_task: Task | None = None
        self.worklist = StudyWorklistPanel()
        self.ai_panel = StudyAiPanel(self.state)
        self.overlay_panel = OverlayPanel(self.state)
        self.marks_panel = AnnotationsPanel(self.state)
        self.form = StudyForm(self.state)
        self._build_docks()
        self.free_review = not any(s.status == "open" for s in studies) or window.workstation.reader.role != "reader"
        if not self.free_review:
            self._hide_free_review()
        self.worklist.study_chosen.connect(lambda study: self.show_study(study, resume=True))
        self.worklist.open_requested.connect(self.open_assignment)
        self.form.answered.connect(self.save_answer)
        self.form.submit_requested.connect(self.submit)
        self.form.revise_requested.connect(self.revise)
        self.form.next_requested.connect(lambda: self.step(+1))
        self.form.previous_requested.connect(lambda: self.step(-1))
        self.form.copy_earlier_requested.connect(self.copy_earlier)
        self.form.show_pair.connect(self.show_pair)
        self.worklist.set_studies(studies)
        self._set_tools(False)
        if self.worklist.current_study() is not None:
            self.show_study(self.worklist.current_study(), resume=True)

    # -- layout ------------------------------------------------------------------------------
    def _build_docks(self) -> None:
        self.worklist_dock = self._dock("My studies", self.worklist, Qt.DockWidgetArea.LeftDockWidgetArea)
        column = QWidget()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(4, 0, 4, 4)
        self.ai_box = self._group(layout, "AI", self.ai_panel)
        self.map_box = self._group(layout, "Map display", self.overlay_panel)
        self.marks_box = self._group(layout, "Marks on the image", self.marks_panel)
        self._group(layout, "Reading form", self.form)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(column)
        self.form_dock = self._dock("Study reading", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self.map_box.hide()
        self.marks_box.hide()

    @staticmethod
    def _group(layout: QVBoxLayout, title: str, widget: QWidget) -> QGroupBox:
        box = QGroupBox(title)
        inner = QVBoxLayout(box)
        inner.setContentsMargins(2, 4, 2, 2)
        inner.addWidget(widget)
        layout.addWidget(box)
        return box

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(title)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setWidget(widget)
        widget.setMinimumWidth(260 if area == Qt.DockWidgetArea.LeftDockWidgetArea else 440)
        self.window.addDockWidget(area, dock)
        return dock

    def _hide_free_review(self) -> None:
        for dock in self.window.findChildren(QDockWidget):
            if dock.objectName() in FREE_REVIEW_DOCKS:
                dock.hide()
                dock.toggleViewAction().setEnabled(False)
        self.window.analysis_menu.menu.menuAction().setVisible(False)  # a study's AI output is frozen
        for action in (*self.window.open_actions, self.window.save_action):
            action.setEnabled(False)
            action.setVisible(False)

    def _set_tools(self, drawing: bool) -> None:
        """Point and Box only while a region question takes marks."""
        for name, action in self.window.display_bar.tool_actions.items():
            action.setEnabled(drawing or name == "navigate")
        if not drawing:
            self.state.annotation.tool = "navigate"

    # -- worklist ----------------------------------------------------------------------------
    def show_study(self, study_id: int, resume: bool = False) -> None:
        """Show the reader's cases of ``study_id``; with ``resume``, open the first unfinished one."""
        try:
            worklist = self.workstation.study_worklist(study_id)
        except SalienceError as exc:
            self.window.show_error("Your worklist could not be loaded", exc)
            return
        self.study_name = worklist.study_name
        self.worklist.set_worklist(worklist, self.assignment_id)
        if resume and worklist.resume_at is not None:
            self.open_assignment(worklist.resume_at)

    def _follow_worklist(self) -> None:
        """Reload the shown worklist: states, progress, the open case selected."""
        study = self.worklist.current_study()
        if study is not None:
            self.show_study(study)

    def refresh(self) -> None:
        """Reload the studies' progress and the shown worklist."""
        try:
            studies = self.workstation.my_studies()
        except SalienceError as exc:
            self.window.show_error("Your studies could not be loaded", exc)
            return
        self.worklist.set_studies(studies, self.worklist.current_study())
        if self.worklist.current_study() is not None:
            self.show_study(self.worklist.current_study())

    # -- opening and leaving -----------------------------------------------------------------
    def case_open(self) -> bool:
        return self.assignment_id is not None

    def leave(self) -> None:
        """Store what is still settling and stop the open case's timer (drafts stay)."""
        self.form.flush()
        if self.assignment_id is not None:
            try:
                self.workstation.leave_study_case(self.assignment_id)
            except SalienceError as exc:
                log.warning("leaving study case: %s", exc)

    def open_assignment(self, assignment_id: int) -> Task:
        """Open one of the reader's cases in a worker (its pixels are read there)."""
        self.leave()
        if self._open_task is not None:
            self._open_task.cancel()
        task = self.window.runner.start("Opening the case", self.workstation.open_study_case, assignment_id)
        self._open_task = task
        self.window.open_progress.follow(task)
        task.finished.connect(self._show_opened)
        task.failed.connect(lambda exc: self.window.show_error("The case could not be opened", exc))
        return task

    def _show_opened(self, opened: OpenedStudyCase) -> None:
        self.form.clear()  # the region question lets go of the marks before the new image drops them
        self.assignment_id = opened.view.form.assignment_id
        volume = opened.volume
        channel = None if volume.is_rgb else opened.display_channel
        slide = self.window.centre_for(volume)  # a whole slide in the slide view, as in free review
        self.state.display.set_volume(volume, channel if channel in volume.channel_names else None)
        try:
            self.marks_panel.set_labels(self.workstation.annotation_labels(opened.task))
        except SalienceError as exc:
            self.window.show_error("The labels of marks could not be loaded", exc)
        self.show_view(opened.view)
        self._follow_worklist()
        self.window.setWindowTitle(f"Salience \u2014 {opened.view.form.pseudonym} \u00b7 {self.study_name}")
        (self.window.slide_view if slide else self.window.slice_view).setFocus()

    def show_view(self, view: StudyCaseView) -> None:
        """Show a reading: its form with the drafts, and the AI where it may be shown."""
        self.view = view
        form = view.form
        self.form.clear()
        self.state.annotation.clear()
        entries = [e for e in self.worklist.entries()]
        place = next((i for i, e in enumerate(entries) if e.assignment_id == form.assignment_id), None)
        self.form.set_reading(form, has_previous=place is not None and place > 0,
                              has_next=place is not None and place + 1 < len(entries),
                              position="" if place is None else f"case {place + 1} of {len(entries)}")
        self.ai_panel.set_ai(view.ai, why_no_ai(form))
        self.ai_box.setTitle("AI (frozen for this study)" if view.ai is not None else "AI")
        self.map_box.setVisible(view.ai is not None and (view.ai.map is not None or bool(view.ai.pairwise)))
        has_region = any(q.kind == "region" for q in form.questions)
        self.marks_box.setVisible(has_region)
        self.marks_panel.setEnabled(has_region and not form.locked)  # locked marks are not deleted
        self._set_tools(has_region and not form.locked)
        self.show_pair(None, False)

    def show_pair(self, question_id: int | None, on: bool) -> None:
        """Show a pairwise question's two maps side by side (A left, B right), or the arm's map."""
        ai = self.view.ai if self.view is not None else None
        overlay = self.state.overlay
        pair = ai is not None and on and question_id in ai.pairwise
        self.window.views.removable = not pair  # the question compares exactly these two maps
        if pair:
            left, right = ai.pairwise[question_id]
            overlay.set_analysis(left)
            overlay.set_compare_analysis(right)
            return
        overlay.set_analysis(None if ai is None else ai.map)

    # -- answers -----------------------------------------------------------------------------
    def save_answer(self, question_id: int, value: Any) -> bool:
        """Store one answer now; True when stored."""
        if self.assignment_id is None:
            return False
        try:
            self.workstation.save_study_answer(self.assignment_id, question_id, value)
        except SalienceError as exc:
            self.window.show_error("The answer was not saved", exc)
            return False
        self.window.statusBar().showMessage("Draft saved", 2000)
        return True

    def _reload(self) -> None:
        try:
            view = self.workstation.study_case_view(self.assignment_id)
        except SalienceError as exc:
            self.window.show_error("The case could not be shown", exc)
            return
        self.show_view(view)

    def submit(self) -> None:
        """Lock the current step; in a sequential design the aided step opens with the AI."""
        if self.assignment_id is None:
            return
        try:
            outcome = self.workstation.submit_study_case(self.assignment_id)
        except SalienceError as exc:
            self.form.show_message(str(exc))
            self.window.show_error("The case was not submitted", exc)
            return
        self.refresh()
        self._reload()
        if outcome == "phase 1 locked":
            self.window.statusBar().showMessage("Your unaided answer is locked; the AI's output is shown now.", 8000)
        else:
            self.window.statusBar().showMessage("Submitted.", 5000)

    def revise(self) -> None:
        """Start a new version of a submitted case (the submitted one is kept)."""
        if self.assignment_id is None:
            return
        try:
            version = self.workstation.revise_study_case(self.assignment_id)
        except SalienceError as exc:
            self.window.show_error("The case cannot be revised", exc)
            return
        self._reload()
        self.window.statusBar().showMessage(f"Revision {version - 1} started; the submitted answers are kept.", 8000)

    def copy_earlier(self) -> None:
        """Store the locked unaided answers as drafts of the aided step."""
        if self.view is None or self.assignment_id is None:
            return
        asked = {q.id for q in self.view.form.questions}
        for question_id, value in self.view.form.earlier_answers.items():
            if question_id in asked and not self.save_answer(question_id, value):
                return
        self._reload()

    def step(self, offset: int) -> Task | None:
        """Open the previous (-1) or next (+1) case of the reader's order, where reachable."""
        entries = self.worklist.entries()
        place = next((i for i, e in enumerate(entries) if e.assignment_id == self.assignment_id), None)
        if place is None or not 0 <= place + offset < len(entries):
            return None
        target = entries[place + offset]
        if self.worklist.worklist is None or not reachable(self.worklist.worklist, target):
            self.window.statusBar().showMessage(target.why_not or "Finish this case first.", 6000)
            return None
        return self.open_assignment(target.assignment_id)
