"""Up to four CAM methods side by side: a 2 x 2 grid with one state, linked zoom and pan, each view
captioned and removable; and the Analysis menu's device choice.

The fake workstation's "tumour" maps put each method's spot in its own corner: Grad-CAM at the top
left, Grad-CAM++ top right, LayerCAM bottom left, Eigen-CAM bottom right (``k + 1`` on slice k),
so each view's colours show which method it draws.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.ui.test_compare import finish, pixel, spot_maps
from ui.analysis_menu import COMMON_METHODS, DEVICE_KEY
from ui.slice_view import CAPTION_COLOUR

SPOTS = {"gradcam": (slice(2, 8), slice(2, 8)), "gradcampp": (slice(2, 8), slice(22, 28)),
         "layercam": (slice(22, 28), slice(2, 8)), "eigencam": (slice(22, 28), slice(22, 28))}
CENTRES = {"gradcam": (5, 5), "gradcampp": (5, 25), "layercam": (25, 5), "eigencam": (25, 25)}
FAILED_CHECK = {"sanity": {"trustworthy": False}, "deletion": {"auc": 0.2}, "insertion": {"auc": 0.6}}


@pytest.fixture
def workstation(workstation):
    workstation.cam_methods = COMMON_METHODS + ("scorecam", "hirescam")
    workstation.method_maps = {method: spot_maps(spot, 1.0) for method, spot in SPOTS.items()}
    return workstation


@pytest.fixture
def four(qtbot, opened):
    """CASE_A analysed with Grad-CAM, then Analysis > Compare the common four, overlay opacity 1."""
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.state.overlay.opacity = 1.0
    task = opened.analysis_menu.compare_common()
    finish(qtbot, task)
    qtbot.waitUntil(lambda: all(view.isVisible() for view in opened.views.views))
    return opened


def is_grey(colour: tuple[int, int, int]) -> bool:
    return colour[0] == colour[1] == colour[2]


def shown_methods(window) -> list[str]:
    return [window.state.overlay.analysis_for(view.role).method for view in window.views.shown_views()]


def test_comparing_three_more_methods_lays_out_a_2x2_grid_of_four_different_maps(four, workstation):
    """Four views in two rows and two columns, first method at the top left; each is hot at its own
    method's spot and plain grey at the other methods' spots; the three added methods explained
    the shown prediction (no new analysis)."""
    views = four.views.views
    assert shown_methods(four) == list(COMMON_METHODS)
    assert workstation.analyse_calls == [("glioma 1.0.0", "gradcam")]
    assert workstation.compare_calls == [(7, "gradcam", m) for m in ("gradcampp", "layercam", "eigencam")]
    top_left, top_right, bottom_left, bottom_right = (view.geometry() for view in views)
    assert top_left.y() == top_right.y() < bottom_left.y() == bottom_right.y()
    assert top_left.x() == bottom_left.x() < top_right.x() == bottom_right.x()
    assert abs(top_left.width() - bottom_right.width()) <= 2 and abs(top_left.height() - bottom_right.height()) <= 2
    for view, method in zip(views, COMMON_METHODS):
        for other, (row, col) in CENTRES.items():
            colour = pixel(view, row, col)
            assert is_grey(colour) != (other == method), (method, other, colour)
    hot = [pixel(view, *CENTRES[method]) for view, method in zip(views, COMMON_METHODS)]
    assert len(set(hot)) == 1  # the same value on every method's spot: the same colour, one colour map


def test_each_view_is_captioned_with_its_method_and_its_map_check(four):
    """Every view prints its method's display name on the image (amber caption pixels at its top
    right); a checked map's verdict joins its caption."""
    overlay = four.state.overlay
    for view, method in zip(four.views.views, ("Grad-CAM", "Grad-CAM++", "LayerCAM", "Eigen-CAM")):
        assert overlay.method_caption(view.role).startswith(f"{method} \u00b7 tumour")
        image = view.grab().toImage()
        corner = [image.pixelColor(x, y) for x in range(view.width() - 200, view.width() - 20) for y in range(6, 28)]
        assert any(c.red() == CAPTION_COLOUR.red() and c.green() == CAPTION_COLOUR.green() for c in corner)
    layercam = four.views.views[2]
    before = layercam.grab().toImage()
    assert "map check" not in overlay.method_caption("compare2")
    overlay.record_check("layercam", overlay.class_index, four.state.display.slice_index, FAILED_CHECK)
    assert overlay.method_caption("compare2").endswith("map check: \u2718 fails")
    assert "map check" not in overlay.method_caption("main")
    assert layercam.grab().toImage() != before  # the verdict is drawn


def test_zoom_in_one_view_zooms_all(four):
    """Ctrl+wheel over the bottom right view magnifies every view about the same image point."""
    views = four.views.views
    before = views[0].grab().toImage()
    target = views[3]
    anchor = QPointF(target.width() / 3, target.height() / 3)
    wheel = QWheelEvent(anchor, target.mapToGlobal(anchor), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(target, wheel)
    zoom, pan = target.viewport()
    assert zoom == pytest.approx(1.25 ** 2)
    for view in views:
        assert view.viewport() == (zoom, pan)
        assert view.image_to_widget(12, 12) == target.image_to_widget(12, 12)
    assert views[0].grab().toImage() != before


def test_a_slice_change_in_one_view_moves_all(qtbot, four):
    """Up in the top right view shows the next slice everywhere: each spot's colour changes."""
    views = four.views.views
    before = [pixel(view, *CENTRES[method]) for view, method in zip(views, COMMON_METHODS)]
    qtbot.keyClick(views[1], Qt.Key.Key_Up)
    assert four.state.display.slice_index == 3
    after = [pixel(view, *CENTRES[method]) for view, method in zip(views, COMMON_METHODS)]
    assert all(a != b for a, b in zip(after, before))


def test_removing_a_method_closes_up_the_grid(qtbot, four):
    """The close button of Grad-CAM++ removes it: three views remain (LayerCAM moves up to the top
    right); removing two more leaves one view filling the grid, with no close button."""
    views, buttons = four.views.views, four.views.close_buttons
    assert all(button.isVisible() for button in buttons)
    assert buttons[1].toolTip() == "Remove Grad-CAM++ from the comparison"
    qtbot.mouseClick(buttons[1], Qt.MouseButton.LeftButton)
    assert shown_methods(four) == ["gradcam", "layercam", "eigencam"]
    qtbot.waitUntil(lambda: not views[3].isVisible())
    assert views[1].geometry().y() == views[0].geometry().y() and views[2].geometry().y() > views[0].geometry().y()
    assert not is_grey(pixel(views[1], *CENTRES["layercam"]))  # the top right view now draws LayerCAM
    qtbot.mouseClick(buttons[0], Qt.MouseButton.LeftButton)  # the first method: the next one takes its place
    assert shown_methods(four) == ["layercam", "eigencam"]
    assert four.state.overlay.analysis.method == "layercam" and four.state.overlay.analysis.prediction_id == 7
    qtbot.waitUntil(lambda: not views[2].isVisible())
    assert abs(views[0].width() - views[1].width()) <= 2 and views[0].height() == views[1].height()
    qtbot.mouseClick(buttons[1], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not views[1].isVisible())
    qtbot.waitUntil(lambda: views[0].width() >= four.views.width() - 2)  # once the layout has run
    assert views[0].height() >= four.views.height() - 2 and not buttons[0].isVisible()
    assert four.state.overlay.method_caption("main") == ""
    assert not is_grey(pixel(views[0], *CENTRES["layercam"])) and is_grey(pixel(views[0], *CENTRES["gradcam"]))


def test_compare_with_adds_one_method_at_a_time_up_to_four(qtbot, opened):
    """Compare adds the picked method beside those shown; with four shown it is off."""
    panel = opened.analysis_panel
    panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    for method in ("layercam", "eigencam", "gradcampp"):
        panel.compare_method.setCurrentIndex(panel.compare_method.findData(method))
        panel.compare_button.click()
        finish(qtbot, opened._analysis_task)
    assert shown_methods(opened) == ["gradcam", "layercam", "eigencam", "gradcampp"]
    panel.compare_method.setCurrentIndex(panel.compare_method.findData("scorecam"))
    assert not panel.compare_button.isEnabled()
    assert "(bottom right)" in panel.summary_text()
    opened.analysis_menu.close_comparison_action.trigger()
    assert shown_methods(opened) == ["gradcam"]


def test_device_menu_lists_auto_and_cpu_and_cuda_with_its_reason(qtbot, window):
    """Opening Device lists what torch sees: Auto and CPU (Auto checked), CUDA disabled with why."""
    menu = window.analysis_menu
    assert list(menu.device_actions) == ["auto", "cpu"]  # before torch is loaded
    task = menu.list_devices()
    finish(qtbot, task)
    assert list(menu.device_actions) == ["auto", "cpu", "cuda"]
    auto, cpu, cuda = menu.device_actions.values()
    assert auto.isChecked() and auto.isEnabled() and cpu.isEnabled() and not cpu.isChecked()
    assert not cuda.isEnabled() and cuda.toolTip() == "torch sees no CUDA device"
    assert "SALIENCE_DEVICE" in menu.device_menu.menuAction().toolTip()


def test_choosing_cpu_persists_and_the_next_analysis_says_where_it_ran(qtbot, tmp_path, workstation):
    """CPU chosen in one window is used by the next window with the same settings, and the status
    bar says where the analysis ran."""
    from tests.ui.fake_workstation import FakeWorkstation
    from ui.main_window import MainWindow

    path = str(tmp_path / "viewer.ini")
    first = MainWindow(workstation, settings=QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    assert first.analysis_menu.choose_device("cpu")
    assert workstation.device == "cpu" and first.analysis_menu.device_actions["cpu"].isChecked()
    other = FakeWorkstation()
    again = MainWindow(other, settings=QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert other.device_calls == ["cpu"] and again.analysis_menu.device_actions["cpu"].isChecked()
    assert QSettings(path, QSettings.Format.IniFormat).value(DEVICE_KEY) == "cpu"
    again.show()
    finish(qtbot, again.open_item(again.worklist.items()[0]))
    qtbot.waitUntil(lambda: again.analysis_panel.analyse_button.isEnabled())
    again.analysis_panel.analyse_button.click()
    finish(qtbot, again._analysis_task)
    assert again.analysis_menu.device_label.text() == "Ran on cpu"
    assert "run on cpu" in again.analysis_panel.summary_text()
    again.runner.wait(3000)


def test_salience_device_disables_the_menu_and_says_why(qtbot, tmp_path):
    """With SALIENCE_DEVICE set every device entry is off, a note names the variable, and the
    remembered choice is not applied."""
    from tests.ui.fake_workstation import FakeWorkstation
    from ui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "viewer.ini"), QSettings.Format.IniFormat)
    settings.setValue(DEVICE_KEY, "cpu")
    forced = FakeWorkstation(device="cuda:0", device_override="SALIENCE_DEVICE=cuda:0")
    window = MainWindow(forced, settings=settings)
    qtbot.addWidget(window)
    menu = window.analysis_menu
    assert forced.device_calls == []
    assert menu.override_note is not None and not menu.override_note.isEnabled()
    assert menu.override_note.text() == "Set by SALIENCE_DEVICE=cuda:0 (unset it to choose here)"
    assert not any(action.isEnabled() for action in menu.device_actions.values())
    assert menu.device_actions["cpu"].toolTip() == "SALIENCE_DEVICE=cuda:0 overrides this menu"
    window.show()
    qtbot.waitExposed(window)
    window.error_box is None or window.error_box.close()
    assert not menu.choose_device("cpu") and forced.device == "cuda:0"
    assert "SALIENCE_DEVICE=cuda:0 is set" in window.last_error


def test_the_map_quality_panel_checks_the_picked_methods_map(qtbot, four, workstation):
    """While comparing, Map quality offers each shown method; checking LayerCAM's map measures
    LayerCAM and puts its verdict in the LayerCAM view's caption only."""
    panel = four.quality_panel
    assert panel.method.isVisible() and [panel.method.itemData(i) for i in range(panel.method.count())] == list(COMMON_METHODS)
    panel.method.setCurrentIndex(panel.method.findData("layercam"))
    panel.check_button.click()
    qtbot.waitUntil(panel.check_button.isEnabled, timeout=5000)
    state = four.state
    assert workstation.check_calls == [("glioma 1.0.0", "layercam", state.overlay.class_index, state.display.slice_index)]
    assert "map check:" in state.overlay.method_caption("compare2")
    assert all("map check" not in state.overlay.method_caption(role) for role in ("main", "compare", "compare3"))
    four.analysis_menu.close_comparison_action.trigger()
    assert not panel.method.isVisible() and panel.method_to_check() == "gradcam"


def test_the_common_four_replace_a_first_method_outside_them(qtbot, opened, workstation):
    """Analysed with HiResCAM, Compare the common four shows exactly those four, Grad-CAM first,
    all explaining the one prediction."""
    panel = opened.analysis_panel
    panel.method.setCurrentIndex(panel.method.findData("hirescam"))
    panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    finish(qtbot, opened.analysis_menu.compare_common())
    assert shown_methods(opened) == list(COMMON_METHODS)
    assert workstation.compare_calls == [(7, "hirescam", method) for method in COMMON_METHODS]
    assert {a.prediction_id for a in opened.state.overlay.shown_analyses} == {7}
    assert opened.analysis_menu.compare_common() is not None  # shown already: nothing to compute
    finish(qtbot, opened._analysis_task)
    assert len(workstation.compare_calls) == 4 and shown_methods(opened) == list(COMMON_METHODS)


def test_the_colour_bar_labels_never_overlap_with_four_methods(four):
    """Four methods' ends joined ("0 | 0 | 0 | 0", "0.425 | 53.3 | ...") ran into the middle word
    at the review column's width; the bar now falls back to "low" / "high" when they do not fit,
    and each text stays within its own third of the bar."""
    bar = four.overlay_panel.colour_bar
    bar.resize(260, bar.height())
    low, middle, high = bar.end_labels()
    metrics = bar.fontMetrics()
    half = bar.width() / 2.0
    assert metrics.horizontalAdvance(low) + metrics.horizontalAdvance(middle) / 2.0 < half
    assert metrics.horizontalAdvance(high) + metrics.horizontalAdvance(middle) / 2.0 < half
    four.state.overlay.set_compared(())  # one method again: its raw values at the ends
    low, middle, high = bar.end_labels()
    assert middle == "raw CAM value" and low != "low"
