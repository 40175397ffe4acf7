"""The slide view on a real pyramidal TIFF (LC25000 patches, 3 levels, 256-px tiles): what is on
screen at each zoom, which level is read, where, and when."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from engine.imaging.render import colormap
from engine.imaging.slide import SlideReader, rgb_volume
from engine.imaging.slide_tiles import TileKey
from tests.engine.test_slide import build_pyramid
from ui.backend import Analysis, Verdict
from ui.model import ViewerState
from ui.slide_view import BACKGROUND, SlideView

#: The view's size; at scale 1 level-0 pixel (x, y) is drawn at screen (x - cx + 200, y - cy + 150).
WIDTH, HEIGHT = 400, 300


class SpyReader:
    """A ``SlideReader`` that records each read (level, thread, location) and can hold reads
    until ``gate`` is set."""

    def __init__(self, reader: SlideReader) -> None:
        self._reader = reader
        self.reads: list[tuple[int, int, tuple[int, int]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __getattr__(self, name: str):
        return getattr(self._reader, name)

    def read_region(self, level, location, size):
        self.gate.wait(10)
        self.reads.append((level, threading.get_ident(), tuple(location)))
        return self._reader.read_region(level, location, size)

    def levels_read(self) -> list[int]:
        return [level for level, _, _ in self.reads]


@pytest.fixture(scope="module")
def mosaic(shared_data, tmp_path_factory):
    lc25000 = shared_data / "histopathology-lc25000"
    if not lc25000.is_dir():
        pytest.skip(f"{lc25000} is missing")
    return build_pyramid(tmp_path_factory.mktemp("slide") / "mosaic.tif", lc25000)


@pytest.fixture
def shown(qtbot, mosaic):
    """A 400 x 300 slide view of the mosaic whose thumbnail is level 2 (4x smaller), so sharp
    level-0 pixels on screen can only come from tiles."""
    spy = SpyReader(SlideReader(mosaic.path))
    thumbnail, downsample = spy.thumbnail(224)
    assert downsample == 4.0
    volume = rgb_volume(mosaic.path, thumbnail, (1.0, 0.002, 0.002), "slide", {}, extras={"slide": spy})
    state = ViewerState()
    view = SlideView(state)
    view.resize(WIDTH, HEIGHT)
    view.show()
    qtbot.waitExposed(view)
    state.display.set_volume(volume)
    yield view, state, spy
    state.display.set_volume(None)  # shuts the loader down before the file is closed
    spy.close()


def settle(qtbot, view: SlideView) -> None:
    """Wait until every tile in view is read and drawn."""
    grid = view.loader.grid
    wanted = grid.tiles_in_view(view.level_shown(), view.visible_rect0())
    qtbot.waitUntil(lambda: view.loader.pending() == 0 and all(k in view.loader.cache for k in wanted), timeout=10000)
    qtbot.wait(20)  # the queued tile_loaded signals repaint


def pixels(view: SlideView) -> np.ndarray:
    image = view.grab().toImage().convertToFormat(view.grab().toImage().Format.Format_RGB888)
    data = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return data[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def test_at_full_zoom_level_0_tiles_appear_exactly_at_their_screen_position(qtbot, shown, mosaic):
    view, _, spy = shown
    view.set_view(1.0, QPointF(300.0, 250.0))  # level-0 x 100..500, y 100..400
    assert view.level_shown() == 0
    settle(qtbot, view)
    screen = pixels(view)
    # Every screen pixel away from the text, scale bar and minimap is the level-0 pixel under it.
    np.testing.assert_array_equal(screen[40:200, 0:180], mosaic.level0[140:300, 100:280])
    # Level 0 is read for the four tiles in view (before this, the fitted view may read level 1).
    assert sorted(loc for level, _, loc in spy.reads if level == 0) == [(0, 0), (0, 256), (256, 0), (256, 256)]


def test_zoomed_out_the_coarser_levels_are_read(qtbot, shown):
    """At the fitting scale (0.45) level 1 is read, at 0.2 level 2, at 1.0 level 0: each tile once."""
    view, _, spy = shown
    settle(qtbot, view)
    assert view.level_shown() == 1 and spy.levels_read() == [1] * 4  # the 2 x 2 grid of level 1
    view.set_view(0.2, view.view()[1])
    settle(qtbot, view)
    assert view.level_shown() == 2 and spy.levels_read().count(2) == 1
    view.set_view(1.0, QPointF(448.0, 336.0))
    settle(qtbot, view)
    assert spy.levels_read().count(0) == 6  # x 248..648 and y 186..486: 3 columns x 2 rows of tiles
    assert len(spy.reads) == 4 + 1 + 6


def test_panning_back_draws_from_the_cache_with_no_new_read(qtbot, shown, mosaic):
    view, _, spy = shown
    view.set_view(1.0, QPointF(200.0, 150.0))
    settle(qtbot, view)
    view.set_view(1.0, QPointF(760.0, 560.0))
    settle(qtbot, view)
    reads = len(spy.reads)
    view.set_view(1.0, QPointF(200.0, 150.0))
    assert view.loader.pending() == 0 and len(spy.reads) == reads
    np.testing.assert_array_equal(pixels(view)[40:200, 0:180], mosaic.level0[40:200, 0:180])


def test_tiles_are_never_read_on_the_gui_thread(qtbot, shown):
    view, _, spy = shown
    gui = threading.get_ident()
    for scale, centre in ((0.45, (448, 336)), (1.0, (100, 100)), (2.0, (800, 600)), (0.2, (448, 336))):
        view.set_view(scale, QPointF(*centre))
        settle(qtbot, view)
    assert len(spy.reads) >= 4 and gui not in {thread for _, thread, _ in spy.reads}


def test_before_its_tiles_arrive_the_view_shows_the_thumbnail_then_the_sharp_tiles(qtbot, shown, mosaic):
    view, _, spy = shown
    settle(qtbot, view)
    spy.gate.clear()  # reads wait: nothing new arrives
    view.set_view(1.0, QPointF(300.0, 250.0))
    blurred = pixels(view)[40:200, 0:180].astype(int)
    truth = mosaic.level0[140:300, 100:280].astype(int)
    background = np.array([BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue()])
    assert (np.abs(blurred - background).sum(axis=2) > 60).mean() > 0.99  # not the empty background
    assert np.abs(blurred - truth).mean() < 25 and not np.array_equal(blurred, truth)  # the slide, blurred
    spy.gate.set()
    settle(qtbot, view)
    np.testing.assert_array_equal(pixels(view)[40:200, 0:180], mosaic.level0[140:300, 100:280])


def test_reads_no_longer_wanted_are_dropped_when_the_view_moves_on(qtbot, shown):
    view, _, spy = shown
    settle(qtbot, view)
    before = len(spy.reads)
    spy.gate.clear()
    view.set_view(1.0, QPointF(200.0, 150.0))  # 4 level-0 tiles of columns 0-1 asked for
    qtbot.waitUntil(lambda: view.loader.pending() == 4)
    view.set_view(1.0, QPointF(760.0, 560.0))  # columns 2-3: the first four are no longer wanted
    spy.gate.set()
    settle(qtbot, view)
    columns = [x // 256 for _, _, (x, _y) in spy.reads[before:]]
    assert columns.count(0) + columns.count(1) <= 1  # at most the read already under way
    assert view.loader.dropped >= 3


def test_a_click_in_the_minimap_moves_the_view_there(qtbot, shown):
    view, _, spy = shown
    view.set_view(1.0, QPointF(200.0, 150.0))
    box = view.minimap_rect()
    target = QPoint(round(box.left() + box.width() * 700 / 896), round(box.top() + box.height() * 500 / 672))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=target)
    scale, centre = view.view()
    per_pixel = 896 / box.width()
    assert scale == 1.0 and abs(centre.x() - 700) <= per_pixel and abs(centre.y() - 500) <= per_pixel
    settle(qtbot, view)
    assert TileKey(0, 2, 1) in view.loader.cache  # the tiles around (700, 500) were read


def test_wheel_zoom_keeps_the_slide_point_under_the_cursor(qtbot, shown):
    view, _, _ = shown
    anchor = QPointF(120.0, 90.0)
    before = view.to_level0(anchor)
    view.zoom_by(1.7, anchor)
    after = view.to_level0(anchor)
    assert view.view()[0] == pytest.approx(view.fit_scale() * 1.7)
    assert after == pytest.approx(before)


def test_the_heatmap_of_the_shown_class_is_drawn_over_its_tile(qtbot, shown, mosaic):
    """A map hot over the cell at row 0, column 0 (thumbnail 0..56) and cold elsewhere: at
    opacity 1 the hot cell is the colour map's hottest colour, a cold cell keeps its tissue."""
    view, state, _ = shown
    maps = np.zeros((3, 1, 168, 224), np.float32)
    maps[1, 0, :56, :56] = 1.0
    probabilities = np.array([[0.2, 0.7, 0.1]], np.float32)
    state.overlay.set_analysis(Analysis(
        bundle="histopathology 1.0.0", class_names=("a", "b", "c"), probabilities=probabilities, method="gradcam",
        maps=maps, prediction_id=1, explanation_ids=(1, 2, 3),
        verdict=Verdict("Slide score: mean of 7 tissue tiles", probabilities[0])))
    assert state.overlay.class_index == 1
    state.overlay.opacity = 1.0
    view.set_view(1.0, QPointF(224.0, 150.0))  # level-0 x 24..424, y 0..300: the hot cell is x, y < 224
    settle(qtbot, view)
    screen = pixels(view)
    hot = colormap(state.overlay.colormap)[255]  # viridis: the H&E default
    assert (screen[60:150, 20:150] == hot).all()  # level-0 x 44..174, y 60..150: inside the hot cell
    np.testing.assert_array_equal(screen[60:150, 230:330], mosaic.level0[60:150, 254:354])  # the cold cell
    state.overlay.visible = False
    np.testing.assert_array_equal(pixels(view)[60:150, 20:150], mosaic.level0[60:150, 44:174])


def test_a_point_dropped_on_the_slide_is_a_mark_in_thumbnail_pixels(qtbot, shown):
    view, state, _ = shown
    view.set_view(1.0, QPointF(300.0, 250.0))
    state.annotation.tool = "point"
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(102, 52))  # level 0 (202, 152)
    [mark] = state.annotation.drafts
    assert mark.kind == "point" and mark.points[0] == pytest.approx((152 / 4 - 0.5, 202 / 4 - 0.5))


def test_the_window_shows_a_slide_in_the_slide_view_and_f_plus_minus_drive_it(qtbot, window, workstation, mosaic,
                                                                             monkeypatch):
    """Opening a slide swaps the centre to the slide view (and back for a volume); F fits, + and =
    zoom in, - zooms out, in the slide view and in the slice view alike."""
    from engine.imaging.slide import read_slide
    from ui.backend import OpenedCase

    volume = read_slide(mosaic.path)
    monkeypatch.setattr(workstation, "open_path", lambda path, progress, series_uid=None: OpenedCase(
        case_id=7, volume=volume, display_channel="R", task="histopathology"))
    try:
        with qtbot.waitSignal(window.open_path(str(mosaic.path)).done, timeout=5000):
            pass
        view = window.slide_view
        assert window.showing_slide() and view.isVisible() and not window.views.isVisible()
        window.activateWindow()
        view.setFocus()
        fitted = view.view()[0]
        assert fitted == pytest.approx(view.fit_scale())
        qtbot.keyClick(view, Qt.Key.Key_Plus)
        assert view.view()[0] == pytest.approx(2 * fitted)
        qtbot.keyClick(view, Qt.Key.Key_Equal)
        qtbot.keyClick(view, Qt.Key.Key_Minus)
        assert view.view()[0] == pytest.approx(2 * fitted)
        qtbot.keyClick(view, Qt.Key.Key_F)
        assert view.view()[0] == pytest.approx(fitted)
        qtbot.mouseMove(view, QPoint(view.width() // 2, view.height() // 2))  # the read-out goes to the status bar
        qtbot.waitUntil(lambda: window.statusBar().currentMessage() == view.cursor_text != "")
        assert view.cursor_text.startswith("x 448, y 336 px")
        with qtbot.waitSignal(window.open_item(window.worklist.items()[0]).done, timeout=5000):
            pass
        assert not window.showing_slide() and window.views.isVisible() and view.loader is None
        # the slide no longer shown keeps no file open (closed at once, or by the read in flight)
        qtbot.waitUntil(lambda: volume.extras["slide"].closed)
        window.slice_view.setFocus()
        qtbot.keyClick(window.slice_view, Qt.Key.Key_Plus)
        assert window.slice_view.viewport()[0] == pytest.approx(2.0)
    finally:
        volume.extras["slide"].close()


def test_a_tile_that_cannot_be_read_leaves_the_thumbnail_and_says_so(qtbot, shown, monkeypatch):
    view, _, spy = shown
    settle(qtbot, view)
    read = spy.read_region

    def damaged(level, location, size):
        if level == 0 and tuple(location) == (256, 256):
            raise OSError("tile 5 is truncated")
        return read(level, location, size)

    monkeypatch.setattr(spy, "read_region", damaged)
    view.set_view(1.0, QPointF(300.0, 250.0))
    qtbot.waitUntil(lambda: TileKey(0, 1, 1) in view.failed_tiles and view.loader.pending() == 0, timeout=10000)
    assert view.failed_tiles[TileKey(0, 1, 1)] == "tile 5 is truncated"
    assert TileKey(0, 0, 0) in view.loader.cache and TileKey(0, 1, 1) not in view.loader.cache
    screen = pixels(view)
    background = np.array([BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue()])
    # level-0 x 260..305, y 260..300 lies in the missing tile (and clear of the minimap): the thumbnail
    assert (np.abs(screen[160:200, 160:205].astype(int) - background).sum(axis=2) > 60).mean() > 0.99
