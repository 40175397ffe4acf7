"""Windowing presets, inversion, the cursor read-out, the ruler and ROI statistics, on screen.

A CT-like volume with anisotropic pixels (rows 2 mm apart, columns 1 mm) and a real LPS affine:
a 32 x 32 slice of -1000 HU (air) with a 0 HU square (water, rows 8-15, cols 8-15) and a 700 HU
spot (bone, rows 20-23, cols 20-23).
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from engine.imaging.render import window_to_uint8
from engine.imaging.volume import ImageVolume
from tests.ui.test_found_as_new_user import open_and_list
from ui.model import ViewerState
from ui.slice_view import SliceView

SPACING = (3.0, 2.0, 1.0)  # slice, row, column steps in mm


def ct_volume() -> ImageVolume:
    array = np.full((1, 3, 32, 32), -1000.0, dtype=np.float32)
    array[0, :, 8:16, 8:16] = 0.0
    array[0, :, 20:24, 20:24] = 700.0
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 1], affine[2, 0] = SPACING[2], SPACING[1], SPACING[0]  # x <- col, y <- row, z <- slice
    affine[:3, 3] = (-15.5, -31.0, 100.0)
    affine[3, 3] = 1.0
    return ImageVolume(array=array, spacing=SPACING, affine=affine, modality="CT", kind="volume",
                       source="/fake/ct", channel_names=("ct",))


@pytest.fixture
def ct(qtbot):
    state = ViewerState()
    state.display.set_volume(ct_volume())
    view = SliceView(state)
    view.smooth = False
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    qtbot.waitExposed(view)
    return state, view


def screen(view: SliceView, row: float, col: float) -> tuple[int, int, int]:
    point = view.image_to_widget(row, col)
    colour = view.grab().toImage().pixelColor(round(point.x()), round(point.y()))
    return colour.red(), colour.green(), colour.blue()


def widget_point(view: SliceView, row: float, col: float) -> QPoint:
    point = view.image_to_widget(row, col)
    return QPoint(round(point.x()), round(point.y()))


def test_number_keys_apply_window_presets_in_the_window(qtbot, window, workstation):
    """Keys 1-4 set soft tissue 400/40, lung 1500/-600, bone 2500/480, brain 80/40; the windowed
    grey level of a known voxel follows (FLAIR 140 in the square of slice 2)."""
    open_and_list(qtbot, window, window.worklist.items()[0])
    window.activateWindow()
    window.slice_view.setFocus()
    view, display = window.slice_view, window.state.display
    for key, (centre, width) in zip((Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4),
                                    ((40, 400), (-600, 1500), (480, 2500), (40, 80))):
        qtbot.keyClick(view, key)
        assert display.window == (centre, width)
        level = int(window_to_uint8(np.array(140.0), centre, width))
        point = view.image_to_widget(12, 12)
        colour = view.grab().toImage().pixelColor(round(point.x()), round(point.y()))
        assert (colour.red(), colour.green(), colour.blue()) == (level,) * 3
    assert "Brain" in window.statusBar().currentMessage()


def test_i_inverts_the_grey_levels(qtbot, window):
    """With the soft-tissue preset, FLAIR 140 shows as grey 166; 'I' shows it as 255 - 166."""
    open_and_list(qtbot, window, window.worklist.items()[0])
    window.activateWindow()
    window.slice_view.setFocus()
    qtbot.keyClick(window.slice_view, Qt.Key.Key_1)
    level = int(window_to_uint8(np.array(140.0), 40, 400))
    qtbot.keyClick(window.slice_view, Qt.Key.Key_I)
    assert window.state.display.invert and window.display_bar.invert_box.isChecked()
    view = window.slice_view
    point = view.image_to_widget(12, 12)
    colour = view.grab().toImage().pixelColor(round(point.x()), round(point.y()))
    assert colour.red() == 255 - level
    qtbot.keyClick(window.slice_view, Qt.Key.Key_I)
    assert not window.state.display.invert


def test_right_drag_changes_the_window_from_the_files_default(ct, qtbot):
    """The CT opens at its default window; right-dragging right widens it, down raises the level."""
    state, view = ct
    start = state.display.window
    assert start == state.display.volume.default_window()
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=QPoint(200, 200))
    qtbot.mouseMove(view, QPoint(264, 232))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=QPoint(264, 232))
    centre, width = state.display.window
    assert width > start[1] and centre > start[0]


def test_the_cursor_reads_out_the_pixel_its_value_and_patient_position(ct, qtbot):
    """Over the bone spot (row 21, col 22) on slice 1: value 700, LPS position from the affine."""
    state, view = ct
    qtbot.mouseMove(view, widget_point(view, 21, 22))
    x, y, z, _ = state.display.volume.affine @ np.array([1, 21, 22, 1.0])
    assert view.cursor_text == f"row 21, col 22, slice 2  value 700\nLPS {x:.1f}, {y:.1f}, {z:.1f} mm"
    assert (x, y, z)[:2] == (22 * 1.0 - 15.5, 21 * 2.0 - 31.0)


def test_the_ruler_measures_millimetres_with_the_pixel_spacing(ct, qtbot):
    """From (4, 4) to (7, 8): 3 rows of 2 mm and 4 columns of 1 mm make 7.2 mm, not 5 pixels."""
    state, view = ct
    state.annotation.tool = "ruler"
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=widget_point(view, 4, 4))
    qtbot.mouseMove(view, widget_point(view, 7, 8))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=widget_point(view, 7, 8))
    assert state.measure.ruler_mm() == pytest.approx(np.hypot(3 * 2.0, 4 * 1.0), abs=0.15)
    assert state.annotation.drafts == ()  # a measure, not a mark of the reading
    middle = view.image_to_widget(5.5, 6.0)
    colour = view.grab().toImage().pixelColor(round(middle.x()), round(middle.y()))
    assert colour.green() > 200 and colour.red() < 200  # the ruler is drawn along the drag


def test_roi_statistics_of_a_box(ct, qtbot):
    """An ROI over the bone spot and some water: mean and SD of the HU inside, area in mm^2."""
    state, view = ct
    state.annotation.tool = "roi"
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=widget_point(view, 20, 18))
    qtbot.mouseMove(view, widget_point(view, 23, 23))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=widget_point(view, 23, 23))
    stats = state.measure.roi_stats()
    inside = ct_volume().array[0, 1, 20:24, 18:24]
    assert stats.pixels == inside.size == 24
    assert stats.mean == pytest.approx(inside.mean()) and stats.sd == pytest.approx(inside.std(ddof=1))
    assert stats.area_mm2 == pytest.approx(24 * 2.0 * 1.0)
    QApplication.processEvents()


def test_a_new_volume_drops_the_measures(ct):
    state, _ = ct
    state.measure.set_ruler((1.0, 1.0), (2.0, 2.0))
    state.display.set_volume(ct_volume())
    assert state.measure.ruler is None and state.measure.ruler_mm() is None
