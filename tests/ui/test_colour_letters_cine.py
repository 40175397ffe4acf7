"""Colour images, orientation letters and cine playback, checked on the pixels the view shows.

The view is 320 x 320 over a 32 x 32 image with square pixels, so image pixel (r, c) is drawn
over widget pixels [10c, 10c + 10) x [10r, 10r + 10).
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.imaging.volume import ImageVolume, plain_affine
from tests.ui.fake_workstation import HOT, SQUARE, synthetic_volume
from tests.ui.test_slice_view import pixel, shown
from ui.backend import Analysis
from ui.panels.display_bar import DisplayBar
from engine.imaging.render import blend_overlay, colormap, normalise_map
from engine.explain.summary import map_range
from ui.shortcuts import SHORTCUTS
from ui.slice_view import SliceView, orientation_letters
from ui.model import RGB_CHANNEL, ViewerState

PINK = (230.0, 160.0, 210.0)  # eosin-like background of an H&E patch
FRAMES, FRAME_TIME_MS = 5, 20.0


def rgb_patch() -> ImageVolume:
    """A 2 x 32 x 32 RGB patch: pink background with a pure red square at SQUARE."""
    array = np.empty((3, 2, 32, 32), dtype=np.float32)
    for channel, value in enumerate(PINK):
        array[channel] = value
    array[:, :, SQUARE[0], SQUARE[1]] = np.array([255.0, 0.0, 0.0])[:, None, None, None]
    return ImageVolume(array=array, spacing=(1.0, 1.0, 1.0), affine=plain_affine((1.0, 1.0, 1.0)),
                       modality="SM", kind="image", source="/fake/patch.png",
                       channel_names=("R", "G", "B"), window=(127.5, 255.0))


def clip(frame_time_ms: float | None = FRAME_TIME_MS) -> ImageVolume:
    """A 5-frame 32 x 32 grey clip whose frame k has value 50 * k everywhere."""
    array = np.stack([np.full((32, 32), 50.0 * k, dtype=np.float32) for k in range(FRAMES)])[None]
    return ImageVolume(array=array, spacing=(1.0, 1.0, 1.0), affine=plain_affine((1.0, 1.0, 1.0)),
                       modality="US", kind="clip", source="/fake/clip.dcm",
                       frame_time_ms=frame_time_ms, window=(127.5, 255.0))


# -- colour ------------------------------------------------------------------------------------
def test_rgb_patch_is_shown_in_colour_by_default_and_single_channels_stay_selectable(qtbot):
    """An RGB volume opens on "RGB (colour)": the red square is red and the background pink;
    picking G in the channel box shows the green channel as grey."""
    state = ViewerState()
    bar = DisplayBar(state)
    qtbot.addWidget(bar)
    state.display.set_volume(rgb_patch())
    view = shown(qtbot, state)
    assert state.display.channel == RGB_CHANNEL
    assert [bar.channel.itemText(i) for i in range(bar.channel.count())] == [RGB_CHANNEL, "R", "G", "B"]
    red, green, blue = pixel(view, 12, 12)
    assert red >= 250 and green <= 5 and blue <= 5
    assert pixel(view, 28, 28) == tuple(round(v) for v in PINK)
    bar.channel.setCurrentText("G")
    assert state.display.channel == "G"
    assert pixel(view, 28, 28) == (160, 160, 160)
    assert pixel(view, 12, 12) == (0, 0, 0)


def test_window_applies_to_each_colour_channel(qtbot):
    """Window (centre 195, width 70) maps 160 to 0 and 230 to 255 in every channel."""
    state = ViewerState()
    state.display.set_volume(rgb_patch())
    view = shown(qtbot, state)
    state.display.window = (195.0, 70.0)
    assert pixel(view, 28, 28) == (255, 0, round((210 - 160) * 255 / 70))
    assert pixel(view, 12, 12) == (255, 0, 0)


def test_cam_overlay_blends_over_the_colour_image(qtbot):
    """With a map peaking at HOT, opacity 1 shows the colour map's hottest colour there (viridis,
    the H&E default), 0.5 a blend of that colour and the pink background, and zero saliency leaves
    the red square red."""
    volume = rgb_patch()
    state = ViewerState()
    state.display.set_volume(volume)
    view = shown(qtbot, state)
    maps = np.zeros((2,) + volume.shape, dtype=np.float32)
    maps[1][:, HOT[0], HOT[1]] = 1.0
    state.overlay.set_analysis(Analysis("patch 1.0", ("benign", "tumour"), np.array([[0.2, 0.8]] * 2),
                                "gradcam", maps, 1, (2, 3)))
    state.overlay.opacity = 1.0
    assert state.overlay.colormap == "viridis"
    lut = colormap("viridis")
    assert pixel(view, 24, 24) == tuple(lut[255])
    assert pixel(view, 12, 12)[0] >= 250 and pixel(view, 12, 12)[1] <= 5
    state.overlay.opacity = 0.5
    colour = np.moveaxis(volume.array[:, state.display.slice_index], 0, -1).astype(np.uint8)
    saliency = normalise_map(maps[1, state.display.slice_index], map_range(maps[1], 0, "volume", False))
    expected = blend_overlay(colour, saliency, lut, 0.5)
    assert pixel(view, 24, 24) == tuple(expected[24, 24, :3])
    assert pixel(view, 24, 24) not in (tuple(lut[255]), tuple(round(v) for v in PINK))


# -- orientation letters -----------------------------------------------------------------------
def bright_pixels(view: SliceView, xs: range, ys: range) -> int:
    """How many near-white pixels lie in the widget area ``xs`` x ``ys``."""
    image = view.grab().toImage()
    return sum(1 for x in xs for y in ys if image.pixelColor(x, y).lightness() > 150)


def bright_pixels_left_middle(view: SliceView) -> int:
    """How many near-white pixels lie where the left orientation letter is drawn."""
    return bright_pixels(view, range(0, 30), range(140, 182))


def test_letters_are_drawn_for_a_patient_volume(qtbot):
    """An MR volume in LPS order "SPL" gets R on the left, A on top, L on the right and P at the
    bottom, each drawn on the image's edge."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    view = shown(qtbot, state)
    assert orientation_letters(state.display.volume) == ("R", "A", "L", "P")
    rect = view.image_rect().toRect()
    middle_x, middle_y = rect.center().x(), rect.center().y()
    assert bright_pixels_left_middle(view) > 5
    assert bright_pixels(view, range(rect.right() - 30, rect.right()), range(middle_y - 20, middle_y + 20)) > 5
    assert bright_pixels(view, range(middle_x - 20, middle_x + 20), range(rect.top(), rect.top() + 30)) > 5
    assert bright_pixels(view, range(middle_x - 20, middle_x + 20), range(rect.bottom() - 30, rect.bottom())) > 5


def test_no_letters_for_a_patch_or_clip_without_patient_geometry(qtbot):
    """A patch and a clip are not placed in the patient: no letters, nothing drawn there."""
    assert orientation_letters(clip()) is None
    state = ViewerState()
    state.display.set_volume(rgb_patch(), "G")
    state.display.window = (1000.0, 10.0)  # everything black, so any drawn letter would show
    view = shown(qtbot, state)
    assert orientation_letters(state.display.volume) is None
    assert bright_pixels_left_middle(view) == 0


# -- cine ---------------------------------------------------------------------------------------
@pytest.fixture
def cine(qtbot):
    """A display bar and a slice view over a 5-frame clip at 20 ms per frame, on frame 1."""
    state = ViewerState()
    bar = DisplayBar(state)
    qtbot.addWidget(bar)
    state.display.set_volume(clip())
    state.display.slice_index = 0
    view = shown(qtbot, state)
    return bar, view


def test_play_advances_frames_on_screen_and_pause_stops(qtbot, cine):
    """Play steps the frames (the screen shows the new frame's grey) and loops; Pause holds."""
    bar, view = cine
    assert bar.play_action.isEnabled() and bar.frame_rate_label.text() == "50.0 fps"
    assert pixel(view, 5, 5) == (0, 0, 0)
    seen = []
    view.state.display.events.slice_index.connect(seen.append)
    bar.play_button.click()
    assert bar.cine.playing and bar.play_action.text() == "Pause"
    qtbot.waitUntil(lambda: 0 in seen[1:] and len(seen) > FRAMES, timeout=3000)  # looped
    bar.play_button.click()
    assert not bar.cine.playing and bar.play_action.text() == "Play"
    held = view.state.display.slice_index
    qtbot.wait(100)
    assert view.state.display.slice_index == held
    assert pixel(view, 5, 5) == (50 * held,) * 3


def test_a_new_case_stops_playback(qtbot, cine):
    """Opening another volume stops playback and unchecks the button."""
    bar, view = cine
    bar.play_action.trigger()
    qtbot.waitUntil(lambda: view.state.display.slice_index != 0, timeout=3000)
    view.state.display.set_volume(clip())
    assert not bar.cine.playing and not bar.play_action.isChecked()
    assert bar.play_action.text() == "Play"


def test_play_is_disabled_without_frame_time(qtbot, cine):
    """A volume without frame_time_ms (an MR volume, or a clip of unknown rate) cannot play."""
    bar, view = cine
    for volume in (synthetic_volume(), clip(frame_time_ms=None)):
        view.state.display.set_volume(volume)
        assert not bar.play_action.isEnabled() and bar.frame_rate_label.text() == ""
        index = view.state.display.slice_index
        bar.cine.play()
        assert not bar.cine.playing and view.state.display.slice_index == index


def test_space_plays_in_the_main_window_and_dragging_the_slider_pauses(qtbot, window):
    """In the main window Space (listed in the shortcuts) plays a clip; pressing the slice
    slider pauses it."""
    assert any(keys == "Space" for keys, _ in SHORTCUTS)
    window.state.display.set_volume(clip())
    window.slice_view.setFocus()
    qtbot.keyClick(window.slice_view, Qt.Key.Key_Space)
    assert window.display_bar.cine.playing
    qtbot.waitUntil(lambda: window.state.display.slice_index != FRAMES // 2, timeout=3000)
    window.navigator.slider.sliderPressed.emit()
    assert not window.display_bar.cine.playing
