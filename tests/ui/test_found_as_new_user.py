"""What a new user found in the first minutes (issue 12), each pinned by a test that failed first."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.ui.fake_workstation import ULTRASOUND_ITEM
from tests.ui.test_compare import finish


def open_and_list(qtbot, window, item):
    task = window.open_item(item)
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    qtbot.waitUntil(lambda: not window._choices_task.is_running, timeout=5000)


def test_the_model_follows_the_case_across_tasks(qtbot, window, workstation):
    """After a glioma case has been analysed, opening a lung-ultrasound clip offers the ultrasound
    model first (not the glioma one picked before) and the strip no longer says P(tumour)."""
    workstation.installed_bundles = ("glioma 1.0.0", "lung-ultrasound 1.0.0")
    workstation.extra_items = [ULTRASOUND_ITEM]
    window.refresh_worklist()
    glioma, clip = window.worklist.items()[0], window.worklist.items()[-1]
    open_and_list(qtbot, window, glioma)
    assert window.analysis_panel.bundle.currentText() == "glioma 1.0.0"
    window.analysis_panel.analyse_button.click()
    finish(qtbot, window._analysis_task)
    assert window.navigator.strip_caption.text() == "P(tumour)"
    open_and_list(qtbot, window, clip)
    assert window.case.task == "lung-ultrasound"
    assert window.analysis_panel.bundle.currentText() == "lung-ultrasound 1.0.0"
    assert window.navigator.strip_caption.text() == ""
    window.analysis_panel.analyse_button.click()
    finish(qtbot, window._analysis_task)
    assert workstation.analyse_calls[-1][0] == "lung-ultrasound 1.0.0"


def test_set_choices_picks_the_cases_own_model_even_when_the_old_one_is_still_offered(qtbot):
    """The analysis panel's contract: a new listing (own task's bundles first) selects its first
    bundle, not the one picked for the previous case; the CAM method picked stays."""
    from ui.model import ViewerState
    from ui.panels.analysis import AnalysisPanel

    panel = AnalysisPanel(ViewerState())
    qtbot.addWidget(panel)
    panel.set_choices(["glioma 1.0.0", "lung-ultrasound 1.0.0"], ["gradcam", "layercam"])
    panel.method.setCurrentIndex(1)
    panel.set_choices(["lung-ultrasound 1.0.0", "glioma 1.0.0"], ["gradcam", "layercam"])
    assert panel.bundle.currentText() == "lung-ultrasound 1.0.0"
    assert panel.method.currentData() == "layercam"


def test_probabilities_are_never_clipped_when_the_review_panel_overflows(qtbot, opened, workstation):
    """With the review column taller than the window (a vertical scroll bar shows), every
    percentage lies wholly inside the visible viewport and its label is as wide as its text, even
    with a long unbreakable note (a file path) beside the table."""
    from PySide6.QtWidgets import QScrollArea

    from ui.backend import Verdict

    workstation.verdict = Verdict("Clip verdict: mean of 5 frames", np.array([0.001, 0.999]), key_items={1: (2,)},
                                  notes=("read from /work/shared/data/lung-ultrasound/pocus_videos/convex/"
                                         "Cov_combatting_Image1_with_a_long_name.mp4",))
    opened.reading_form.setMinimumWidth(400)  # a control wider than the dock's own minimum (360)
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.resize(900, 420)
    qtbot.waitUntil(lambda: opened.height() <= 420, timeout=2000)
    QApplication.processEvents()
    scroll = opened.review_scroll
    assert scroll.verticalScrollBar().isVisible()  # the panel overflows
    assert scroll.widget().width() <= scroll.viewport().width()  # nothing hidden past the right edge
    panel = opened.analysis_panel
    rows = panel.verdict_table.rows + panel.item_table.rows
    assert [value.text() for _, value, _ in rows] == ["0.1%", "99.9%", "10.0%", "90.0%"] or len(rows) == 4
    for _, value, _ in rows:
        assert value.width() >= value.sizeHint().width(), value.text()
        right_edge = value.mapTo(scroll.viewport(), QPoint(value.width(), 0)).x()
        assert right_edge <= scroll.viewport().width(), value.text()


def quality_report(trustworthy=True, hit=False, energy=0.056, area=0.04, deletion=0.1, insertion=0.6) -> dict:
    report = {"deletion": {"auc": deletion}, "insertion": {"auc": insertion},
              "sanity": {"trustworthy": trustworthy, "threshold": 0.5, "reason": "the map changes",
                         "steps": [{"spearman": 0.2, "spearman_in_region": 0.1}]}}
    if hit is not None:
        report.update({"pointing_game": {"hit": hit}, "energy_inside_mask": {"fraction": energy},
                       "mask_area_fraction": area})
    return report


def test_check_headline_never_reads_good_when_the_map_misses_the_mask():
    """The map depends on the weights, but its peak misses the mask and 5.6% of its energy lies
    there: the headline says it fails (red cross), never a green tick."""
    from ui.panels.map_quality import report_html

    html = report_html(quality_report(), "Grad-CAM \u00b7 tumour \u00b7 slice 3")
    headline = html.split("<table")[0]
    assert "\u2714" not in headline and "#7fd17f" not in headline
    assert "\u2718" in headline and "misses the mask" in headline


def test_map_verdict_weighs_every_measure():
    """Pass only when every measure passes; low energy alone fails; a borderline one is weak."""
    from ui.model.map_check import map_verdict

    assert map_verdict(quality_report(hit=True, energy=0.8, area=0.1)).level == "passes"
    assert map_verdict(quality_report(hit=True, energy=0.05, area=0.04)).level == "fails"  # ~ uniform
    assert map_verdict(quality_report(hit=True, energy=0.3, area=0.05)).level == "weak"
    assert map_verdict(quality_report(hit=True, energy=0.8, area=0.1, deletion=0.7, insertion=0.5)).level == "weak"
    assert map_verdict(quality_report(trustworthy=False, hit=True, energy=0.9, area=0.1)).level == "fails"
    no_mask = map_verdict(quality_report(hit=None))
    assert no_mask.level == "passes" and "no mask" in no_mask.headline


def test_the_clip_verdict_names_its_winner_bolds_it_and_its_key_frames_follow_it(qtbot, opened, workstation):
    """Frames mostly say "tumour" (the finding) but the pooled verdict is "normal": the verdict
    names "normal" as the winner, the table bolds "normal" (not a lower class), the map shows
    "normal" first, and the key frames listed are normal's."""
    from ui.backend import Verdict

    workstation.verdict = Verdict("Clip verdict: mean of 5 frames", np.array([0.519, 0.481]),
                                  key_items={0: (0, 4), 1: (2,)})
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    panel = opened.analysis_panel
    assert "Clip verdict: mean of 5 frames: normal (51.9%)" in panel.verdict.text()
    assert opened.state.overlay.class_index == 0
    (name, value, marker), (other, _, _) = panel.verdict_table.rows
    assert (name.text(), value.text()) == ("normal", "51.9%") and name.font().bold() and value.font().bold()
    assert other.text() == "tumour" and not other.font().bold()
    assert "Key slices for normal (the verdict)" in panel.key_frames.text()
    assert "<a href='item:0'>1</a>" in panel.key_frames.text()
    opened.state.overlay.class_index = 1  # looking at the other class keeps the verdict's key frames
    assert "Key slices for normal (the verdict)" in panel.key_frames.text()
    assert "Key slices for tumour (on the map)" in panel.key_frames.text()


def wheel_over(widget, steps: int = -1) -> None:
    """Turn the mouse wheel ``steps`` notches over the centre of ``widget``."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, widget.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_the_review_panel_scrolls_it_and_never_relabels_a_mark(qtbot, opened):
    """A selected mark labelled "lesion"; the wheel turned over the label box (not focused) leaves
    the label and the mark as they were, and scrolls the review column instead."""
    opened.resize(1400, 500)
    QApplication.processEvents()
    opened.state.annotation.add_point(5.0, 5.0)
    panel = opened.annotations_panel
    assert panel.label_box.currentText() == "lesion" and panel.list.currentRow() == 0
    bar = opened.review_scroll.verticalScrollBar()
    assert bar.maximum() > 0
    before = bar.value()
    opened.slice_view.setFocus()
    wheel_over(panel.label_box, -1)
    assert panel.label_box.currentText() == "lesion"
    assert opened.state.annotation.drafts[0].label == "lesion"
    assert bar.value() > before  # the turn scrolled the column down
    for box in (opened.overlay_panel.class_box, opened.analysis_panel.method, opened.display_bar.width_box):
        value = box.currentIndex() if hasattr(box, "currentIndex") else box.value()
        wheel_over(box, -2)
        assert (box.currentIndex() if hasattr(box, "currentIndex") else box.value()) == value


def test_ctrl_z_undoes_and_ctrl_shift_z_redoes_mark_changes(qtbot, opened):
    """Draw a point, relabel it, delete it; Ctrl+Z three times walks back to the drawn point
    with its first label and then to nothing; Ctrl+Shift+Z brings the point back."""
    annotation = opened.state.annotation
    opened.activateWindow()
    opened.slice_view.setFocus()
    annotation.add_point(5.0, 5.0)
    annotation.relabel(0, "oedema")
    annotation.remove(0)
    assert annotation.drafts == ()
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [mark.label for mark in annotation.drafts] == ["oedema"]
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [mark.label for mark in annotation.drafts] == ["lesion"]
    assert opened.annotations_panel.list.count() == 1
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert annotation.drafts == () and not opened.undo_action.isEnabled()
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert [mark.label for mark in annotation.drafts] == ["lesion"]
    assert opened.redo_action.isEnabled()


def click_image(qtbot, window, row: float, col: float) -> None:
    view = window.slice_view
    target = view.image_to_widget(row, col)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(round(target.x()), round(target.y())))


def screen_colour(view, row: float, col: float, dx: int = 0, dy: int = 0) -> tuple[int, int, int]:
    point = view.image_to_widget(row, col)
    colour = view.grab().toImage().pixelColor(round(point.x()) + dx, round(point.y()) + dy)
    return colour.red(), colour.green(), colour.blue()


def drawn_in(view, start, end, colour, tolerance: int = 12) -> bool:
    """True when pixels of ``colour`` lie along (within a pixel of) the screen segment between two
    image points, on at least a quarter of it (a dashed line counts)."""
    image = view.grab().toImage()
    a, b = view.image_to_widget(*start), view.image_to_widget(*end)
    hits = 0
    for step in range(41):
        point = a + (b - a) * (step / 40)
        near = [image.pixelColor(round(point.x()) + dx, round(point.y()) + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        hits += any(max(abs(p.red() - colour.red()), abs(p.green() - colour.green()),
                        abs(p.blue() - colour.blue())) <= tolerance for p in near)
    return hits >= 10


def fill_and_save(window, diagnosis="low-grade glioma", confidence=4) -> None:
    window.reading_form.diagnosis.setCurrentText(diagnosis)
    window.reading_form.confidence.button(confidence).click()
    window.reading_form.save_button.click()


def test_marks_stay_on_the_image_after_save(qtbot, opened):
    """A point drawn and saved is still drawn on the image (as the saved reading's, amber), and
    no longer a draft that could be saved twice."""
    from ui.slice_view import SAVED_MARK_COLOUR

    opened.display_bar.tool_actions["point"].trigger()
    click_image(qtbot, opened, 20.0, 20.0)
    fill_and_save(opened)
    assert opened.state.annotation.drafts == ()
    assert len(opened.state.annotation.saved_marks) == 1
    ring = screen_colour(opened.slice_view, 20.0, 20.0, dx=6)  # on the point's ring (radius 6)
    assert ring == (SAVED_MARK_COLOUR.red(), SAVED_MARK_COLOUR.green(), SAVED_MARK_COLOUR.blue())
    assert "Saved reading of" in opened.reading_form.saved_banner.text()


def test_a_saved_reading_is_listed_in_full_and_reopens_with_its_marks_and_analysis(qtbot, window, workstation):
    """Save a reading (a box, a comment) on the analysed case; open the case afresh (as after a
    restart: no analysis, no marks); the list shows the whole reading; clicking it brings back the
    box where it was drawn and the analysis's map, and says which reading is on show."""
    from ui.slice_view import SAVED_MARK_COLOUR

    open_and_list(qtbot, window, window.worklist.items()[0])
    window.analysis_panel.analyse_button.click()
    finish(qtbot, window._analysis_task)
    window.state.annotation.add_box((20.0, 20.0), (27.0, 27.0))
    window.reading_form.comment.setPlainText("enhancing rim at the lower right, see box")
    fill_and_save(window)
    open_and_list(qtbot, window, window.worklist.items()[1])
    open_and_list(qtbot, window, window.worklist.items()[0])
    assert window.state.overlay.analysis is None and window.state.annotation.saved_marks == ()
    listed = window.saved_readings.item(0)
    assert "enhancing rim at the lower right, see box" in listed.text() and "1 mark" in listed.text()
    assert window.saved_readings.wordWrap()
    rect = window.saved_readings.visualItemRect(listed)
    assert rect.height() > window.saved_readings.fontMetrics().height() * 1.5  # both lines shown
    with qtbot.waitSignal(window.saved_readings.reopen_requested, timeout=2000):
        qtbot.mouseClick(window.saved_readings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: window.state.overlay.analysis is not None, timeout=5000)
    assert window.state.overlay.analysis.prediction_id == 7
    (box,) = window.state.annotation.saved_marks
    assert box.kind == "box" and box.points == ((20.0, 20.0), (27.0, 27.0))
    assert drawn_in(window.slice_view, (20.0, 21.0), (20.0, 26.0), SAVED_MARK_COLOUR)  # the box's top edge
    assert "with the analysis it was made on" in window.reading_form.saved_banner.text()
    window.reading_form.close_saved_button.click()
    assert window.state.annotation.saved_marks == ()


def test_a_slow_method_says_its_cost_before_it_starts_and_asks(qtbot, opened, workstation, monkeypatch):
    """Picking Score-CAM to compare with shows its estimated forward passes and time; with an
    estimate over half a minute, Compare asks first, and Cancel starts nothing."""
    from PySide6.QtWidgets import QMessageBox

    workstation.cam_methods = ("gradcam", "scorecam")
    open_and_list(qtbot, opened, opened.worklist.items()[0])
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    panel = opened.analysis_panel
    assert panel.compare_method.currentText() == "Score-CAM"
    qtbot.waitUntil(lambda: panel.cost_of("scorecam") is not None, timeout=5000)
    assert workstation.cost_calls[-1] == ("glioma 1.0.0", "scorecam")
    assert panel.compare_cost.text() == "Score-CAM: about 320 forward passes, ~16 s on this machine"
    assert not panel.compare_cost.isHidden()
    workstation.seconds_per_pass = 1.0
    panel.costs.clear()
    panel.compare_method.setCurrentIndex(0)
    panel.compare_method.setCurrentIndex(1)  # picked again: estimated again
    qtbot.waitUntil(lambda: panel.cost_of("scorecam") is not None, timeout=5000)
    assert "~5 min 20 s" in panel.compare_cost.text()
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args, **kwargs: (asked.append(args[2]), QMessageBox.StandardButton.Cancel)[1])
    panel.compare_button.click()
    assert asked and "320 forward passes" in asked[0] and workstation.compare_calls == []


def test_a_long_job_says_the_time_left():
    """Half done after 60 s: about a minute left; too early to tell: nothing said."""
    from ui.panels.task_progress import duration_text, time_left

    assert time_left(60.0, 0.5) == 60.0
    assert time_left(1.0, 0.5) is None and time_left(30.0, 0.01) is None
    assert duration_text(260) == "4 min 20 s" and duration_text(8.2) == "9 s" and duration_text(3900) == "1 h 5 min"


def test_the_progress_bar_shows_the_time_left(qtbot, monkeypatch):
    """A task reported 25% done 30 s after it started: the bar says about 1 min 30 s left."""
    from ui.panels import task_progress
    from ui.panels.task_progress import TaskProgress
    from ui.workers import Task

    clock = iter([100.0, 130.0])
    monkeypatch.setattr(task_progress.time, "monotonic", lambda: next(clock))
    progress = TaskProgress()
    qtbot.addWidget(progress)
    task = Task("Comparing with Score-CAM")
    progress.follow(task)
    task.progressed.emit(0.25, "masks")
    assert progress.bar.format() == "Comparing with Score-CAM\u2026 %p%, about 1 min 30 s left"


def test_method_names_are_the_papers_names_everywhere(qtbot, opened, workstation):
    """The pickers list "Grad-CAM" (the backend still gets "gradcam"); the prediction and the
    status bar name the method as its paper does."""
    assert opened.analysis_panel.method.currentText() == "Grad-CAM"
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert workstation.analyse_calls[-1] == ("glioma 1.0.0", "gradcam")
    assert "glioma 1.0.0 \u00b7 Grad-CAM" in opened.analysis_panel.header.text()
    assert "(Grad-CAM)" in opened.statusBar().currentMessage()


def test_the_file_dialog_opens_in_the_data_folder_then_in_the_last_folder(qtbot, window, tmp_path, monkeypatch):
    """First File > Open starts in the workstation's data folder; after a file was picked in
    another folder, the next one starts there, also in a new window with the same settings."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QFileDialog

    from ui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "viewer.ini"), QSettings.Format.IniFormat)
    window.settings = settings
    folder = tmp_path / "scans"
    folder.mkdir()
    started: list[str] = []

    def pick(parent, caption, directory="", *rest, **kwargs):
        started.append(directory)
        return str(folder / "scan.nii.gz"), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick)
    monkeypatch.setattr(window, "open_path", lambda path: None)
    window.choose_file()
    window.choose_file()
    assert started == ["/fake/data", str(folder)]
    again = MainWindow(window.workstation, settings=QSettings(str(tmp_path / "viewer.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.start_folder() == str(folder)


def test_the_cursor_read_out_belongs_to_the_shown_case(qtbot, opened):
    """Found in the Xvfb run: the last case's pixel read-out stayed on the next case's image."""
    view = opened.slice_view
    target = view.image_to_widget(12.0, 12.0)
    qtbot.mouseMove(view, QPoint(round(target.x()), round(target.y())))
    assert "value 140" in view.cursor_text and "slice 3" in view.cursor_text
    open_and_list(qtbot, opened, opened.worklist.items()[1])
    assert view.cursor_text == ""


def test_notes_with_an_apostrophe_read_as_text(qtbot, opened, workstation):
    """Found in the Xvfb run: "an ultrasound's scan region" showed as "ultrasound&#x27;s": the
    labels that take escaped HTML are rich text whatever their content."""
    from ui.backend import Verdict

    workstation.verdict = Verdict("Clip verdict: mean of 5 frames", np.array([0.3, 0.7]),
                                  notes=("an ultrasound's scan region",))
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    panel = opened.analysis_panel
    for label in (panel.header, panel.verdict, panel.key_frames, panel.notes, panel.map_check,
                  opened.reading_form.saved_banner):
        assert label.textFormat() == Qt.TextFormat.RichText


def test_a_reopened_reading_shows_the_map_checks_made_then(qtbot, window, workstation):
    """A map checked (and failed) before the reading was saved carries its warning again when the
    reading is reopened after the case was closed."""
    open_and_list(qtbot, window, window.worklist.items()[0])
    window.analysis_panel.analyse_button.click()
    finish(qtbot, window._analysis_task)
    window.state.display.slice_index = 0
    window.quality_panel.check_button.click()
    qtbot.waitUntil(lambda: window.quality_panel.report.text() != "", timeout=5000)
    fill_and_save(window)
    open_and_list(qtbot, window, window.worklist.items()[1])
    open_and_list(qtbot, window, window.worklist.items()[0])
    task = window.reopen_reading(window.saved_readings.readings[0])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    window.state.display.slice_index = 0
    assert "Do not trust this map" in window.analysis_panel.map_check.text()
