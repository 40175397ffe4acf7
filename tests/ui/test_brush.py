"""Painting with the mouse: the brush paints exactly the pixels within its radius of the mouse's
path, in its label's colour on screen; the eraser clears; one stroke is one undo step; the keys
pick the tools and size the brush; a saved reading's masks are shown again."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt

from tests.ui.test_marks import view  # noqa: F401 (fixture: FLAIR slice 2, label "lesion", 10 screen px a pixel)
from tests.ui.test_slice_view import at, pixel
from ui.backend import AnnotationDraft
from ui.mask_painter import SAVED_MASK_ALPHA
from ui.model.label_mask import MASK_ALPHA, label_colour
from engine.imaging.mask_rle import encode_mask


def stroke(qtbot, view, *points: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=points[0])
    for point in points[1:]:
        qtbot.mouseMove(view, point)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=points[-1])


def within(shape, path, radius) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` of the polyline ``path`` (exact point-segment distance)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    best = np.full(shape, np.inf)
    for (r0, c0), (r1, c1) in zip(path, path[1:]):
        length2 = (r1 - r0) ** 2 + (c1 - c0) ** 2
        t = np.clip(((rows - r0) * (r1 - r0) + (cols - c0) * (c1 - c0)) / length2, 0, 1)
        best = np.minimum(best, np.hypot(rows - r0 - t * (r1 - r0), cols - c0 - t * (c1 - c0)))
    return best <= radius


def blended(grey: tuple[int, int, int], value: int, alpha: int) -> tuple[int, int, int]:
    return tuple(round(c * alpha / 255 + g * (1 - alpha / 255)) for c, g in zip(label_colour(value), grey))


def close(a, b, tolerance=3) -> bool:
    return max(abs(x - y) for x, y in zip(a, b)) <= tolerance


def test_a_brush_drag_paints_the_pixels_within_the_radius_of_the_path(qtbot, view):
    annotation = view.state.annotation
    annotation.tool, annotation.brush_radius = "brush", 2
    bare_painted, bare_unpainted = pixel(view, 8, 8), pixel(view, 12, 8)
    stroke(qtbot, view, at(8, 5), at(8, 12), at(14, 12))
    (mark,) = annotation.drafts
    assert mark.kind == "mask" and mark.slice_index == 2 and mark.label == "lesion"
    np.testing.assert_array_equal(mark.mask.decode(), within((32, 32), [(8, 5), (8, 12), (14, 12)], 2))
    annotation.tool = "navigate"  # no brush cursor over the pixels read below
    assert close(pixel(view, 8, 8), blended(bare_painted, 1, MASK_ALPHA))  # painted: label colour over grey
    assert pixel(view, 12, 8) == bare_unpainted  # 4 pixels from the path: untouched
    assert pixel(view, 8, 8) != bare_painted


def test_the_eraser_clears_and_undo_redo_take_whole_strokes(qtbot, view):
    annotation = view.state.annotation
    annotation.tool, annotation.brush_radius = "brush", 3
    bare_erased, bare_kept = pixel(view, 10, 13), pixel(view, 10, 6)
    stroke(qtbot, view, at(10, 4), at(10, 10), at(10, 20))
    painted = annotation.drafts[0].mask.decode()
    annotation.tool = "eraser"
    stroke(qtbot, view, at(10, 12), at(10, 14))
    erased = annotation.drafts[0].mask.decode()
    np.testing.assert_array_equal(erased, painted & ~within((32, 32), [(10, 12), (10, 14)], 3))
    annotation.tool = "navigate"
    assert pixel(view, 10, 13) == bare_erased  # erased: the image as it was
    assert close(pixel(view, 10, 6), blended(bare_kept, 1, MASK_ALPHA))  # outside the eraser: still painted
    assert annotation.undo()  # the eraser stroke
    np.testing.assert_array_equal(annotation.drafts[0].mask.decode(), painted)
    assert close(pixel(view, 10, 13), blended(bare_erased, 1, MASK_ALPHA))
    assert annotation.undo() and annotation.drafts == ()  # the brush stroke, all of it
    assert annotation.redo() and annotation.redo()
    np.testing.assert_array_equal(annotation.drafts[0].mask.decode(), erased)


def test_the_brush_cursor_is_a_circle_of_the_radius_in_image_pixels(qtbot, view):
    annotation = view.state.annotation
    annotation.tool, annotation.brush_radius = "brush", 4
    qtbot.mouseMove(view, at(16, 16))
    image = view.grab().toImage()

    def brightest(point: QPoint) -> int:
        return max(image.pixelColor(point.x() + dx, point.y() + dy).lightness()
                   for dx in (-1, 0, 1) for dy in (-1, 0, 1))

    assert brightest(at(16, 20)) >= 240 and brightest(at(12, 16)) >= 240  # 4 image pixels = 40 screen pixels away
    assert brightest(at(16, 18)) < 200 and brightest(at(16, 22)) < 200  # neither inside nor outside the rim
    annotation.brush_radius = 2
    image = view.grab().toImage()
    assert brightest(at(16, 18)) >= 240 and brightest(at(16, 20)) < 200


def test_a_saved_readings_mask_is_drawn_fainter_and_is_not_a_draft(qtbot, view):
    annotation = view.state.annotation
    mask = np.zeros((32, 32), dtype=bool)
    mask[4:8, 20:26] = True
    bare, beside = pixel(view, 5, 22), pixel(view, 10, 22)
    annotation.show_saved((AnnotationDraft("mask", 2, (), "oedema", encode_mask(mask)),))
    value = annotation.label_value("oedema")
    assert close(pixel(view, 5, 22), blended(bare, value, SAVED_MASK_ALPHA))
    assert pixel(view, 10, 22) == beside and annotation.drafts == ()
    view.state.display.slice_index = 1
    assert pixel(view, 5, 22) != blended(bare, value, SAVED_MASK_ALPHA)  # on its own slice only


SHIFT = Qt.KeyboardModifier.ShiftModifier


def test_shift_b_shift_e_and_brackets_pick_the_tools_and_size_the_brush(qtbot, opened):
    annotation = opened.state.annotation
    opened.activateWindow()
    opened.slice_view.setFocus()
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_B, SHIFT)
    assert annotation.tool == "brush" and opened.display_bar.tool_actions["brush"].isChecked()
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_E, SHIFT)
    assert annotation.tool == "eraser"
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_B)  # plain B stays the Box
    assert annotation.tool == "box"
    radius = annotation.brush_radius
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_BracketRight)
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_BracketRight)
    assert annotation.brush_radius == radius + 2
    qtbot.keyClick(opened.slice_view, Qt.Key.Key_BracketLeft)
    assert annotation.brush_radius == radius + 1


def test_ctrl_z_undoes_one_stroke_of_many_moves(qtbot, opened):
    """In the window, a brush stroke of several mouse moves is undone by one Ctrl+Z and redone by one Ctrl+Shift+Z."""
    annotation, view = opened.state.annotation, opened.slice_view
    opened.activateWindow()
    view.setFocus()
    annotation.tool = "brush"
    centre = view.image_to_widget(12.0, 12.0).toPoint()
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=centre)
    for dx in range(1, 30, 3):
        qtbot.mouseMove(view, centre + QPoint(dx, dx // 2))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=centre + QPoint(28, 14))
    (mark,) = annotation.drafts
    assert mark.kind == "mask" and mark.mask.area > 0
    assert "px painted" in opened.annotations_panel.list.item(0).text()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert annotation.drafts == () and not annotation.can_undo
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | SHIFT)
    assert annotation.drafts == (mark,)
