"""Every key in the Help > Shortcuts list does what the list says (the ones not pressed here are
pressed in the tests of what they do: O, C, 1-4, I, Ctrl+Z, Ctrl+Shift+Z, Space, Esc, Delete)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt

from ui.shortcuts import SHORTCUTS, documented_keys, shortcuts_html

TOOL_KEYS = {Qt.Key.Key_N: "navigate", Qt.Key.Key_P: "point", Qt.Key.Key_B: "box", Qt.Key.Key_E: "ellipse",
             Qt.Key.Key_G: "polygon", Qt.Key.Key_M: "ruler", Qt.Key.Key_T: "roi"}


@pytest.mark.parametrize("key, tool", TOOL_KEYS.items())
def test_each_tool_key_picks_its_tool(qtbot, opened, key, tool):
    opened.activateWindow()
    opened.slice_view.setFocus()
    opened.state.annotation.tool = "navigate" if tool != "navigate" else "box"
    qtbot.keyClick(opened.slice_view, key)
    assert opened.state.annotation.tool == tool
    assert opened.display_bar.tool_actions[tool].isChecked()


def test_f_fits_and_r_resets_the_window(qtbot, opened):
    view = opened.slice_view
    opened.activateWindow()
    view.setFocus()
    fitted = view.image_rect()
    view.set_viewport(2.0, QPointF(30.0, -12.0))
    assert view.image_rect() != fitted
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.image_rect() == fitted
    opened.state.display.window = (1.0, 2.0)
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert opened.state.display.window == opened.case.volume.default_window()


def test_the_help_dialog_lists_every_shortcut():
    html = shortcuts_html()
    for keys, action in SHORTCUTS:
        assert keys.replace("<", "&lt;") in html and action in html.replace("&#x27;", "'")
    assert {"1", "2", "3", "4", "I", "C", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Del", "M", "T",
            "Shift+B", "Shift+E", "[", "]"} <= documented_keys()


def test_zoom_and_pan_are_linked_while_comparing(qtbot, opened):
    """While two methods are compared, zooming the left view zooms the right one the same way."""
    from tests.ui.test_compare import finish

    opened.workstation.cam_methods = ("gradcam", "layercam")
    opened.analysis_panel.set_choices(["glioma 1.0.0"], ["gradcam", "layercam"])
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.analysis_panel.compare_button.click()
    finish(qtbot, opened._analysis_task)
    qtbot.waitUntil(opened.compare_view.isVisible)
    left, right = opened.slice_view, opened.compare_view
    left._zoom_about(QPointF(left.width() / 3, left.height() / 3), 2.0)
    assert right.viewport() == left.viewport()
