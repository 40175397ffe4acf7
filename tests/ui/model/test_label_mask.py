"""The brush and eraser in the annotation model: what a stroke covers, one stroke one undo step,
labels with one value each, relabelling, clearing a slice (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ui.fake_workstation import synthetic_volume
from ui.model import ViewerState
from ui.model.label_mask import label_colour, mask_rgba, stroke_footprint


@pytest.fixture
def state() -> ViewerState:
    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    state.annotation.label = "lesion"
    return state


def sampled_distance(shape, path):
    """Each pixel centre's distance to the nearest of 2001 points sampled along each segment, and
    how far that can exceed the true distance (half the sample spacing)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    nearest = np.full(shape, np.inf)
    slack = 0.0
    segments = list(zip(path, path[1:])) or [(path[0], path[0])]
    for (r0, c0), (r1, c1) in segments:
        slack = max(slack, np.hypot(r1 - r0, c1 - c0) / 2000 / 2)
        for t in np.linspace(0.0, 1.0, 2001):
            nearest = np.minimum(nearest, np.hypot(rows - (r0 + t * (r1 - r0)), cols - (c0 + t * (c1 - c0))))
    return nearest, slack + 1e-9


@pytest.mark.parametrize("path, radius", [
    ([(5.0, 5.0)], 2),
    ([(5.2, 4.7)], 3),
    ([(3.0, 2.0), (3.0, 12.0)], 1),
    ([(2.0, 2.0), (9.5, 14.25), (12.0, 3.0)], 2),
    ([(0.0, 0.0), (0.0, 31.0)], 4),  # clipped at the image edge
])
def test_a_stroke_covers_the_pixels_within_the_radius_of_its_path(path, radius):
    covered = stroke_footprint((32, 32), path, radius)
    nearest, slack = sampled_distance((32, 32), path)
    assert not (covered & (nearest > radius + slack)).any()  # nothing farther than the radius
    assert covered[nearest <= radius].all()  # everything nearer


def test_a_dab_of_radius_two_covers_the_thirteen_pixels_of_that_disc():
    covered = stroke_footprint((9, 9), [(4.0, 4.0)], 2)
    assert covered.sum() == 13  # 1 + 4 at distance 1, 4 at sqrt 2, 4 at distance 2
    assert covered[4, 2] and covered[2, 4] and covered[3, 3] and not covered[2, 3]


def test_one_stroke_is_one_mask_mark_and_one_undo_step(state):
    annotation = state.annotation
    annotation.tool, annotation.brush_radius = "brush", 2
    annotation.begin_stroke(5.0, 5.0)
    annotation.extend_stroke(5.0, 9.0)
    annotation.extend_stroke(9.0, 9.0)
    assert annotation.drafts == () and annotation.painting  # shown while painting, not yet a mark
    assert annotation.mask_layer(2)[5, 7] == 1
    annotation.end_stroke()
    (mark,) = annotation.drafts
    assert (mark.kind, mark.slice_index, mark.label, mark.points) == ("mask", 2, "lesion", ())
    expected = stroke_footprint((32, 32), [(5.0, 5.0), (5.0, 9.0), (9.0, 9.0)], 2)
    np.testing.assert_array_equal(mark.mask.decode(), expected)
    assert annotation.undo() and annotation.drafts == ()
    assert not annotation.undo()  # the whole stroke was one step
    assert annotation.redo() and annotation.drafts == (mark,)


def test_painting_another_label_takes_the_pixels_and_the_eraser_clears_all(state):
    annotation = state.annotation
    annotation.tool, annotation.brush_radius = "brush", 3
    annotation.begin_stroke(10.0, 10.0)
    annotation.end_stroke()
    annotation.label = "oedema"
    annotation.begin_stroke(10.0, 14.0)
    annotation.end_stroke()
    lesion, oedema = annotation.drafts
    assert (lesion.label, oedema.label) == ("lesion", "oedema")
    assert not (lesion.mask.decode() & oedema.mask.decode()).any()  # one label per pixel
    assert annotation.label_value("lesion") == 1 and annotation.label_value("oedema") == 2
    layer = annotation.mask_layer(2)
    assert layer[10, 8] == 1 and layer[10, 14] == 2 and layer[10, 12] == 2
    annotation.tool = "eraser"
    annotation.begin_stroke(10.0, 12.0)
    annotation.end_stroke()
    layer = annotation.mask_layer(2)
    assert (layer[stroke_footprint((32, 32), [(10.0, 12.0)], 3)] == 0).all()
    assert layer[10, 8] == 1 and layer[10, 16] == 2
    annotation.begin_stroke(10.0, 4.0)
    annotation.extend_stroke(10.0, 20.0)
    annotation.end_stroke()
    assert annotation.drafts == ()  # everything erased: no empty mask marks kept
    assert annotation.undo() and len(annotation.drafts) == 2


def test_a_stroke_that_changes_nothing_adds_no_undo_step(state):
    annotation = state.annotation
    annotation.tool = "eraser"
    annotation.begin_stroke(5.0, 5.0)
    annotation.end_stroke()
    assert annotation.drafts == () and not annotation.can_undo


def test_masks_live_on_their_slice_and_a_slice_can_be_cleared(state):
    annotation, display = state.annotation, state.display
    annotation.tool = "brush"
    for k in (1, 3):
        display.slice_index = k
        annotation.begin_stroke(8.0, 8.0)
        annotation.end_stroke()
    assert [m.slice_index for m in annotation.drafts] == [1, 3]
    assert annotation.mask_layer(2).sum() == 0
    annotation.clear_masks()  # the shown slice, 3
    assert [m.slice_index for m in annotation.drafts] == [1]
    annotation.undo()
    assert [m.slice_index for m in annotation.drafts] == [1, 3]


def test_relabelling_a_mask_merges_it_into_that_labels_mask(state):
    annotation = state.annotation
    annotation.tool = "brush"
    annotation.begin_stroke(5.0, 5.0)
    annotation.end_stroke()
    annotation.label = "oedema"
    annotation.begin_stroke(20.0, 20.0)
    annotation.end_stroke()
    annotation.relabel(0, "oedema")
    (mark,) = annotation.drafts
    assert mark.label == "oedema" and mark.mask.decode()[5, 5] and mark.mask.decode()[20, 20]
    annotation.move(0, 3.0, 3.0)  # masks are not dragged
    assert annotation.drafts == (mark,)


def test_brush_radius_is_kept_between_its_limits_and_announced(state):
    annotation = state.annotation
    seen = []
    annotation.events.brush_radius.connect(seen.append)
    annotation.brush_radius = 7
    annotation.brush_radius = 0
    annotation.brush_radius = 1000
    assert seen == [7, 1, 64]


def test_a_new_volume_or_another_tool_ends_the_stroke(state):
    annotation = state.annotation
    annotation.tool = "brush"
    annotation.begin_stroke(5.0, 5.0)
    annotation.tool = "navigate"  # ends it: the paint is kept
    assert not annotation.painting and len(annotation.drafts) == 1
    annotation.tool = "brush"
    annotation.begin_stroke(9.0, 9.0)
    state.display.set_volume(synthetic_volume(), "flair")
    assert not annotation.painting and annotation.drafts == ()
    with pytest.raises(ValueError, match="outside"):
        annotation.begin_stroke(40.0, 5.0)
    annotation.tool = "point"
    with pytest.raises(ValueError, match="does not paint"):
        annotation.begin_stroke(5.0, 5.0)


def test_mask_colours_are_semi_transparent_in_each_labels_colour():
    labels = np.array([[0, 1], [2, 0]], dtype=np.uint16)
    rgba = mask_rgba(labels, alpha=128)
    assert rgba[0, 0].tolist() == [0, 0, 0, 0]
    assert rgba[0, 1, 3] == 128 and rgba[1, 0, 3] == 128
    assert rgba[0, 1, :3].tolist() == [round(v * 128 / 255) for v in label_colour(1)]
    assert label_colour(1) != label_colour(2)


def test_undo_in_the_middle_of_a_stroke_takes_back_that_stroke(state):
    annotation = state.annotation
    annotation.tool = "brush"
    annotation.begin_stroke(5.0, 5.0)
    annotation.end_stroke()
    first = annotation.drafts
    annotation.begin_stroke(20.0, 20.0)
    assert annotation.undo() and not annotation.painting
    assert annotation.drafts == first
    annotation.extend_stroke(25.0, 25.0)  # the mouse moves on after Ctrl+Z: nothing is painted
    assert annotation.drafts == first and annotation.mask_layer(2)[25, 25] == 0
