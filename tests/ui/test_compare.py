"""Comparing two CAM methods side by side: left the first method, right the second, one state.

The fake workstation returns, for the "tumour" class, a spot at the top left for 'gradcam' and at
the bottom right for 'layercam' (100 times larger in raw value). Each spot's value grows with the
slice (k + 1 on slice k), so the slice shown changes both views.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from tests.ui.fake_workstation import CLASS_NAMES, PROBABILITIES, ROWS, SLICES, synthetic_maps
from ui.backend import Analysis
from engine.imaging.render import blend_overlay, inferno_lut, normalise_map, window_to_uint8
from engine.explain.summary import map_range
from ui.model import ViewerState

TOP_LEFT = (slice(2, 8), slice(2, 8))
BOTTOM_RIGHT = (slice(22, 28), slice(22, 28))
LAYERCAM_SCALE = 100.0


def spot_maps(spot: tuple[slice, slice], scale: float) -> np.ndarray:
    """``(2, N, H, W)``: "tumour" is ``scale * (k + 1)`` on ``spot`` at slice k, 0 elsewhere."""
    maps = np.zeros((2, SLICES, ROWS, ROWS), dtype=np.float32)
    for k in range(SLICES):
        maps[1, k][spot] = scale * (k + 1)
    return maps


@pytest.fixture
def workstation(workstation):
    workstation.cam_methods = ("gradcam", "layercam")
    workstation.method_maps = {"gradcam": spot_maps(TOP_LEFT, 1.0),
                               "layercam": spot_maps(BOTTOM_RIGHT, LAYERCAM_SCALE)}
    return workstation


def pixel(view, row: int, col: int) -> tuple[int, int, int]:
    """The colour a slice view shows at the centre of image pixel (row, col)."""
    point = view.image_to_widget(row, col)
    colour = view.grab().toImage().pixelColor(round(point.x()), round(point.y()))
    return colour.red(), colour.green(), colour.blue()


def finish(qtbot, task) -> None:
    with qtbot.waitSignal(task.done, timeout=5000):
        pass


@pytest.fixture
def comparing(qtbot, opened):
    """CASE_A analysed with gradcam, then compared with layercam, overlay at opacity 1."""
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.state.overlay.opacity = 1.0
    panel = opened.analysis_panel
    assert panel.compare_method.currentText() == "LayerCAM" and panel.compare_method.currentData() == "layercam"
    panel.compare_button.click()
    finish(qtbot, opened._analysis_task)
    qtbot.waitUntil(lambda: opened.compare_view.isVisible())
    return opened


def expected_colour(window, maps: np.ndarray, row: int, col: int) -> tuple[int, int, int]:
    """What the render functions make of ``maps`` at (row, col) of the shown slice."""
    state = window.state
    k = state.display.slice_index
    grey = window_to_uint8(window.case.volume.channel("flair")[k], *state.display.window)
    value_range = map_range(maps[1], k, state.overlay.normalisation, False)
    rgba = blend_overlay(grey, normalise_map(maps[1][k], value_range), inferno_lut(), 1.0)
    return tuple(int(v) for v in rgba[row, col, :3])


def test_compare_button_is_off_until_a_first_analysis(qtbot, opened):
    """Before Analyse the Compare button is disabled and no second view is shown."""
    panel = opened.analysis_panel
    assert not panel.compare_button.isEnabled()
    assert not opened.compare_view.isVisible() and not panel.close_compare_button.isVisible()
    panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert panel.compare_button.isEnabled()
    panel.compare_method.setCurrentText("Grad-CAM")  # the method already shown: nothing to compare
    assert not panel.compare_button.isEnabled()


def test_left_shows_first_method_right_shows_second(comparing, workstation):
    """Left view: gradcam's hot spot at the top left; right view: layercam's at the bottom right,
    both with the same bundle; each labelled with its method on the image."""
    left, right = comparing.slice_view, comparing.compare_view
    assert workstation.analyse_calls == [("glioma 1.0.0", "gradcam")]
    assert workstation.compare_calls == [(7, "gradcam", "layercam")]  # added to the shown prediction
    assert right.isVisible() and abs(left.width() - right.width()) <= 2
    grey_left_br, grey_right_tl = pixel(left, 25, 25), pixel(right, 5, 5)
    state = comparing.state
    assert state.display.slice_index == 2
    gradcam, layercam = workstation.method_maps["gradcam"], workstation.method_maps["layercam"]
    assert pixel(left, 5, 5) == expected_colour(comparing, gradcam, 5, 5)
    assert pixel(right, 25, 25) == expected_colour(comparing, layercam, 25, 25)
    assert pixel(left, 5, 5) != grey_right_tl  # hot on the left, plain grey on the right
    assert pixel(right, 25, 25) != grey_left_br
    assert grey_right_tl[0] == grey_right_tl[1] == grey_right_tl[2]
    assert grey_left_br[0] == grey_left_br[1] == grey_left_br[2]
    assert state.overlay.method_caption("main").startswith("Grad-CAM")
    assert state.overlay.method_caption("compare").startswith("LayerCAM")
    assert "own volume" in state.overlay.method_caption("compare")
    assert "(right)" in comparing.analysis_panel.summary_text()


def test_changing_the_slice_changes_both_views_and_each_is_normalised_over_its_own_volume(comparing):
    """On the last slice both spots peak and show inferno's hottest colour although layercam is
    100 times larger in raw value; on the first slice both are at a fifth of the colour map."""
    left, right = comparing.slice_view, comparing.compare_view
    hottest = tuple(inferno_lut()[255])
    middle = (pixel(left, 5, 5), pixel(right, 25, 25))
    comparing.state.display.slice_index = SLICES - 1
    assert pixel(left, 5, 5) == hottest and pixel(right, 25, 25) == hottest
    comparing.state.display.slice_index = 0
    fifth = tuple(inferno_lut()[round(255 * 0.2)])
    first = (pixel(left, 5, 5), pixel(right, 25, 25))
    assert first[0] != middle[0] and first[1] != middle[1]
    grey = window_to_uint8(comparing.case.volume.channel("flair")[0], *comparing.state.display.window)[5, 5]
    blended = tuple(round(grey * 0.8 + c * 0.2) for c in fifth)
    for shown in first:
        assert shown == pytest.approx(blended, abs=1)


def test_window_opacity_and_class_are_shared(comparing):
    """Opacity 0 shows the plain image in both views; the 'normal' class (all zero) too; a new
    window changes the grey of both alike."""
    left, right = comparing.slice_view, comparing.compare_view
    state = comparing.state
    state.display.window = (60.0, 100.0)
    grey = window_to_uint8(comparing.case.volume.channel("flair")[2], 60.0, 100.0)
    state.overlay.opacity = 0.0
    assert pixel(left, 5, 5) == pixel(right, 5, 5) == (grey[5, 5],) * 3
    assert pixel(left, 25, 25) == pixel(right, 25, 25) == (grey[25, 25],) * 3
    state.overlay.opacity = 1.0
    state.overlay.class_index = 0
    assert pixel(left, 5, 5) == (grey[5, 5],) * 3 and pixel(right, 25, 25) == (grey[25, 25],) * 3


def test_a_point_drawn_on_the_right_view_joins_the_same_draft(qtbot, comparing):
    """Clicking with the Point tool in the right view adds the mark to the one draft, and the left
    view draws it too."""
    state = comparing.state
    state.annotation.tool = "point"
    right, left = comparing.compare_view, comparing.slice_view
    target = right.image_to_widget(16.0, 4.0)
    qtbot.mouseClick(right, Qt.MouseButton.LeftButton, pos=QPoint(round(target.x()), round(target.y())))
    (mark,) = state.annotation.drafts
    assert mark.points[0] == pytest.approx((16.0, 4.0), abs=0.2)
    ring = left.image_to_widget(16.0, 4.0)
    colour = left.grab().toImage().pixelColor(round(ring.x()) + 6, round(ring.y()))
    assert (colour.red(), colour.green(), colour.blue()) == (64, 224, 208)


def test_close_comparison_returns_to_one_view(qtbot, comparing):
    """Close comparison hides the right view; the left keeps the first method's map."""
    before = pixel(comparing.slice_view, 5, 5)
    comparing.analysis_panel.close_compare_button.click()
    assert comparing.state.overlay.compare_analysis is None
    qtbot.waitUntil(lambda: not comparing.compare_view.isVisible())
    assert not comparing.analysis_panel.close_compare_button.isVisible()
    assert comparing.state.overlay.method_caption("main") == ""
    assert pixel(comparing.slice_view, 5, 5) == before
    assert comparing.analysis_panel.compare_button.isEnabled()


def analysis(method: str, class_names=CLASS_NAMES) -> Analysis:
    return Analysis("glioma 1.0.0", class_names, PROBABILITIES, method, synthetic_maps(), 7, (11, 12))


def test_state_checks_and_drops_the_comparison():
    """A comparison needs a first analysis with the same classes; a new analysis or volume ends it."""
    from tests.ui.fake_workstation import synthetic_volume

    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    with pytest.raises(ValueError, match="first analysis"):
        state.overlay.set_compare_analysis(analysis("layercam"))
    state.overlay.set_analysis(analysis("gradcam"))
    with pytest.raises(ValueError, match="differ"):
        state.overlay.set_compare_analysis(analysis("layercam", ("a", "b")))
    seen = []
    state.overlay.events.compare_analysis.connect(seen.append)
    state.overlay.set_compare_analysis(analysis("layercam"))
    assert state.overlay.analysis_for("compare").method == "layercam"
    state.overlay.set_analysis(analysis("gradcam++"))
    assert state.overlay.compare_analysis is None and seen[-1] is None
    state.overlay.set_compare_analysis(analysis("layercam"))
    state.display.set_volume(synthetic_volume(), "flair")
    assert state.overlay.compare_analysis is None and len(seen) == 4
