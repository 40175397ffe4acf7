"""Drawing and editing marks with the mouse: ellipse, polygon, select, move, delete, undo; each
mark is drawn on screen where the mouse went and kept in image coordinates."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

from tests.ui.test_found_as_new_user import drawn_in
from tests.ui.test_slice_view import SCALE, at, shown
from tests.ui.fake_workstation import synthetic_volume
from ui.model import ViewerState
from ui.slice_view import MARK_COLOUR, SELECTED_COLOUR


@pytest.fixture
def view(qtbot):
    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    state.annotation.label = "lesion"
    return shown(qtbot, state)


def drag(qtbot, view, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, (start + end) / 2)
    qtbot.mouseMove(view, end)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)


def test_an_ellipse_is_drawn_where_the_mouse_dragged(qtbot, view):
    """Dragging from (4, 4) to (12, 20) with the Ellipse tool keeps that box and draws the ellipse
    through the middle of its edges (and not at the box's corners)."""
    annotation = view.state.annotation
    annotation.tool = "ellipse"
    drag(qtbot, view, at(4, 4), at(12, 20))
    (mark,) = annotation.drafts
    assert mark.kind == "ellipse" and mark.slice_index == 2
    assert mark.points == (pytest.approx((4.0, 4.0), abs=0.1), pytest.approx((12.0, 20.0), abs=0.1))
    assert drawn_in(view, (4.0, 11.0), (4.0, 13.0), MARK_COLOUR)  # the top of the ellipse
    assert not drawn_in(view, (4.0, 4.0), (4.0, 5.0), MARK_COLOUR)  # the box's corner stays bare


def test_a_polygon_is_drawn_by_clicks_and_closed_by_double_click(qtbot, view):
    """Three clicks and a double-click on the fourth vertex make one four-vertex polygon."""
    annotation = view.state.annotation
    annotation.tool = "polygon"
    for row, col in ((4, 4), (4, 24), (20, 24)):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(row, col))
    assert annotation.drafts == ()  # still drawing
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(20, 4))
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=at(20, 4))
    (mark,) = annotation.drafts
    assert mark.kind == "polygon" and len(mark.points) == 4
    assert mark.points[2] == pytest.approx((20.0, 24.0), abs=0.1)
    assert drawn_in(view, (4.0, 8.0), (4.0, 20.0), MARK_COLOUR)  # the first edge


def test_enter_closes_a_polygon_backspace_removes_a_vertex_and_esc_cancels(qtbot, view):
    annotation = view.state.annotation
    annotation.tool = "polygon"
    view.setFocus()
    for row, col in ((4, 4), (4, 24), (30, 30), (20, 24)):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(row, col))
    qtbot.keyClick(view, Qt.Key.Key_Backspace)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    (mark,) = annotation.drafts
    assert len(mark.points) == 3 and mark.points[-1] == pytest.approx((30.0, 30.0), abs=0.1)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(2, 2))
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert len(annotation.drafts) == 1


def test_navigate_selects_moves_and_deletes_a_mark_and_undo_brings_it_back(qtbot, view):
    """With Navigate, clicking a box selects it (drawn white); dragging it by (5, 3) moves it in
    image coordinates in one undo step; Delete removes it; Ctrl+Z twice restores it where drawn."""
    annotation = view.state.annotation
    box = annotation.add_box((4.0, 4.0), (10.0, 10.0))
    annotation.tool = "navigate"
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(7, 7))
    assert annotation.selected == 0
    assert drawn_in(view, (4.0, 5.0), (4.0, 9.0), SELECTED_COLOUR)
    drag(qtbot, view, at(7, 7), at(12, 10))
    (moved,) = annotation.drafts
    assert moved.points == (pytest.approx((9.0, 7.0), abs=0.1), pytest.approx((15.0, 13.0), abs=0.1))
    assert drawn_in(view, (9.0, 8.0), (9.0, 12.0), SELECTED_COLOUR)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert annotation.drafts == ()
    annotation.undo()
    annotation.undo()
    assert annotation.drafts == (box,)


def test_dragging_on_empty_image_pans_and_never_moves_a_mark(qtbot, view):
    annotation = view.state.annotation
    box = annotation.add_box((4.0, 4.0), (10.0, 10.0))
    annotation.tool = "navigate"
    before = view.image_rect()
    drag(qtbot, view, at(25, 25), at(28, 27))
    assert annotation.drafts == (box,) and annotation.selected == -1
    assert view.image_rect().topLeft() == before.topLeft() + (at(28, 27) - at(25, 25)).toPointF()
    assert SCALE == 10
