"""The slide view's reading tools on a real pyramidal TIFF (0.5 µm per level-0 pixel, thumbnail
4x smaller): every mark and measure of the slice view, selecting, moving and deleting marks, the
cursor read-out, the compared method shown, the window and inversion, and the file closed when
the slide goes.

At scale 1 centred on level-0 (300, 250) the 400 x 300 view shows level-0 (x + 100, y + 100) at
screen (x, y), and thumbnail ``(row, col)`` = ``(y0 / 4 - 0.5, x0 / 4 - 0.5)``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from engine.imaging.render import colormap
from engine.imaging.slide import SlideReader, rgb_volume
from tests.ui.test_slide_view import HEIGHT, WIDTH, mosaic, pixels, settle, shown  # noqa: F401 (fixtures)
from ui.backend import Analysis, Verdict
from ui.mark_editing import MARK_COLOUR, MEASURE_COLOUR, SELECTED_COLOUR
from ui.model import ViewerState
from ui.slide_view import SlideView

TURQUOISE = (MARK_COLOUR.red(), MARK_COLOUR.green(), MARK_COLOUR.blue())


def at_full_zoom(qtbot, view: SlideView) -> None:
    view.set_view(1.0, QPointF(300.0, 250.0))
    settle(qtbot, view)


def thumb(x: float, y: float) -> tuple[float, float]:
    """Thumbnail (row, col) under screen (x, y) at full zoom."""
    return (y + 100) / 4 - 0.5, (x + 100) / 4 - 0.5


def drag(qtbot, view, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, (start + end) / 2)
    qtbot.mouseMove(view, end)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)


def colour_near(screen: np.ndarray, x: int, y: int, rgb: tuple[int, int, int], radius: int = 2) -> bool:
    patch = screen[y - radius : y + radius + 1, x - radius : x + radius + 1].astype(int)
    return bool((np.abs(patch - np.array(rgb)).sum(axis=2) < 40).any())


def test_an_ellipse_and_a_polygon_are_drawn_on_the_slide_in_thumbnail_pixels(qtbot, shown):
    """Ellipse: a drag draws it (it does not pan). Polygon: clicks then Enter close it. Both are
    kept in thumbnail (row, col), as a slide's marks are stored, and drawn where the mouse went."""
    view, state, _ = shown
    at_full_zoom(qtbot, view)
    state.annotation.tool = "ellipse"
    drag(qtbot, view, QPoint(40, 40), QPoint(160, 120))
    assert view.view()[1] == QPointF(300.0, 250.0)  # no pan
    [ellipse] = state.annotation.drafts
    assert ellipse.kind == "ellipse"
    assert ellipse.points == (pytest.approx(thumb(40, 40)), pytest.approx(thumb(160, 120)))
    state.annotation.tool = "polygon"
    for x, y in ((220, 40), (320, 60), (260, 140)):  # clear of the minimap (x > 210, y > 155)
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.keyClick(view, Qt.Key.Key_Return)
    polygon = state.annotation.drafts[1]
    assert polygon.kind == "polygon" and len(polygon.points) == 3
    assert polygon.points[1] == pytest.approx(thumb(320, 60))
    screen = pixels(view)
    assert colour_near(screen, 100, 120, TURQUOISE)  # the ellipse's bottom
    assert colour_near(screen, 160, 80, TURQUOISE)  # its right
    assert colour_near(screen, 270, 50, TURQUOISE)  # the polygon's first edge
    assert not colour_near(screen, 100, 80, TURQUOISE, radius=6)  # the ellipse is not filled


def test_with_navigate_a_click_selects_a_mark_a_drag_moves_it_and_delete_removes_it(qtbot, shown):
    view, state, _ = shown
    at_full_zoom(qtbot, view)
    state.annotation.add_box(thumb(50, 50), thumb(150, 130))
    state.annotation.tool = "navigate"
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 90))
    assert state.annotation.selected == 0
    screen = pixels(view)
    assert colour_near(screen, 100, 50, (SELECTED_COLOUR.red(), SELECTED_COLOUR.green(), SELECTED_COLOUR.blue()))
    drag(qtbot, view, QPoint(100, 90), QPoint(140, 110))  # 40, 20 screen = level-0 pixels = 10, 5 thumbnail
    assert view.view()[1] == QPointF(300.0, 250.0)  # the mark moved, the slide did not
    [box] = state.annotation.drafts
    assert box.points[0] == pytest.approx((thumb(50, 50)[0] + 5, thumb(50, 50)[1] + 10))
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert state.annotation.drafts == ()
    # Off any mark a drag still pans.
    drag(qtbot, view, QPoint(200, 60), QPoint(160, 60))
    assert view.view()[1].x() == pytest.approx(340.0)


def test_the_ruler_reads_micrometres_from_the_slide_pixel_size(qtbot, shown):
    view, state, _ = shown
    at_full_zoom(qtbot, view)
    state.annotation.tool = "ruler"
    drag(qtbot, view, QPoint(40, 60), QPoint(280, 240))  # 240 x 180 level-0 pixels: 300 px = 150 µm
    ruler = state.measure.ruler
    assert ruler is not None and state.annotation.drafts == ()
    assert view.ruler_text(ruler.start, ruler.end) == "150 \u00b5m"
    screen = pixels(view)
    assert colour_near(screen, 160, 150, (MEASURE_COLOUR.red(), MEASURE_COLOUR.green(), MEASURE_COLOUR.blue()))
    view.set_view(0.1, QPointF(448.0, 336.0))  # the length is the same zoomed out, in mm over 1000 µm
    assert view.ruler_text((0.0, 0.0), (0.0, 1996 / 4)) == "998 \u00b5m"  # 1996 level-0 px of 0.5 µm
    assert view.ruler_text((0.0, 0.0), (0.0, 2400 / 4)) == "1.2 mm"


def test_the_roi_gives_its_area_in_square_millimetres_and_the_mean_colour_of_the_slide(qtbot, shown, mosaic):
    view, state, _ = shown
    at_full_zoom(qtbot, view)
    state.annotation.tool = "roi"
    drag(qtbot, view, QPoint(20, 40), QPoint(120, 140))  # level-0 x 120..220, y 140..240
    roi = state.measure.roi
    assert view.roi_rect0(roi) == pytest.approx((120.0, 140.0, 100.0, 100.0))
    colour = view.roi_colour(roi)
    expected = mosaic.level0[140:240, 120:220].reshape(-1, 3).mean(axis=0)
    assert colour.level == 0 and colour.pixels == 100 * 100
    assert colour.rgb == pytest.approx(tuple(expected), abs=1e-6)
    text = view.roi_text(roi)
    assert text.startswith("0.0025 mm\u00b2\nmean RGB ")
    assert text.endswith(" ".join(f"{v:.0f}" for v in expected))


def test_the_cursor_reads_out_level_0_pixels_micrometres_and_the_colour(qtbot, shown, mosaic):
    view, _, _ = shown
    at_full_zoom(qtbot, view)
    seen: list[str] = []
    view.cursor_moved.connect(seen.append)
    qtbot.mouseMove(view, QPoint(50, 70))  # level 0 (150, 170)
    qtbot.waitUntil(lambda: bool(view.cursor_text))
    red, green, blue = mosaic.level0[170, 150]
    assert view.cursor_text == f"x 150, y 170 px \u00b7 75.0, 85.0 \u00b5m  RGB {red} {green} {blue}"
    assert seen[-1] == view.cursor_text
    view.leaveEvent(None)
    assert seen[-1] == "" and view.cursor_text == ""


def analysis(method: str, hot: tuple[slice, slice]) -> Analysis:
    maps = np.zeros((2, 1, 168, 224), np.float32)
    maps[1, 0][hot] = 1.0
    probabilities = np.array([[0.3, 0.7]], np.float32)
    return Analysis(bundle="histopathology 1.0.0", class_names=("a", "b"), probabilities=probabilities,
                    method=method, maps=maps, prediction_id=1, explanation_ids=(1, 2),
                    verdict=Verdict("Slide score", probabilities[0]))


def test_while_comparing_the_slide_says_which_method_it_draws_and_the_selector_switches(qtbot, shown, mosaic):
    view, state, _ = shown
    state.overlay.set_analysis(analysis("gradcam", (slice(0, 56), slice(0, 56))))
    state.overlay.opacity = 1.0
    at_full_zoom(qtbot, view)
    assert view.method_picker.isHidden()
    state.overlay.set_compared([analysis("scorecam", (slice(56, 112), slice(0, 56)))])
    assert view.method_picker.isVisible() and view.method_picker.count() == 2
    assert [view.method_picker.itemText(i) for i in range(2)] == ["Grad-CAM", "Score-CAM"]
    assert view.method_picker.currentIndex() == 0
    hot = colormap(state.overlay.colormap)[255]  # viridis: the H&E default
    screen = pixels(view)
    assert (screen[60:100, 20:100] == hot).all()  # Grad-CAM's hot cell: level-0 y 160..200 (< 224)
    assert not (screen[150:200, 20:100] == hot).all(axis=2).any()  # Score-CAM's cell (y 250..300) is not hot
    view.method_picker.activated.emit(1)
    assert view.role == "compare"
    screen = pixels(view)
    assert (screen[150:200, 20:100] == hot).all() and not (screen[60:100, 20:100] == hot).all(axis=2).any()
    assert state.overlay.method_caption(view.role).startswith("Score-CAM")
    state.overlay.set_compared([])
    assert view.role == "main" and view.method_picker.isHidden()


def test_window_and_invert_apply_to_the_slide_colours_as_to_an_rgb_patch(qtbot, shown, mosaic):
    view, state, _ = shown
    at_full_zoom(qtbot, view)
    truth = mosaic.level0[140:300, 100:280].astype(np.float32)
    np.testing.assert_array_equal(pixels(view)[40:200, 0:180], truth)
    state.display.invert = True
    np.testing.assert_array_equal(pixels(view)[40:200, 0:180], 255 - truth)
    state.display.invert = False
    state.display.window = (200.0, 100.0)
    expected = np.clip(np.rint((truth - 150.0) * 255.0 / 100.0), 0, 255)
    np.testing.assert_array_equal(pixels(view)[40:200, 0:180], expected)
    state.display.channel = "G"  # one channel, as grey, windowed
    np.testing.assert_array_equal(pixels(view)[40:200, 0:180], np.repeat(expected[..., 1:2], 3, axis=2))


def open_paths() -> set[str]:
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return paths


def slide_shown(qtbot, mosaic, reader: SlideReader):
    """A slide view showing ``reader``'s slide; its state, the view and the slide's thumbnail."""
    thumbnail, _ = reader.thumbnail(224)
    state = ViewerState()
    view = SlideView(state)
    view.resize(WIDTH, HEIGHT)
    view.show()
    qtbot.waitExposed(view)
    state.display.set_volume(rgb_volume(mosaic.path, thumbnail, (1.0, 0.002, 0.002), "slide", {},
                                        extras={"slide": reader}))
    return state, view, thumbnail


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_when_another_case_is_shown_the_slide_file_is_closed(qtbot, mosaic):
    reader = SlideReader(mosaic.path)
    state, view, thumbnail = slide_shown(qtbot, mosaic, reader)
    view.set_view(1.0, QPointF(500.0, 400.0))  # reads under way when the case changes
    assert str(mosaic.path) in open_paths()
    state.display.set_volume(rgb_volume("other.png", thumbnail))
    assert view.loader is None
    qtbot.waitUntil(lambda: reader.closed)  # at once, or when the read in flight lets the file go
    assert str(mosaic.path) not in open_paths()


class _ReaderThatNeedsTheGui(SlideReader):
    """A slide whose reads wait for the GUI thread's event loop, as a tile thread does when
    Python's garbage collector runs there and destroys a dropped widget (seen hanging the suite:
    the widget's destructor waited for the GUI while the GUI waited for the file's lock)."""

    def __init__(self, path, entered, release):
        super().__init__(path)
        self.entered, self.release = entered, release

    def read_region(self, level, location, size):
        self.entered.set()
        self.release.wait(10)  # set by a timer on the GUI thread: only runs if the GUI is not blocked
        return super().read_region(level, location, size)


def test_closing_a_slide_never_waits_for_a_tile_thread(qtbot, mosaic):
    import threading
    import time

    from PySide6.QtCore import QTimer

    entered, release = threading.Event(), threading.Event()
    reader = _ReaderThatNeedsTheGui(mosaic.path, entered, release)
    state, view, thumbnail = slide_shown(qtbot, mosaic, reader)
    view.set_view(1.0, QPointF(500.0, 400.0))
    qtbot.waitUntil(entered.is_set)  # a tile thread holds the file and needs the GUI
    QTimer.singleShot(50, release.set)
    start = time.monotonic()
    state.display.set_volume(rgb_volume("other.png", thumbnail))
    assert time.monotonic() - start < 1.0  # the GUI thread went straight back to its event loop
    qtbot.waitUntil(lambda: reader.closed, timeout=5000)  # closed by the read when it let go
