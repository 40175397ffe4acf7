"""``SliceView`` shows the state's slice with its window and overlay, and turns input into state.

The view is 320 x 320 over a 32 x 32 image with square pixels, so image pixel (r, c) covers widget
pixels [10c, 10c + 10) x [10r, 10r + 10) and its centre is at (10c + 5, 10r + 5).
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.ui.fake_workstation import CLASS_NAMES, PROBABILITIES, synthetic_maps, synthetic_volume
from ui.backend import Analysis
from engine.imaging.render import inferno_lut, window_to_uint8
from ui.slice_view import SliceView
from ui.model import ViewerState

SCALE = 10


def shown(qtbot, state: ViewerState) -> SliceView:
    """A 320 x 320 slice view of ``state`` on screen, square voxels (no smoothing)."""
    widget = SliceView(state)
    widget.smooth = False
    qtbot.addWidget(widget)
    widget.resize(32 * SCALE, 32 * SCALE)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def view(qtbot):
    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    return shown(qtbot, state)


def pixel(view: SliceView, row: int, col: int) -> tuple[int, int, int]:
    """The colour on screen at the centre of image pixel (row, col)."""
    colour = view.grab().toImage().pixelColor(col * SCALE + SCALE // 2, row * SCALE + SCALE // 2)
    return colour.red(), colour.green(), colour.blue()


def at(row: float, col: float) -> QPoint:
    return QPoint(round((col + 0.5) * SCALE), round((row + 0.5) * SCALE))


def wheel_up(view: SliceView, notches: int = 1) -> QWheelEvent:
    """One wheel notch away from the user over the view's centre."""
    centre = QPointF(view.width() / 2, view.height() / 2)
    return QWheelEvent(centre, view.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * notches),
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                       Qt.ScrollPhase.NoScrollPhase, False)


def analyse(state: ViewerState) -> None:
    state.overlay.set_analysis(Analysis("glioma 1.0.0", CLASS_NAMES, PROBABILITIES, "gradcam",
                                synthetic_maps(), 7, (11, 12)))


def test_default_window_shows_square_as_computed_by_render(view):
    """On open, the square and the background have the grey levels of the default window."""
    volume = view.state.display.volume
    centre, width = volume.default_window()
    expected = window_to_uint8(volume.channel("flair")[2], centre, width)
    assert pixel(view, 12, 12) == (expected[12, 12],) * 3
    assert pixel(view, 2, 2) == (expected[2, 2],) * 3
    assert expected[12, 12] > expected[2, 2]


def test_window_change_changes_displayed_grey(view):
    """Window (centre 120, width 40) shows the square's 140 as white; (140, 80) as mid-grey."""
    view.state.display.window = (120.0, 40.0)
    assert pixel(view, 12, 12) == (255, 255, 255)
    view.state.display.window = (140.0, 80.0)
    assert pixel(view, 12, 12) == (window_to_uint8(np.array(140.0), 140.0, 80.0),) * 3
    assert pixel(view, 2, 2) == (0, 0, 0)


def test_right_drag_adjusts_window_and_level(qtbot, view):
    """Right-dragging right widens the window; dragging down raises the level."""
    centre, width = view.state.display.window
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=QPoint(100, 100))
    qtbot.mouseMove(view, QPoint(164, 132))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=QPoint(164, 132))
    new_centre, new_width = view.state.display.window
    step = view.state.display.volume.default_window()[1] / 256.0
    assert new_width == pytest.approx(width + 64 * step)
    assert new_centre == pytest.approx(centre + 32 * step)


def test_wheel_and_keys_step_slices_and_pixels_follow(qtbot, view):
    """Wheel up and the Up key go to the next slice, PageDown back 5 (clamped); the square's grey
    follows the slice's FLAIR value."""
    view.state.display.window = (140.0, 200.0)  # linear over all square values
    before = pixel(view, 12, 12)
    QApplication.sendEvent(view, wheel_up(view))
    assert view.state.display.slice_index == 3
    after = pixel(view, 12, 12)
    assert after[0] == window_to_uint8(np.array(160.0), 140.0, 200.0) and after[0] > before[0]
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.state.display.slice_index == 4
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert view.state.display.slice_index == 0
    assert pixel(view, 12, 12)[0] == window_to_uint8(np.array(100.0), 140.0, 200.0)


def test_overlay_hot_spot_shows_hot_colour_and_cold_spot_keeps_grey(view):
    """With the overlay on at opacity 1, the map's peak shows inferno's hottest colour, zero
    saliency keeps the grey value, negative saliency is not shown; opacity 0 is the plain image."""
    grey_background = pixel(view, 2, 2)
    grey_negative = pixel(view, 3, 26)
    analyse(view.state)
    view.state.overlay.opacity = 1.0
    assert pixel(view, 24, 24) == tuple(inferno_lut()[255])
    assert pixel(view, 2, 2) == grey_background
    assert pixel(view, 3, 26) == grey_negative
    view.state.overlay.opacity = 0.0
    plain = pixel(view, 24, 24)
    assert plain == pixel(view, 30, 30)  # same grey as the plain background around it


def test_slice_normalisation_stretches_a_weaker_slice(view):
    """On slice 0 the map is 0.5: per volume it is mid-colour, per slice the hottest colour."""
    analyse(view.state)
    view.state.overlay.opacity = 1.0
    view.state.display.slice_index = 0
    per_volume = pixel(view, 24, 24)
    view.state.overlay.normalisation = "slice"
    assert pixel(view, 24, 24) == tuple(inferno_lut()[255])
    assert per_volume != pixel(view, 24, 24)


def test_point_click_records_image_coordinates(qtbot, view):
    """Clicking with the Point tool at pixel (row 7, col 21)'s centre drops a point there."""
    view.state.annotation.tool = "point"
    view.state.annotation.label = "lesion"
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(7, 21))
    (mark,) = view.state.annotation.drafts
    assert mark.kind == "point" and mark.label == "lesion" and mark.slice_index == 2
    (row, col), = mark.points
    assert row == pytest.approx(7, abs=0.06) and col == pytest.approx(21, abs=0.06)


def test_box_drag_records_corners_and_escape_cancels(qtbot, view):
    """Dragging with the Box tool records the two corners; Esc during a drag draws nothing."""
    view.state.annotation.tool = "box"
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=at(20, 4))
    qtbot.mouseMove(view, at(9, 15))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=at(9, 15))
    (box,) = view.state.annotation.drafts
    (top, left), (bottom, right) = box.points
    assert (round(top), round(left), round(bottom), round(right)) == (9, 4, 20, 15)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=at(1, 1))
    qtbot.mouseMove(view, at(5, 5))
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=at(5, 5))
    assert len(view.state.annotation.drafts) == 1


def test_marks_stay_on_the_anatomy_after_resize(qtbot, view):
    """A point is drawn over the same image pixel after the view is resized to a wide shape."""
    view.state.annotation.add_point(10.0, 10.0)
    view.resize(640, 320)  # image now 320 wide, centred: 160 px margin left
    qtbot.waitUntil(lambda: view.width() == 640)
    centre = view.image_to_widget(10.0, 10.0)
    assert (centre.x(), centre.y()) == pytest.approx((160 + 105, 105))
    grabbed = view.grab().toImage()
    ring = grabbed.pixelColor(round(centre.x()) + 6, round(centre.y()))  # on the 6 px circle
    assert (ring.red(), ring.green(), ring.blue()) == (64, 224, 208)
    assert view.widget_to_image(centre) == pytest.approx((10.0, 10.0))
