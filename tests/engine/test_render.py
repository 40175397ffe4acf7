"""Pure numpy rendering: window/level, colour maps, normalisation and blending, without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.render import OverlaySpec, blend_overlay, colormap, inferno_lut, jet_lut, normalise_map, fit_to_image, render_slice, window_to_uint8
from engine.explain.summary import MapRange, map_range


def test_window_maps_edges_to_black_and_white_and_is_linear_between():
    """Values at centre - width/2 are black, at centre + width/2 white, linear in between."""
    image = np.array([[0.0, 49.0, 59.0, 89.0, 151.0, 200.0]])
    grey = window_to_uint8(image, centre=100.0, width=102.0)  # 2.5 grey levels per unit
    assert grey.tolist() == [[0, 0, 25, 100, 255, 255]]


def test_window_rejects_zero_width():
    """A zero-width window is refused with a clear error."""
    with pytest.raises(ValueError, match="width must be positive"):
        window_to_uint8(np.zeros((2, 2)), 0.0, 0.0)


def test_inferno_runs_dark_to_pale_yellow_and_brightens_monotonically():
    """Inferno starts near black, ends pale yellow, and its luminance only rises."""
    lut = inferno_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == [0, 0, 4]
    assert lut[255].tolist() == [252, 255, 164]
    luminance = lut.astype(float) @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > -1.0)  # perceptual order kept (up to rounding)


def test_jet_goes_blue_to_red():
    """Jet's coldest entry is dark blue, hottest dark red, middle green."""
    lut = jet_lut()
    assert lut[0].tolist() == [0, 0, 128]
    assert lut[255].tolist() == [128, 0, 0]
    assert lut[128][1] == 255
    with pytest.raises(KeyError, match="no colour map"):
        colormap("rainbow")


def test_volume_range_is_shared_by_slices_and_slice_range_stretches_each():
    """Per-volume normalisation uses the volume maximum; per-slice the slice's own maximum."""
    maps = np.zeros((3, 4, 4))
    maps[0, 1, 1] = 2.0
    maps[1, 2, 2] = 8.0
    maps[2, 0, 0] = -5.0
    assert map_range(maps, 0, "volume", show_negative=False) == MapRange(0.0, 8.0)
    assert map_range(maps, 0, "slice", show_negative=False) == MapRange(0.0, 2.0)
    assert map_range(maps, 2, "volume", show_negative=True) == MapRange(-5.0, 8.0)
    flat = map_range(np.zeros((1, 2, 2)), 0, "volume", show_negative=False)
    assert flat.high > flat.low


def test_negative_saliency_maps_to_zero_when_hidden():
    """With negatives hidden, a negative value normalises to 0 like no saliency."""
    values = normalise_map(np.array([[-3.0, 0.0, 2.0, 4.0, np.nan]]), MapRange(0.0, 4.0))
    assert values.tolist() == [[0.0, 0.0, 0.5, 1.0, 0.0]]


def test_blend_keeps_grey_where_saliency_is_zero_and_shows_lut_where_full():
    """Zero saliency leaves the grey pixel; full saliency at opacity 1 is the LUT's hottest colour;
    half opacity mixes halfway."""
    grey = np.array([[100, 100]], dtype=np.uint8)
    normalised = np.array([[0.0, 1.0]], dtype=np.float32)
    lut = inferno_lut()
    full = blend_overlay(grey, normalised, lut, opacity=1.0)
    assert full[0, 0].tolist() == [100, 100, 100, 255]
    assert full[0, 1].tolist() == lut[255].tolist() + [255]
    half = blend_overlay(grey, normalised, lut, opacity=0.5)
    expected = np.rint((100 + lut[255].astype(float)) / 2).astype(int).tolist()
    assert half[0, 1, :3].tolist() == expected


def test_render_slice_with_zero_opacity_is_the_plain_image():
    """Opacity 0 renders exactly the windowed grey image."""
    image = np.arange(16, dtype=float).reshape(4, 4) * 10
    saliency = np.ones((4, 4))
    spec = OverlaySpec(saliency, MapRange(0.0, 1.0), inferno_lut(), opacity=0.0)
    plain = render_slice(image, 75.0, 150.0, None)
    assert np.array_equal(render_slice(image, 75.0, 150.0, spec), plain)
    assert np.array_equal(plain[..., 0], window_to_uint8(image, 75.0, 150.0))
    with pytest.raises(ValueError, match="does not match"):
        blend_overlay(np.zeros((2, 2), np.uint8), np.zeros((3, 3)), inferno_lut(), 1.0)


def test_render_slice_windows_each_colour_channel_and_blends_on_top():
    """An (H, W, 3) image is windowed per channel with one window; the map blends over colour."""
    image = np.zeros((2, 2, 3))
    image[0, 0] = (255.0, 0.0, 0.0)
    image[1, 1] = (100.0, 150.0, 200.0)
    plain = render_slice(image, 127.5, 255.0, None)
    assert plain.shape == (2, 2, 4)
    assert tuple(plain[0, 0]) == (255, 0, 0, 255) and tuple(plain[1, 1]) == (100, 150, 200, 255)
    narrow = render_slice(image, 150.0, 100.0, None)
    assert tuple(narrow[1, 1, :3]) == (0, window_to_uint8(np.array(150.0), 150.0, 100.0), 255)
    saliency = np.array([[1.0, 0.0], [0.0, 0.0]])
    spec = OverlaySpec(saliency, MapRange(0.0, 1.0), inferno_lut(), 0.5)
    blended = render_slice(image, 127.5, 255.0, spec)
    hot = inferno_lut()[255].astype(float)
    expected = np.rint(0.5 * np.array([255.0, 0.0, 0.0]) + 0.5 * hot).astype(np.uint8)
    assert tuple(blended[0, 0, :3]) == tuple(expected)
    assert tuple(blended[1, 1, :3]) == (100, 150, 200)


def test_a_coarse_map_is_stretched_over_the_whole_image():
    """A 2x2 map over an 8x8 image: each map pixel colours its own 4x4 quarter's centre, values
    blend bilinearly between centres, and the image's own grid passes through untouched."""
    coarse = np.array([[1.0, 0.0], [0.0, 0.0]])
    fitted = fit_to_image(coarse, (8, 8))
    assert fitted.shape == (8, 8)
    assert fitted[:2, :2] == pytest.approx(np.ones((2, 2)))  # up to the first pixel centre: flat
    assert fitted[6:, 6:] == pytest.approx(np.zeros((2, 2)))
    assert 0.0 < fitted[3, 3] < 1.0 and fitted[3, 3] > fitted[4, 4]
    same = np.random.default_rng(0).random((8, 8))
    assert fit_to_image(same, (8, 8)) is same
    image = np.zeros((8, 8))
    spec = OverlaySpec(coarse, MapRange(0.0, 1.0), inferno_lut(), 1.0)
    rendered = render_slice(image, 0.5, 1.0, spec)
    assert tuple(rendered[0, 0, :3]) == tuple(inferno_lut()[255]) and tuple(rendered[7, 7, :3]) == (0, 0, 0)
