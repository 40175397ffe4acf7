"""``ViewerState`` clamps, validates and signals, with no Qt involved."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ui.fake_workstation import CLASS_NAMES, PROBABILITIES, synthetic_maps, synthetic_volume
from ui.backend import Analysis
from engine.models.classes import finding_class as default_overlay_class
from ui.model import ViewerState


def _analysis(maps=None) -> Analysis:
    maps = synthetic_maps() if maps is None else maps
    return Analysis("glioma 1.0.0", CLASS_NAMES, PROBABILITIES, "gradcam", maps, 7, (11, 12))


def test_new_volume_starts_at_middle_slice_with_default_window():
    """Opening a volume shows its middle slice, the chosen channel and the default window."""
    state = ViewerState()
    seen = []
    state.display.events.slice_index.connect(seen.append)
    volume = synthetic_volume()
    state.display.set_volume(volume, "flair")
    assert state.display.slice_index == 2 and seen == [2]
    assert state.display.channel == "flair"
    assert state.display.window == volume.default_window()
    assert np.array_equal(state.display.current_image(), volume.channel("flair")[2])


def test_setters_clamp_and_validate():
    """Slice and opacity are clamped; unknown channel, tool or scope raise ValueError."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    state.display.slice_index = 99
    assert state.display.slice_index == 4
    state.display.step_slice(-10)
    assert state.display.slice_index == 0
    state.overlay.opacity = 1.7
    assert state.overlay.opacity == 1.0
    state.display.window = (50.0, -3.0)
    assert state.display.window[1] > 0
    for model, name, value in ((state.display, "channel", "t2"), (state.annotation, "tool", "lasso"),
                               (state.overlay, "normalisation", "global"),
                               (state.overlay, "colormap", "rainbow")):
        with pytest.raises(ValueError):
            setattr(model, name, value)


def test_unchanged_value_fires_no_signal():
    """Setting the same slice twice signals once."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume())
    seen = []
    state.display.events.slice_index.connect(seen.append)
    state.display.slice_index = 3
    state.display.slice_index = 3
    assert seen == [3]


def test_analysis_must_match_volume_and_picks_the_abnormal_class():
    """Maps off the volume grid are refused; the default class skips "normal"."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume())
    with pytest.raises(ValueError, match="do not match"):
        state.overlay.set_analysis(_analysis(np.zeros((2, 4, 32, 32))))  # a slice short
    with pytest.raises(ValueError, match="do not match"):
        state.overlay.set_analysis(_analysis(np.zeros((2, 5, 32))))
    coarse = np.zeros((2, 5, 8, 8), np.float32)  # a coarser grid over the same field of view
    coarse[1, 2, 0, 0] = 1.0
    state.overlay.set_analysis(_analysis(coarse))
    state.display.slice_index = 2
    assert state.overlay.spec().saliency.shape == (8, 8)
    state.overlay.set_analysis(_analysis())
    assert state.overlay.class_index == 1
    assert default_overlay_class(("healthy", "covid", "pneumonia"),
                                 np.array([[0.9, 0.04, 0.06], [0.3, 0.2, 0.5]])) == 2
    # No finding ranked first anywhere: the model's own answer, not a 6 % finding.
    assert default_overlay_class(("healthy", "covid", "pneumonia"),
                                 np.array([[0.9, 0.04, 0.06]])) == 0
    # "abnormality" contains "normal": the shipped glioma bundle's classes must still pick it.
    assert default_overlay_class(("no FLAIR abnormality", "FLAIR abnormality"),
                                 np.array([[0.999, 0.001], [0.002, 0.998]])) == 1


def test_overlay_spec_uses_volume_range_then_slice_range():
    """Per-volume range is the class's volume maximum; per-slice the current slice's maximum."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume())
    state.overlay.set_analysis(_analysis())
    state.display.slice_index = 0
    assert state.overlay.spec().value_range.high == pytest.approx(1.0)
    state.overlay.normalisation = "slice"
    assert state.overlay.spec().value_range.high == pytest.approx(0.5)
    state.overlay.visible = False
    assert state.overlay.spec() is None


def test_marks_carry_slice_and_label_and_boxes_are_ordered():
    """A point records the slice and label; a box stores top-left then bottom-right; marks
    outside the image are refused; a new volume clears the draft."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume())
    state.annotation.label = "lesion"
    point = state.annotation.add_point(10.0, 12.0)
    assert (point.kind, point.slice_index, point.points, point.label) == ("point", 2, ((10.0, 12.0),), "lesion")
    box = state.annotation.add_box((20.0, 5.0), (8.0, 15.0))
    assert box.points == ((8.0, 5.0), (20.0, 15.0))
    state.annotation.relabel(1, "oedema")
    assert state.annotation.drafts[1].label == "oedema"
    with pytest.raises(ValueError, match="outside"):
        state.annotation.add_point(40.0, 3.0)
    state.annotation.remove(0)
    assert [a.kind for a in state.annotation.drafts] == ["box"]
    state.display.set_volume(synthetic_volume())
    assert state.annotation.drafts == ()


def test_hematoxylin_and_eosin_starts_with_a_colour_map_that_stands_out_on_pink_until_the_reader_picks_one():
    from dataclasses import replace

    state = ViewerState()
    grey = synthetic_volume()
    stain = replace(grey, modality="SM")
    state.display.set_volume(stain)
    assert state.overlay.colormap == "viridis"
    state.display.set_volume(grey)
    assert state.overlay.colormap == "inferno"
    state.overlay.colormap = "jet"  # the reader's choice stays on every later case
    state.display.set_volume(stain)
    assert state.overlay.colormap == "jet"
