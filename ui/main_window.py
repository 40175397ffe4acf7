"""``MainWindow``: worklist, slice view, analysis, overlay, marks and the reading form.

The window composes thin widgets around one ``ViewerState`` and talks to the rest of the program
only through ``ui.backend.Workstation``. Slow backend calls (open, analyse) run in ``TaskRunner``
threads; their errors arrive here and are shown, never raised into Qt.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import traceback
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QDockWidget, QFileDialog, QGroupBox, QInputDialog, QLabel, QMainWindow,
    QMessageBox, QVBoxLayout, QWidget,
)

from engine.errors import SalienceError
from engine.explain.names import PERTURBATION_NAMES, display_name
from engine.imaging.dicom_series import MultipleSeriesError, SeriesInfo
from engine.progress import ScaledProgress
from ui.analysis_menu import AnalysisMenu
from ui.backend import Analysis, MethodCost, OpenedCase, ReadingDraft, SavedReading, WorklistItem, Workstation
from ui.panels.analysis import CONFIRM_SECONDS, AnalysisPanel, cost_text
from ui.panels.map_quality import MapQualityPanel
from ui.panels.annotations import AnnotationsPanel
from ui.panels.display_bar import DisplayBar
from ui.panels.overlay import OverlayPanel
from ui.panels.reading import ReadingForm, SavedReadingsList
from ui.panels.slice_navigator import SliceNavigator
from ui.panels.task_progress import TaskProgress
from ui.panels.worklist import WorklistPanel
from ui.planes import ViewModes, three_planes_action
from ui.review_column import ReviewScrollArea, guard_wheel
from ui.shortcuts import ShortcutsDialog
from ui.slice_view import SliceView
from ui.model import MAX_METHODS, WINDOW_PRESETS, ViewerState
from ui.slide_view import SlideView
from ui.theme import apply_reading_room_theme
from ui.view_grid import ViewGrid
from ui.workers import Task, TaskRunner
from ui.study.mode import install_study_mode

log = logging.getLogger(__name__)

#: The ``QSettings`` key of the folder File > Open used last.
LAST_FOLDER_KEY = "viewer/last_folder"


class MainWindow(QMainWindow):
    """The reading workstation for one signed-in reader.

    Args:
        workstation: the app's implementation of ``ui.backend.Workstation``.
        parent: optional parent widget.
        settings: where the window remembers things between runs (the last folder opened); None
            keeps them for this run only.

    Attributes:
        state: the viewer state every widget follows.
        case: the open case, or None.
        last_error: the text of the last error shown to the reader ("" if none).
    """

    def __init__(self, workstation: Workstation, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        apply_reading_room_theme(QApplication.instance())
        self.workstation = workstation
        self.settings = settings
        self._remembered: dict[str, str] = {}  # stands in for settings when there are none
        self.state = ViewerState()
        self.runner = TaskRunner(self)
        self.case: OpenedCase | None = None
        self.last_error = ""
        self._error_box: QMessageBox | None = None
        self._opened_at = time.monotonic()
        self._open_task: Task | None = None
        self._analysis_task: Task | None = None
        self._analysed_bundle = ""  # the bundle key of the shown analysis, reused to compare
        self._choices_task: Task | None = None  # lists the open case's bundles and methods
        self._reopen_task: Task | None = None
        self.shown_reading: SavedReading | None = None  # the saved reading whose marks are on show
        self.setWindowTitle("Salience")
        self.resize(1400, 900)
        self._build_centre()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self.refresh_worklist()
        self._show_case_controls(False)
        self.analysis_menu = AnalysisMenu(self)  # ui.analysis_menu: compare the common four, device
        self.study = install_study_mode(self)  # ui.study: My studies, the Studies view, per role

    # -- layout ------------------------------------------------------------------------------
    def _build_centre(self) -> None:
        self.display_bar = DisplayBar(self.state)
        self.views = ViewGrid(self.state)
        self.slice_view = self.views.main
        self.compare_view = self.views.compare  # the first compared method's view, shown while comparing
        self.view_modes = ViewModes(self.state, self.views)  # the views above, or three linked planes
        self.view_modes.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.slide_view = SlideView(self.state)  # instead of the views while a whole slide is open
        self.slide_view.hide()
        self.slide_view.cursor_moved.connect(  # where the pointer is on the slide, and its colour
            lambda text: self.statusBar().showMessage(text) if text else self.statusBar().clearMessage())
        self.navigator = SliceNavigator(self.state)
        centre = QWidget()
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.display_bar)
        layout.addWidget(self.view_modes, 1)
        layout.addWidget(self.slide_view, 1)
        layout.addWidget(self.navigator)
        self.setCentralWidget(centre)
        guard_wheel(self.display_bar)

    def _build_docks(self) -> None:
        """Left: the worklist and my readings of the open case. Right: the review, top-down."""
        self.worklist = WorklistPanel()
        self.saved_readings = SavedReadingsList()
        self._add_dock("Demo cases", _stacked([("Worklist", self.worklist, 3),
                                               ("My saved readings", self.saved_readings, 1)]),
                       Qt.DockWidgetArea.LeftDockWidgetArea, 260)
        self.analysis_panel = AnalysisPanel(self.state)
        self.overlay_panel = OverlayPanel(self.state)
        self.quality_panel = MapQualityPanel(self.state)
        self.annotations_panel = AnnotationsPanel(self.state)
        self.reading_form = ReadingForm()
        column = _stacked([("Analysis", self.analysis_panel, 0), ("CAM overlay", self.overlay_panel, 0),
                           ("Map quality", self.quality_panel, 0),
                           ("Marks on the image", self.annotations_panel, 0),
                           ("Reading", self.reading_form, 0)])
        column.layout().addStretch(1)
        column.setMinimumWidth(340)
        self.review_scroll = ReviewScrollArea(column)  # as wide as the column needs, plus its scroll bar
        guard_wheel(column)  # the wheel scrolls the column; it never changes a value under the pointer
        self._add_dock("Review", self.review_scroll, Qt.DockWidgetArea.RightDockWidgetArea, None)

    def _add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, width: int | None) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setWidget(widget)
        if width is not None:
            widget.setMinimumWidth(width)
        self.addDockWidget(area, dock)

    def _build_status_bar(self) -> None:
        self.open_progress = TaskProgress()
        self.open_progress.setMaximumWidth(420)
        reader = self.workstation.reader
        self.reader_label = QLabel(f"Reader: {reader.name} ({reader.role})")
        self.statusBar().addPermanentWidget(self.open_progress)
        self.statusBar().addPermanentWidget(self.reader_label)

    def _build_menus(self) -> None:
        def action(menu, text: str, shortcut: QKeySequence | str | None, slot) -> QAction:
            item = menu.addAction(text)
            if shortcut is not None:
                item.setShortcut(QKeySequence(shortcut))
            item.triggered.connect(slot)
            return item

        display, overlay, annotation = self.state.display, self.state.overlay, self.state.annotation
        file_menu = self.menuBar().addMenu("&File")
        self.open_actions = (  # the free review's ways in (a study reader has none)
            action(file_menu, "Open &file\u2026", QKeySequence.StandardKey.Open, self.choose_file),
            action(file_menu, "Open f&older\u2026", "Ctrl+Shift+O", self.choose_folder),
            action(file_menu, "Add &model\u2026", None, self.choose_bundle))
        self.save_action = action(file_menu, "&Save reading", QKeySequence.StandardKey.Save,
                                  self.save_reading)
        file_menu.addSeparator()
        action(file_menu, "&Quit", "Ctrl+Q", self.close)
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = action(edit_menu, "&Undo mark change", "Ctrl+Z", annotation.undo)
        self.redo_action = action(edit_menu, "&Redo mark change", "Ctrl+Shift+Z", annotation.redo)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        annotation.events.history.connect(self._on_history)
        self._on_history(annotation.can_undo, annotation.can_redo)
        view_menu = self.menuBar().addMenu("&View")
        self.overlay_action = action(view_menu, "Show CAM &overlay", "O", overlay.toggle_visible)
        self.overlay_action.setCheckable(True)
        self.overlay_action.setChecked(overlay.visible)
        self.contour_action = action(view_menu, "CAM as &contours only", "C",
                                     lambda: setattr(overlay, "contour", not overlay.contour))
        self.contour_action.setCheckable(True)
        view_menu.addSeparator()
        action(view_menu, "&Fit image", "F", self.fit_view)
        self.zoom_in_action = action(view_menu, "Zoom &in", "+", lambda: self.zoom_view(2.0))
        self.zoom_in_action.setShortcuts([QKeySequence("+"), QKeySequence("=")])
        action(view_menu, "Zoom &out", "-", lambda: self.zoom_view(0.5))
        self.planes_action = three_planes_action(view_menu, self.state.planes)
        action(view_menu, "&Reset window/level", "R", display.reset_window)
        self.preset_actions = {
            key: action(view_menu, f"Window: {name} ({width:g}/{centre:g})", key,
                        functools.partial(self.apply_preset, key))
            for key, (name, centre, width) in WINDOW_PRESETS.items()
        }
        self.invert_action = action(view_menu, "&Invert grey levels", "I",
                                    lambda: setattr(display, "invert", not display.invert))
        self.invert_action.setCheckable(True)
        display.events.invert.connect(lambda on: self.invert_action.setChecked(on))
        view_menu.addSeparator()
        view_menu.addAction(self.display_bar.play_action)
        tools_menu = self.menuBar().addMenu("&Tools")
        for tool_action in self.display_bar.tool_actions.values():
            tools_menu.addAction(tool_action)
        tools_menu.addSeparator()  # the brush and eraser (radius in image pixels)
        self.brush_actions = (
            action(tools_menu, "S&maller brush", "[", lambda: setattr(annotation, "brush_radius",
                                                                    annotation.brush_radius - 1)),
            action(tools_menu, "&Larger brush", "]", lambda: setattr(annotation, "brush_radius",
                                                                   annotation.brush_radius + 1)),
            action(tools_menu, "&Clear the painted masks of this slice", None, lambda: annotation.clear_masks()))
        help_menu = self.menuBar().addMenu("&Help")
        action(help_menu, "Keyboard &shortcuts", "F1", lambda: ShortcutsDialog(self).exec())

    def centre_for(self, volume) -> bool:
        """Make the centre the slide view for an open whole slide, else the view modes (before
        the volume is shown); returns True for a slide. Study mode shows its cases through it too."""
        slide = volume.kind == "slide" and "slide" in volume.extras
        if slide and self.state.planes.three_planes:
            self.state.planes.three_planes = False
        self.view_modes.setVisible(not slide)
        self.slide_view.setVisible(slide)
        return slide

    def showing_slide(self) -> bool:
        """True while a whole slide is open: the centre is the slide view, not the slice views."""
        return self.slide_view.isVisibleTo(self)

    def fit_view(self) -> None:
        """Show the whole image (or slide) in the centre."""
        if self.showing_slide():
            self.slide_view.fit()
        else:
            self.view_modes.fit()

    def zoom_view(self, factor: float) -> None:
        """Zoom the centre by ``factor`` about its middle."""
        if self.showing_slide():
            self.slide_view.zoom_by(factor)
        else:
            self.slice_view._zoom_about(QPointF(self.slice_view.width() / 2.0, self.slice_view.height() / 2.0), factor)

    def apply_preset(self, key: str) -> None:
        """Window preset ``key`` (1 soft tissue, 2 lung, 3 bone, 4 brain), said in the status bar."""
        if self.state.display.volume is None:
            return
        name = self.state.display.apply_preset(key)
        centre, width = self.state.display.window
        self.statusBar().showMessage(f"Window preset {key}: {name} (W {width:g}, L {centre:g})", 4000)

    def _on_history(self, can_undo: bool, can_redo: bool) -> None:
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)

    def _connect(self) -> None:
        self.worklist.open_requested.connect(self.open_item)
        self.analysis_panel.analyse_requested.connect(self.analyse)
        self.analysis_panel.compare_requested.connect(self.compare)
        self.analysis_panel.cost_requested.connect(self.estimate_cost)
        self.quality_panel.check_requested.connect(self.check_map)
        self.reading_form.save_requested.connect(self.save_reading)
        self.saved_readings.reopen_requested.connect(self.reopen_reading)
        self.reading_form.saved_closed.connect(self.close_saved_reading)
        self.state.overlay.events.visible.connect(lambda on: self.overlay_action.setChecked(on))
        self.state.overlay.events.contour.connect(lambda on: self.contour_action.setChecked(on))
        self.navigator.slider.sliderPressed.connect(self.display_bar.cine.pause)

    def _show_case_controls(self, case_open: bool) -> None:
        self.analysis_panel.set_case_open(case_open)
        for widget in (self.annotations_panel, self.reading_form, self.saved_readings):
            widget.setEnabled(case_open)
        self.save_action.setEnabled(case_open)

    # -- worklist and opening ----------------------------------------------------------------
    def refresh_worklist(self) -> None:
        """Reload the worklist from the backend (fast)."""
        try:
            self.worklist.set_items(self.workstation.worklist())
        except SalienceError as exc:
            self.show_error("The worklist could not be loaded", exc)

    def open_item(self, item: WorklistItem) -> Task | None:
        """Open a worklist case in a worker thread, after asking about unsaved work.

        Returns:
            The running task, or None when the reader kept the current case.
        """
        if not self.confirm_discard_changes():
            return None
        task = self._start_open(f"Opening {item.title}", self.workstation.open_case, item)
        task.finished.connect(lambda _case: self.worklist.mark_open(item.key))
        return task

    def open_path(self, path: str, series_uid: str | None = None) -> Task | None:
        """Open a file or folder outside the worklist (File > Open).

        A folder with several DICOM series asks the reader which one to open.
        """
        if not path or (series_uid is None and not self.confirm_discard_changes()):
            return None
        work = functools.partial(self.workstation.open_path, series_uid=series_uid)
        task = self._start_open(f"Opening {path}", work, path,
                                on_failure=lambda exc: self._choose_series(path, exc))
        task.finished.connect(lambda _case: self.worklist.mark_open(None))
        return task

    def _choose_series(self, path: str, error: BaseException) -> bool:
        """Let the reader pick one of several series; True when the error was handled here."""
        if not isinstance(error, MultipleSeriesError):
            return False
        labels = [_series_label(info) for info in error.series]
        choice, accepted = QInputDialog.getItem(
            self, "Choose a series", f"{path} holds {len(labels)} series. Open:", labels, 0, False)
        if accepted and choice in labels:
            self.open_path(path, error.series[labels.index(choice)].uid)
        else:
            self.statusBar().showMessage("No series opened", 5000)
        return True

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image file", self.start_folder())
        if path:
            self._remember_folder(os.path.dirname(path))
        self.open_path(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open image folder (series or case)", self.start_folder())
        if path:
            self._remember_folder(os.path.dirname(path.rstrip("/\\")) or path)
        self.open_path(path)

    def start_folder(self) -> str:
        """Where File > Open starts: the folder used last (if it still exists), else the data
        folder the workstation names (the demo cases), never the program's own folder."""
        last = self.remembered(LAST_FOLDER_KEY)
        if last and os.path.isdir(last):
            return last
        return self.workstation.data_folder()

    def _remember_folder(self, folder: str) -> None:
        self.remember(LAST_FOLDER_KEY, folder)

    def remembered(self, key: str) -> str:
        """What ``remember`` kept under ``key`` (in ``settings``, else for this run); "" if nothing."""
        if self.settings is not None:
            return self.settings.value(key, "", type=str)
        return self._remembered.get(key, "")

    def remember(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` for the next run (for this run only without ``settings``)."""
        if self.settings is not None:
            self.settings.setValue(key, value)
            self.settings.sync()
        else:
            self._remembered[key] = value

    def choose_bundle(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a model: its .zip, or the metadata.json in its configs folder",
                                              "", "MONAI bundle (*.zip metadata.json)")
        self.add_bundle(path)

    def add_bundle(self, path: str) -> Task | None:
        """Check and add a model bundle in a worker; say what was added (or why not) in one line,
        and offer it for the open case."""
        if not path:
            return None
        workstation = self.workstation
        task = self.runner.start("Adding a model", lambda where, _progress: workstation.add_bundle(where), path)

        def added(line: str) -> None:
            self.statusBar().showMessage(line, 15000)
            box = QMessageBox(QMessageBox.Icon.Information, "Model added", line, QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()  # window-modal, not blocking: the window goes on
            if self.case is not None:
                self._choices_task = self._offer_analysis(self.case)

        task.finished.connect(added)
        task.failed.connect(lambda exc: self.show_error("The model was not added", exc))
        return task

    def _start_open(self, name: str, work, *arguments, on_failure=None) -> Task:
        for task in (self._open_task, self._analysis_task):
            if task is not None:
                task.cancel()
        task = self.runner.start(name, work, *arguments)
        self._open_task = task
        self.open_progress.follow(task)
        self.statusBar().showMessage(f"{name}\u2026")
        task.finished.connect(self._show_case)
        task.failed.connect(
            lambda exc: (on_failure is not None and on_failure(exc)) or self.show_error(f"{name} failed", exc))
        task.cancelled.connect(lambda: self.statusBar().showMessage(f"{name}: cancelled", 5000))
        return task

    def _show_case(self, case: OpenedCase) -> None:
        self.case = case
        self._opened_at = time.monotonic()
        volume = case.volume
        channel = case.display_channel if case.display_channel in volume.channel_names else None
        if volume.is_rgb:
            channel = None  # colour by default; R, G and B stay in the channel box
        slide = self.centre_for(volume)
        self.state.display.set_volume(volume, channel)
        self.reading_form.reset()
        self.close_saved_reading()
        self._choices_task = self._offer_analysis(case)
        try:
            self.reading_form.set_diagnoses(self.workstation.diagnoses(case.task))
            self.annotations_panel.set_labels(self.workstation.annotation_labels(case.task))
            self.saved_readings.set_readings(self.workstation.my_readings(case))
        except SalienceError as exc:
            self.show_error("The case opened but its options could not be loaded", exc)
        self._show_case_controls(True)
        self.setWindowTitle(f"Salience \u2014 {_case_name(volume.source)}")
        _, rows, cols = volume.shape
        self.statusBar().showMessage(
            f"{_case_name(volume.source)}: {volume.n_slices} slices of {rows} x {cols}, "
            f"channels {', '.join(volume.channel_names)}", 8000)
        if slide:
            self.slide_view.setFocus()
        else:
            (self.view_modes.planes.views["axial"] if self.state.planes.three_planes else self.slice_view).setFocus()

    # -- analysis ----------------------------------------------------------------------------
    def _offer_analysis(self, case: OpenedCase) -> Task:
        """List the bundles and CAM methods for ``case`` in a worker thread and offer them.

        The first listing loads the model layer (torch and MONAI take seconds to import): the
        case's image is on screen meanwhile, and Analyse waits for the choices.
        """
        workstation = self.workstation
        self.analysis_panel.wait_for_choices()
        task = self.runner.start("Listing the models",
                                 lambda task_name, _progress: (workstation.bundles(task_name), workstation.methods()),
                                 case.task)
        task.finished.connect(lambda choices: case is self.case and self.analysis_panel.set_choices(*choices))
        task.failed.connect(lambda exc: self.show_error("The case opened but its models could not be listed", exc))
        return task

    def analyse(self, bundle: str, method: str) -> Task | None:
        """Run ``bundle`` with ``method`` on the open case in a worker thread."""
        if self.case is None or not self.confirm_cost(method):
            return None
        case = self.case
        task = self.runner.start(f"Analysing with {bundle} ({display_name(method)})", self.workstation.analyse,
                                 case, bundle, method)
        self._analysis_task = task
        self.analysis_panel.set_running(True)
        self.analysis_panel.progress.follow(task)
        self._follow_analysis(task, lambda analysis: self._show_analysis(case, bundle, analysis))
        return task

    def compare(self, method: str) -> Task | None:
        """Add CAM ``method`` beside the methods shown (Compare with...), computed in a worker."""
        return self.compare_methods((method,), replace=False)

    def compare_methods(self, methods: Sequence[str], replace: bool = True) -> Task | None:
        """Show the maps of ``methods`` side by side (at most ``MAX_METHODS``; 3 or 4 in a 2 x 2
        grid), computing those not shown yet in a worker thread as further explanations of the
        shown prediction (``Workstation.compare``: no forward pass for gradient methods). A slow
        method's cost is said and confirmed first.

        Args:
            methods: CAM method identifiers, in view order.
            replace: True to show exactly ``methods`` (the first analysis stays first when among
                them, else the first of ``methods`` takes its place); False to add them beside
                the methods already shown.

        Returns:
            The running task, or None when nothing was started.
        """
        overlay = self.state.overlay
        if self.case is None or overlay.analysis is None:
            return None
        shown = {analysis.method: analysis for analysis in overlay.shown_analyses}
        wanted = list(dict.fromkeys(methods if replace else (*shown, *methods)))
        if not 1 <= len(wanted) <= MAX_METHODS:
            self.statusBar().showMessage(f"At most {MAX_METHODS} CAM methods are shown at once", 8000)
            return None
        missing = [method for method in wanted if method not in shown]
        if not all(self.confirm_cost(method) for method in missing):
            return None
        case, first, compare = self.case, overlay.analysis, self.workstation.compare

        def work(progress) -> dict[str, Analysis]:
            count = max(len(missing), 1)
            return {method: compare(case, first, method, ScaledProgress(progress, i / count, (i + 1) / count))
                    for i, method in enumerate(missing)}

        names = ", ".join(display_name(method) for method in missing or wanted)
        task = self.runner.start(f"Comparing with {names}", work)
        self._analysis_task = task
        self._follow_analysis(task, lambda computed: self._show_comparison(case, first, wanted, {**shown, **computed}))
        return task

    def estimate_cost(self, bundle: str, method: str) -> Task | None:
        """Estimate a slow method's cost on the open case in a worker; the panel says it."""
        if self.case is None:
            return None
        case = self.case
        task = self.runner.start(f"Estimating {display_name(method)}", self.workstation.method_cost,
                                 case, bundle, method)

        def show(cost: MethodCost) -> None:
            if case is self.case and self.analysis_panel.bundle.currentText() == bundle:
                self.analysis_panel.show_cost(cost)

        task.finished.connect(show)
        task.failed.connect(lambda exc: self.statusBar().showMessage(
            f"The cost of {display_name(method)} could not be estimated: {exc}", 8000))
        return task

    def confirm_cost(self, method: str) -> bool:
        """Before a perturbation method estimated to run long, say its cost and ask. True: go on."""
        if method not in PERTURBATION_NAMES:
            return True
        cost = self.analysis_panel.cost_of(method)
        if cost is None or cost.seconds <= CONFIRM_SECONDS:
            return True
        answer = QMessageBox.question(
            self, f"Run {display_name(method)}?",
            f"{cost_text(cost)}. The window stays usable meanwhile and the run can be cancelled.",
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Ok)
        return answer == QMessageBox.StandardButton.Ok

    def _follow_analysis(self, task: Task, show) -> None:
        self.analysis_panel.set_running(True)
        self.analysis_panel.progress.follow(task)
        task.finished.connect(show)
        task.failed.connect(lambda exc: self.show_error("Analysis failed", exc))
        task.cancelled.connect(lambda: self.statusBar().showMessage("Analysis cancelled", 5000))
        task.done.connect(lambda: self.analysis_panel.set_running(False))

    def _show_analysis(self, case: OpenedCase, bundle: str, analysis: Analysis) -> None:
        if case is not self.case:  # the reader moved on to another case meanwhile
            return
        try:
            self.state.overlay.set_analysis(analysis)
        except ValueError as exc:
            self.show_error("The analysis does not fit the image", exc)
            return
        self._analysed_bundle = bundle
        self.statusBar().showMessage(f"Analysed with {analysis.bundle} ({display_name(analysis.method)})", 8000)

    def _show_comparison(self, case: OpenedCase, first: Analysis, wanted: list[str],
                         analyses: dict[str, Analysis]) -> None:
        overlay = self.state.overlay
        if case is not self.case or overlay.analysis is None or overlay.analysis.prediction_id != first.prediction_id:
            return  # the reader moved on to another case or analysis meanwhile
        try:
            if overlay.analysis.method not in wanted:
                overlay.set_analysis(analyses[wanted[0]])
            overlay.set_compared([analyses[method] for method in wanted if method != overlay.analysis.method])
        except ValueError as exc:
            self.show_error("The methods cannot be compared", exc)
            return
        names = ", ".join(display_name(analysis.method) for analysis in overlay.shown_analyses)
        self.statusBar().showMessage(f"Comparing {names}", 8000)

    def check_map(self, class_index: int, item: int) -> Task | None:
        """Measure the shown map of ``class_index`` on slice ``item`` in a worker thread (of the
        compared method the Map quality panel picks, while comparing)."""
        method = self.quality_panel.method_to_check()
        analysis = next((a for a in self.state.overlay.shown_analyses if a.method == method), None)
        if self.case is None or analysis is None:
            return None
        case, bundle = self.case, self._analysed_bundle
        where = (f"{display_name(analysis.method)} \u00b7 {analysis.class_names[class_index]} \u00b7 "
                 f"{self.state.display.item_word()} {item + 1}")
        task = self.runner.start(f"Checking {display_name(analysis.method)}", self.workstation.check_map,
                                 case, bundle, analysis, class_index, item)
        self.quality_panel.set_running(True)
        self.quality_panel.progress.follow(task)

        def show(report: dict) -> None:
            if case is self.case and any(analysis is shown for shown in self.state.overlay.shown_analyses):
                self.state.overlay.record_check(analysis.method, class_index, item, report)
                self.quality_panel.show_report(report, where)

        task.finished.connect(show)
        task.failed.connect(lambda exc: self.show_error("The map could not be checked", exc))
        task.done.connect(lambda: self.quality_panel.set_running(False))
        return task

    # -- reading -----------------------------------------------------------------------------
    def reading_draft(self) -> ReadingDraft:
        """The reading as the form and the marks hold it now."""
        diagnosis, confidence, comment = self.reading_form.values()
        analysis = self.state.overlay.analysis
        return ReadingDraft(
            diagnosis=diagnosis,
            confidence=confidence,
            comment=comment,
            annotations=self.state.annotation.drafts,
            seconds_on_case=round(time.monotonic() - self._opened_at, 1),
            prediction_id=analysis.prediction_id if analysis is not None else None,
        )

    def save_reading(self) -> bool:
        """Store the reading. On success the form is emptied for the next reading, and the marks
        stay on the image as the saved reading's (drawn dashed; no longer drafts). True if saved."""
        if self.case is None or not self.reading_form.is_complete():
            self.statusBar().showMessage("Choose a diagnosis and a confidence before saving.", 5000)
            return False
        try:
            saved = self.workstation.save_reading(self.case, self.reading_draft())
            readings = self.workstation.my_readings(self.case)
        except SalienceError as exc:
            self.show_error("The reading was not saved", exc)
            return False
        self.state.annotation.reset()
        self.reading_form.reset()
        self.saved_readings.set_readings(readings)
        self._show_saved(saved)
        self.refresh_worklist()
        self.statusBar().showMessage(
            f"Reading saved: {saved.diagnosis}, confidence {saved.confidence}", 8000)
        return True

    def reopen_reading(self, reading: SavedReading) -> Task | None:
        """Show a saved reading again: its marks, and the analysis it was made on (loaded in a
        worker from the stored prediction and maps)."""
        if self.case is None:
            return None
        case = self.case
        task = self.runner.start("Opening the saved reading", self.workstation.reopen_reading, case, reading.id)
        self._reopen_task = task

        def show(result: tuple[SavedReading, Analysis | None]) -> None:
            if case is not self.case:
                return
            saved, analysis = result
            if analysis is not None:
                try:
                    self.state.overlay.set_analysis(analysis)
                    self._analysed_bundle = analysis.bundle.rsplit(" ", 1)[0]  # "glioma 1.0.0" -> bundle "glioma"
                except ValueError as exc:
                    self.show_error("The reading's analysis does not fit the image", exc)
            self._show_saved(saved, analysis is not None or saved.prediction_id is None)
            if saved.annotations:
                self.state.display.slice_index = saved.annotations[0].slice_index
            self.review_scroll.ensureWidgetVisible(self.reading_form.saved_banner)  # say which reading is shown

        task.finished.connect(show)
        task.failed.connect(lambda exc: self.show_error("The saved reading could not be opened", exc))
        return task

    def _show_saved(self, reading: SavedReading, analysis_shown: bool = True) -> None:
        self.shown_reading = reading
        self.state.annotation.show_saved(reading.annotations)
        self.reading_form.show_saved(reading, analysis_shown)

    def close_saved_reading(self) -> None:
        """Stop showing a saved reading's marks."""
        self.shown_reading = None
        self.state.annotation.show_saved(())
        self.reading_form.show_saved(None)

    def has_unsaved_changes(self) -> bool:
        if self.study.case_open():  # a study's answers are stored the moment they are given
            return False
        return self.case is not None and (self.reading_form.is_dirty() or bool(self.state.annotation.drafts))

    def confirm_discard_changes(self) -> bool:
        """Ask before unsaved marks or form entries are lost. True when it is fine to go on."""
        if not self.has_unsaved_changes():
            return True
        buttons = QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
        if self.reading_form.is_complete():
            buttons |= QMessageBox.StandardButton.Save
        answer = QMessageBox.question(
            self, "Unsaved reading",
            "This case has marks or reading entries that are not saved.", buttons,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            return self.save_reading()
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.confirm_discard_changes():
            event.ignore()
            return
        self.study.leave()
        self.runner.cancel_all()
        self.runner.wait(3000)
        event.accept()

    # -- errors ------------------------------------------------------------------------------
    def show_error(self, title: str, error: BaseException) -> None:
        """One clear message in the status bar and a dialog; unexpected errors keep their trace.

        A ``SalienceError`` is the user's problem (a bad file) and shows as its one line. Anything
        else is a bug: it is logged with its traceback and the dialog carries the details.
        """
        expected = isinstance(error, SalienceError)
        text = str(error) if expected else f"Unexpected error: {type(error).__name__}: {error}"
        self.last_error = f"{title}: {text}"
        self.statusBar().showMessage(self.last_error, 15000)
        if not expected:
            log.error("%s", title, exc_info=(type(error), error, error.__traceback__))
        if self._error_box is not None:
            self._error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning if expected else QMessageBox.Icon.Critical,
                          title, text, QMessageBox.StandardButton.Ok, self)
        if not expected:
            box.setDetailedText("".join(traceback.format_exception(error)))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _result: setattr(self, "_error_box", None))
        self._error_box = box
        box.open()

    @property
    def error_box(self) -> QMessageBox | None:
        """The error dialog on screen, if any."""
        return self._error_box


def _stacked(sections: list[tuple[str, QWidget, int]]) -> QWidget:
    """A column of titled group boxes, each given its vertical stretch."""
    column = QWidget()
    layout = QVBoxLayout(column)
    layout.setContentsMargins(4, 0, 4, 4)
    for title, widget, stretch in sections:
        box = QGroupBox(title)
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(2, 4, 2, 2)
        box_layout.addWidget(widget)
        layout.addWidget(box, stretch)
    return column


def _case_name(source: str) -> str:
    return source.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or source


def _series_label(info: SeriesInfo) -> str:
    """How a series is named in the picker: number, modality, description, size."""
    number = f"#{info.series_number} " if info.series_number is not None else ""
    description = f" {info.description}" if info.description else ""
    shape = " x ".join(str(n) for n in info.shape)
    return f"{number}{info.modality}{description} ({info.n_files} files, {shape})"
