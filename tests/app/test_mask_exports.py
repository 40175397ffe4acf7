"""A mask painted in a reader study reaches the annotation exports: the region answer keeps its
run-length encoding through the data layer's check, the NIfTI/SEG label map has exactly the
painted pixels under the label's code, and GeoJSON covers exactly those pixels with rectangles;
a stored mask is drawn again as the reader's mark."""

from __future__ import annotations

import numpy as np
import pytest

from app.study_annotation_exports import RegionReading, geojson_feature, label_map
from db.errors import InvalidInput
from db.study_spec import check_answer
from engine.stats.regions import region_labels
from engine.stats.results import StatsInputError
from tests.ui.fake_workstation import synthetic_volume
from ui.model import ViewerState
from ui.study.questions import region_value, restore_marks

GRID = (5, 32, 32)


@pytest.fixture
def painted():
    """A reader's marks: a brush stroke of "lesion" on slice 2 and a box of "oedema" beside it."""
    state = ViewerState()
    state.display.set_volume(synthetic_volume(), "flair")
    annotation = state.annotation
    annotation.label, annotation.tool, annotation.brush_radius = "lesion", "brush", 3
    annotation.begin_stroke(6.0, 6.0)
    annotation.extend_stroke(6.0, 15.0)
    annotation.end_stroke()
    annotation.label = "oedema"
    annotation.add_box((20.0, 20.0), (24.0, 26.0))
    return state


def stored(state: ViewerState) -> list[dict]:
    return check_answer("region", (), region_value(state.annotation.drafts), case_shape=(3, *GRID), where="q1")


def test_a_painted_mask_is_exported_as_exactly_its_pixels(painted):
    mask = painted.annotation.drafts[0].mask.decode()
    regions = stored(painted)
    assert regions[0]["kind"] == "mask" and regions[0]["points"] == []
    assert regions[0]["mask"]["counts"] == list(painted.annotation.drafts[0].mask.counts)
    reading = RegionReading("C1", "r0", "ai", 1, 1, False, "outline", tuple(regions))
    labels, codes = label_map(reading, GRID)
    assert codes == {"lesion": 1, "oedema": 2}
    np.testing.assert_array_equal(labels[2] == 1, mask)
    assert (labels[[0, 1, 3, 4]] == 0).all() and (labels[2, 20:25, 20:27] == 2).all()


def test_geojson_covers_exactly_the_painted_pixels(painted):
    region = stored(painted)[0]
    reading = RegionReading("C1", "r0", "ai", 1, 1, False, "outline", (region,))
    feature = geojson_feature(region, reading, scale=2.0)
    assert feature["geometry"]["type"] == "MultiPolygon"
    covered = np.zeros((64, 64), dtype=int)
    for (ring,) in feature["geometry"]["coordinates"]:
        (x0, y0), _, (x1, y1), _, last = ring
        assert last == [x0, y0]
        covered[int(y0):int(y1), int(x0):int(x1)] += 1
    expected = np.kron(painted.annotation.drafts[0].mask.decode(), np.ones((2, 2), dtype=int))
    np.testing.assert_array_equal(covered, expected)  # every painted pixel once, nothing else


def test_a_stored_mask_is_drawn_again_as_the_readers_mark(painted):
    regions = stored(painted)
    again = ViewerState()
    again.display.set_volume(synthetic_volume(), "flair")
    restore_marks(again, regions)
    assert again.annotation.drafts == painted.annotation.drafts


def test_a_mask_that_does_not_fit_is_refused_in_one_line(painted):
    regions = stored(painted)
    with pytest.raises(InvalidInput, match=r"mask shape \(32, 32\) is not the case's \(32, 16\) slice"):
        check_answer("region", (), regions, case_shape=(3, 5, 32, 16), where="q1")
    with pytest.raises(StatsInputError, match="does not fit the 32 x 16 slices"):
        region_labels(regions, (5, 32, 16))
    broken = [{**regions[0], "mask": {"shape": [32, 32], "counts": [3]}}]
    with pytest.raises(StatsInputError, match="add up to 3"):
        region_labels(broken, GRID)
