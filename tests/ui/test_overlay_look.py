"""How the map is drawn: colour map choice, threshold, contours, the colour bar, and the
prediction panel's calibration and map-check warning, checked on screen."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from engine.explain.summary import map_range
from engine.imaging.render import blend_overlay, colormap, normalise_map, window_to_uint8
from tests.ui.fake_workstation import synthetic_maps
from tests.ui.test_main_window import run_analysis, screen_pixel


def expected(window, row: int, col: int, lut_name: str, threshold: float = 0.0) -> tuple[int, int, int]:
    state = window.state
    grey = window_to_uint8(window.case.volume.channel("flair")[2], *state.display.window)
    maps = synthetic_maps()[1]
    rgba = blend_overlay(grey, normalise_map(maps[2], map_range(maps, 2, "volume", False)), colormap(lut_name),
                         state.overlay.opacity, threshold)
    return tuple(int(v) for v in rgba[row, col, :3])


def test_every_colour_map_paints_the_hot_spot_in_its_own_colours(qtbot, opened):
    """Picking cividis (readable over H&E pink) or viridis repaints the hot spot with that map."""
    run_analysis(qtbot, opened)
    for name in ("cividis", "viridis", "jet", "inferno"):
        opened.overlay_panel.colormap_box.setCurrentText(name)
        assert opened.state.overlay.colormap == name
        assert screen_pixel(opened, 24, 24) == expected(opened, 24, 24, name)
    assert tuple(colormap("cividis")[255]) == (254, 232, 56) and tuple(colormap("cividis")[0]) == (0, 34, 78)


def test_the_threshold_hides_weak_saliency_and_keeps_the_colours_of_the_rest(qtbot, opened):
    """On slice 3 the tumour map is 0.5 of its range: hidden at a 60% threshold (plain grey),
    shown in its usual colour at 40%."""
    run_analysis(qtbot, opened)
    opened.state.display.slice_index = 3
    grey = window_to_uint8(opened.case.volume.channel("flair")[3], *opened.state.display.window)[24, 24]
    shown = screen_pixel(opened, 24, 24)
    assert shown != (grey,) * 3
    opened.overlay_panel.threshold.setValue(60)
    assert opened.state.overlay.threshold == 0.6
    assert screen_pixel(opened, 24, 24) == (grey,) * 3
    opened.overlay_panel.threshold.setValue(40)
    assert screen_pixel(opened, 24, 24) == shown


def test_contours_only_leave_the_inside_of_the_hot_spot_grey_and_draw_its_rim(qtbot, opened):
    """'C' draws iso-lines: the hot square's centre shows the plain grey, its rim the map colour."""
    run_analysis(qtbot, opened)
    opened.activateWindow()
    opened.slice_view.setFocus()
    opened.slice_view.smooth = False
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_C)
    assert opened.state.overlay.contour and opened.overlay_panel.contour.isChecked()
    grey = window_to_uint8(opened.case.volume.channel("flair")[2], *opened.state.display.window)
    assert screen_pixel(opened, 24, 24) == (grey[24, 24],) * 3  # inside the hot square (rows 20-27)
    rim = screen_pixel(opened, 20, 24)
    assert rim != (grey[20, 24],) * 3 and rim[0] != rim[2]


def test_the_colour_bar_says_the_raw_range_and_the_normalisation(qtbot, opened):
    """The bar is labelled with the raw values at its ends and, in words, how they were chosen."""
    run_analysis(qtbot, opened)
    overlay = opened.state.overlay
    assert overlay.scope_text() == "normalised over the whole volume"
    overlay.normalisation = "slice"
    assert overlay.scope_text() == "normalised over this slice"
    bar = opened.overlay_panel.colour_bar
    image = bar.grab().toImage()
    text_rows = [y for y in range(30, bar.height()) if any(image.pixelColor(x, y).lightness() > 150
                                                            for x in range(bar.width()))]
    assert text_rows  # the scope line is drawn under the bar


def test_the_prediction_says_calibration_and_warns_when_the_shown_map_failed_its_check(qtbot, opened, workstation):
    """The header says the probabilities are calibrated; after 'Check this map' fails on slice 1,
    the prediction panel carries a red warning while that map is shown, and not on another slice."""
    run_analysis(qtbot, opened)
    panel = opened.analysis_panel
    assert "calibrated on held-out data" in panel.header.text()
    assert "not checked" in panel.map_check.text()
    opened.state.display.slice_index = 0  # the fake's check fails the sanity test on slice 0
    opened.quality_panel.check_button.click()
    qtbot.waitUntil(lambda: opened.quality_panel.report.text() != "", timeout=5000)
    assert "Do not trust this map" in panel.map_check.text() and "#ff8a80" in panel.map_check.text()
    opened.state.display.slice_index = 1
    assert "not checked" in panel.map_check.text()
    opened.state.display.slice_index = 0
    assert "Do not trust this map" in panel.map_check.text()
