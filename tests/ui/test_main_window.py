"""``MainWindow`` over the fake workstation: what the reader sees and what reaches the backend."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from engine.errors import ImageReadError
from tests.ui.fake_workstation import synthetic_maps
from engine.imaging.render import blend_overlay, colormap, inferno_lut, normalise_map, window_to_uint8
from engine.explain.summary import map_range
from ui.shortcuts import documented_keys


def screen_pixel(window, row: float, col: float) -> tuple[int, int, int]:
    """The colour the slice view shows at the centre of image pixel (row, col)."""
    view = window.slice_view
    point = view.image_to_widget(row, col)
    colour = view.grab().toImage().pixelColor(round(point.x()), round(point.y()))
    return colour.red(), colour.green(), colour.blue()


def run_analysis(qtbot, window):
    window.analysis_panel.analyse_button.click()
    task = window._analysis_task
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    return task


def test_opening_a_case_shows_flair_middle_slice_with_default_window(opened):
    """The opened case shows FLAIR at the middle slice, windowed by ImageVolume.default_window();
    picking t1 in the channel box shows T1's pixels."""
    state = opened.state
    volume = opened.case.volume
    assert (state.display.channel, state.display.slice_index) == ("flair", 2)
    centre, width = volume.default_window()
    assert opened.display_bar.width_box.value() == pytest.approx(width)
    expected = window_to_uint8(volume.channel("flair")[2], centre, width)
    assert screen_pixel(opened, 12, 12) == (expected[12, 12],) * 3
    opened.display_bar.channel.setCurrentText("t1")
    assert state.display.channel == "t1"
    t1 = window_to_uint8(volume.channel("t1")[2], centre, width)
    assert screen_pixel(opened, 12, 12) == (t1[12, 12],) * 3 != (expected[12, 12],) * 3
    assert "Slice 3 / 5" in opened.navigator.label.text()
    assert opened.worklist.list.item(0).font().bold() and not opened.worklist.list.item(1).font().bold()


def test_analysis_runs_in_worker_with_moving_progress_and_shows_results(qtbot, opened):
    """Analyse runs in a worker; the progress bar steps up; the probabilities of the slice are
    listed, the strip is drawn and the CAM is blended over the image."""
    values = []
    opened.analysis_panel.progress.bar.valueChanged.connect(values.append)
    run_analysis(qtbot, opened)
    assert values == sorted(values) and len(set(values)) >= 4 and values[-1] == 1000
    assert opened.state.overlay.analysis is not None and opened.state.overlay.class_index == 1
    text = opened.analysis_panel.summary_text()
    assert "95.0%" in text and "tumour" in text
    centre, width = opened.state.display.window
    grey = window_to_uint8(opened.case.volume.channel("flair")[2], centre, width)
    maps = synthetic_maps()[1]
    expected = blend_overlay(grey, normalise_map(maps[2], map_range(maps, 2, "volume", False)),
                             inferno_lut(), opened.state.overlay.opacity)
    assert screen_pixel(opened, 24, 24) == tuple(expected[24, 24, :3])
    assert screen_pixel(opened, 24, 24) != (grey[24, 24],) * 3
    assert screen_pixel(opened, 2, 2) == (grey[2, 2],) * 3
    strip = opened.navigator.strip.grab().toImage()
    tall, short = strip.pixelColor(round(strip.width() * 0.5), 6), strip.pixelColor(round(strip.width() * 0.1), 6)
    assert (tall.red(), tall.green(), tall.blue()) == tuple(inferno_lut()[round(0.95 * 255)])
    assert (short.red(), short.green(), short.blue()) == (20, 21, 23)  # p = 0.1 bar stays low


def test_o_key_and_checkbox_toggle_the_overlay(qtbot, opened):
    """'O' hides the CAM (the plain grey returns) and shows it again; the checkbox follows."""
    run_analysis(qtbot, opened)
    opened.activateWindow()
    opened.slice_view.setFocus()
    with_overlay = screen_pixel(opened, 24, 24)
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_O)
    assert not opened.state.overlay.visible and not opened.overlay_panel.visible.isChecked()
    plain = screen_pixel(opened, 24, 24)
    assert plain != with_overlay and plain[0] == plain[1] == plain[2]
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_O)
    assert screen_pixel(opened, 24, 24) == with_overlay
    opened.overlay_panel.visible.setChecked(False)
    assert screen_pixel(opened, 24, 24) == plain
    opened.overlay_panel.opacity.setValue(0)
    opened.overlay_panel.visible.setChecked(True)
    assert screen_pixel(opened, 24, 24) == plain  # opacity 0 shows the plain image


def test_typing_o_in_the_comment_does_not_toggle_the_overlay(qtbot, opened):
    """The 'O' shortcut leaves text fields alone: typing "ok" writes it into the comment."""
    run_analysis(qtbot, opened)
    opened.activateWindow()
    opened.reading_form.comment.setFocus()
    qtbot.keyClicks(opened.reading_form.comment, "ok")
    assert opened.reading_form.comment.toPlainText() == "ok"
    assert opened.state.overlay.visible


def test_class_picker_switches_the_map(qtbot, opened):
    """Picking "normal" shows its map: the square lights up, the tumour hot spot goes grey."""
    run_analysis(qtbot, opened)
    opened.state.overlay.opacity = 1.0
    opened.overlay_panel.class_box.setCurrentText("normal")
    assert opened.state.overlay.class_index == 0
    assert screen_pixel(opened, 12, 12) == tuple(colormap("inferno")[255])
    grey = screen_pixel(opened, 24, 24)
    assert grey[0] == grey[1] == grey[2]


def test_cancel_stops_the_analysis_and_the_window_stays_usable(qtbot, opened, workstation):
    """Cancel during analysis ends it without a result; slices still step meanwhile."""
    workstation.analyse_gate = threading.Event()
    opened.analysis_panel.analyse_button.click()
    task = opened._analysis_task
    assert opened.analysis_panel.progress.isVisible()
    assert not opened.analysis_panel.analyse_button.isEnabled()
    opened.state.display.step_slice(1)  # the GUI thread is free while the worker waits
    assert opened.state.display.slice_index == 3
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        opened.analysis_panel.progress.cancel_button.click()
    assert opened.state.overlay.analysis is None
    assert not opened.analysis_panel.progress.isVisible()
    assert opened.analysis_panel.analyse_button.isEnabled()


def test_bad_file_shows_one_clear_message_and_the_window_lives_on(qtbot, window, workstation):
    """A SalienceError from open shows its line in a dialog and the status bar; the next open works."""
    workstation.open_error = ImageReadError("/fake/CASE_A/flair.nii.gz", "truncated pixel data")
    task = window.open_item(window.worklist.items()[0])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    message = "/fake/CASE_A/flair.nii.gz: truncated pixel data"
    assert window.error_box is not None and window.error_box.text() == message
    assert window.error_box.icon() == QMessageBox.Icon.Warning
    assert message in window.statusBar().currentMessage()
    assert window.case is None and window.isVisible()
    workstation.open_error = None
    task = window.open_item(window.worklist.items()[0])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert window.case is not None


def test_open_path_error_is_reported(qtbot, window):
    """File > Open of an unreadable file shows the backend's one-line reason."""
    task = window.open_path("/tmp/notes.txt")
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert window.error_box.text() == "/tmp/notes.txt: not a NIfTI, DICOM or image file"


def test_unexpected_worker_exception_is_reported_with_its_traceback(qtbot, opened, workstation):
    """A bug in the backend (RuntimeError) is shown as unexpected, with the traceback attached."""
    workstation.analyse_error = RuntimeError("CUDA is not available")
    run_analysis(qtbot, opened)
    box = opened.error_box
    assert box.icon() == QMessageBox.Icon.Critical
    assert box.text() == "Unexpected error: RuntimeError: CUDA is not available"
    assert "fake_workstation.py" in box.detailedText()
    assert opened.state.overlay.analysis is None and opened.isVisible()


def test_save_sends_the_draft_and_lists_the_saved_reading(qtbot, opened, workstation):
    """A point clicked on the lesion, its label, diagnosis, confidence and comment reach
    save_reading; the saved list shows the reading and the draft is cleared."""
    run_analysis(qtbot, opened)
    view = opened.slice_view
    opened.display_bar.tool_actions["point"].trigger()
    target = view.image_to_widget(12.0, 11.0)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(round(target.x()), round(target.y())))
    opened.annotations_panel.label_box.setCurrentText("oedema")
    assert "oedema" in opened.annotations_panel.list.item(0).text()
    opened.reading_form.diagnosis.setCurrentText("low-grade glioma")
    assert not opened.reading_form.save_button.isEnabled()  # no confidence yet
    opened.reading_form.confidence.button(4).click()
    opened.reading_form.comment.setPlainText("FLAIR hyperintense, no enhancement")
    opened.reading_form.save_button.click()
    (case, draft), = workstation.readings
    assert (draft.diagnosis, draft.confidence, draft.comment) == (
        "low-grade glioma", 4, "FLAIR hyperintense, no enhancement")
    assert draft.prediction_id == 7 and case is opened.case
    (mark,) = draft.annotations
    assert (mark.kind, mark.slice_index, mark.label) == ("point", 2, "oedema")
    assert mark.points[0] == pytest.approx((12.0, 11.0), abs=0.1)
    saved_text = opened.saved_readings.item(0).text()
    assert "low-grade glioma" in saved_text and "confidence 4" in saved_text and "1 mark" in saved_text
    assert opened.state.annotation.drafts == () and not opened.reading_form.is_dirty()
    assert opened.worklist.items()[0].status == "read"


def test_deleting_a_mark_before_saving(qtbot, opened):
    """A drawn box is listed and the Delete button removes it from the draft and the image."""
    opened.state.annotation.add_box((2.0, 2.0), (6.0, 6.0))
    assert opened.annotations_panel.list.count() == 1
    opened.annotations_panel.list.setCurrentRow(0)
    opened.annotations_panel.delete_button.click()
    assert opened.state.annotation.drafts == () and opened.annotations_panel.list.count() == 0


def test_unsaved_changes_prompt_before_switching_case(qtbot, opened, monkeypatch):
    """With an unsaved mark, Cancel keeps the case and the mark; Discard opens the other case."""
    opened.state.annotation.add_point(5.0, 5.0)
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Discard])
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: (asked.append(args[1]), next(answers))[1])
    first_case = opened.case
    assert opened.open_item(opened.worklist.items()[1]) is None
    assert opened.case is first_case and len(opened.state.annotation.drafts) == 1
    task = opened.open_item(opened.worklist.items()[1])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert asked == ["Unsaved reading", "Unsaved reading"]
    assert opened.case is not first_case and opened.state.annotation.drafts == ()


def test_close_with_unsaved_changes_can_be_refused(opened, monkeypatch):
    """Closing with an unsaved comment asks; Cancel keeps the window open."""
    opened.reading_form.comment.setPlainText("draft")
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Cancel)
    assert not opened.close()
    assert opened.isVisible()


def test_strip_click_jumps_to_the_slice(qtbot, opened):
    """Clicking the probability strip over the 5th bar shows slice 5."""
    strip = opened.navigator.strip
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(round(strip.width() * 0.9), 10))
    assert opened.state.display.slice_index == 4
    assert opened.navigator.slider.value() == 4


def test_every_menu_shortcut_is_documented(opened):
    """Each shortcut set on a menu action, and on each tool, appears as written in the Help >
    Shortcuts table."""
    from PySide6.QtGui import QKeySequence

    documented = documented_keys()
    actions = [action for menu_action in opened.menuBar().actions() for action in menu_action.menu().actions()]
    for action in actions + list(opened.display_bar.tool_actions.values()):
        for sequence in action.shortcuts():
            key = sequence.toString(QKeySequence.SequenceFormat.PortableText)
            assert key in documented, f"{action.text()} ({key}) is not in SHORTCUTS"


def test_failed_save_keeps_the_draft_and_says_why(opened, workstation):
    """A SalienceError from save_reading is shown; the marks and the form stay for a retry."""
    from engine.errors import SalienceError

    workstation.save_error = SalienceError("database is locked; try again")
    opened.state.annotation.add_point(4.0, 4.0)
    opened.reading_form.diagnosis.setCurrentText("no tumour")
    opened.reading_form.confidence.button(2).click()
    assert not opened.save_reading()
    assert opened.error_box.text() == "database is locked; try again"
    assert len(opened.state.annotation.drafts) == 1 and opened.reading_form.is_complete()
    assert workstation.readings == []


def test_without_a_bundle_analyse_is_off_and_says_why(qtbot, window, workstation):
    """With no model installed for the task, the model box says so and Analyse stays disabled."""
    workstation.installed_bundles = ()
    task = window.open_item(window.worklist.items()[0])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    qtbot.waitUntil(lambda: not window._choices_task.is_running, timeout=5000)  # listed in a worker
    panel = window.analysis_panel
    assert panel.bundle.count() == 0 and panel.bundle.placeholderText() == "No model installed for this task"
    assert not panel.analyse_button.isEnabled()
    assert panel.method.currentText() == "Grad-CAM" and panel.method.currentData() == "gradcam"


def test_a_folder_with_two_series_asks_which_to_open(qtbot, window, tmp_path, monkeypatch):
    """Opening a DICOM folder that holds two series offers both and opens the one picked."""
    from PySide6.QtWidgets import QInputDialog

    from engine.bench.io import write_ct_series

    write_ct_series(tmp_path / "a", n_slices=4, size=16, seed=1)
    write_ct_series(tmp_path / "b", n_slices=6, size=16, seed=2)
    offered: list[list[str]] = []

    def pick_the_six_slice_series(parent, title, label, items, current, editable):
        offered.append(list(items))
        return next(i for i in items if "6 files" in i), True

    monkeypatch.setattr(QInputDialog, "getItem", pick_the_six_slice_series)
    first = window.open_path(str(tmp_path))
    with qtbot.waitSignal(first.done, timeout=10000):
        pass
    qtbot.waitUntil(lambda: window.case is not None or bool(window.last_error), timeout=10000)
    assert window.last_error == "", window.last_error
    assert len(offered) == 1 and len(offered[0]) == 2
    assert window.case.volume.shape == (6, 16, 16)
    assert window.last_error == ""
