"""Overlap, pointing and energy on masks whose answers are counted by hand, and the map-vs-reader benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.results import StatsInputError
from engine.stats.spatial import cam_vs_reader_agreement, dice, energy_inside, iou, pointing_hit, threshold_map


def _box(shape, top, left, height, width):
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_dice_and_iou_of_overlapping_boxes():
    """Two 4x4 boxes overlapping in a 2x4 strip: |A&B| = 8, |A|+|B| = 32, |A|B| = 24."""
    a, b = _box((10, 10), 0, 0, 4, 4), _box((10, 10), 2, 0, 4, 4)
    assert dice(a, b) == pytest.approx(16 / 32)
    assert iou(a, b) == pytest.approx(8 / 24)
    assert dice(a, a) == iou(a, a) == 1.0
    assert dice(a, _box((10, 10), 6, 6, 2, 2)) == 0.0


def test_overlap_of_two_empty_regions_is_undefined_not_perfect():
    empty = np.zeros((3, 3), bool)
    assert np.isnan(dice(empty, empty)) and np.isnan(iou(empty, empty))


def test_overlap_works_on_volumes():
    a = np.zeros((4, 5, 6), bool)
    a[1:3] = True
    assert iou(a, a[:, :, :]) == 1.0
    assert dice(a, np.roll(a, 1, axis=0)) == pytest.approx(0.5)


def test_pointing_energy_and_threshold():
    saliency = np.zeros((8, 8))
    saliency[1, 1] = 5.0
    saliency[6, 6] = 3.0
    saliency[0, 7] = -4.0
    region = _box((8, 8), 0, 0, 3, 3)
    assert pointing_hit(saliency, region)
    assert not pointing_hit(saliency, _box((8, 8), 5, 5, 3, 3))
    assert energy_inside(saliency, region) == pytest.approx(5 / 8)  # the negative part is not evidence
    # range -4..5: 0.5 of the range is 0.5, so pixels >= 0.5 survive; 0.8 keeps the peak only.
    assert threshold_map(saliency, 0.5).sum() == 2
    assert threshold_map(saliency, 0.8).sum() == 1
    assert threshold_map(np.ones((3, 3)), 0.5).sum() == 0
    assert np.isnan(energy_inside(-np.ones((8, 8)), region))


def _disk(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def _study(rng, map_offset):
    """Three readers outline a lesion with a little jitter; the map is a Gaussian blob centred
    ``map_offset`` pixels from the lesion."""
    cases = []
    for _ in range(12):
        centre = rng.integers(20, 44, 2)
        regions = [_disk((64, 64), centre + rng.integers(-2, 3, 2), 8 + rng.integers(-1, 2)) for _ in range(3)]
        rows, cols = np.mgrid[:64, :64]
        peak = centre + map_offset
        saliency = np.exp(-((rows - peak[0]) ** 2 + (cols - peak[1]) ** 2) / (2 * 6.0**2))
        cases.append((saliency, regions))
    return cases


def test_a_map_on_the_lesion_agrees_about_as_well_as_readers_and_one_beside_it_less():
    rng = np.random.default_rng(3)
    on_target = cam_vs_reader_agreement(_study(rng, np.array([0, 0])), threshold=0.5)
    assert on_target.n_cases == 12 and on_target.measure == "iou"
    assert on_target.reader_vs_reader.estimate > 0.6
    assert on_target.cam_vs_reader.estimate > 0.5
    beside = cam_vs_reader_agreement(_study(rng, np.array([14, 0])), threshold=0.5, measure="dice")
    assert beside.difference.ci_high < 0  # the map agrees with readers less than they agree with each other
    assert beside.cam_vs_reader.ci_high < on_target.cam_vs_reader.ci_low
    assert beside.difference.estimate == pytest.approx(beside.cam_vs_reader.estimate - beside.reader_vs_reader.estimate)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dice(np.ones((2, 2)), np.ones((3, 3))), "shapes"),
        (lambda: pointing_hit(np.ones((2, 2)), np.zeros((2, 2))), "non-empty region"),
        (lambda: threshold_map(np.ones((2, 2)), 1.5), "between 0 and 1"),
        (lambda: cam_vs_reader_agreement([(np.ones((2, 2)), [np.ones((2, 2))])] * 3), "two or more readers"),
        (lambda: cam_vs_reader_agreement([(np.ones((2, 2)), [np.ones((2, 2))] * 2)] * 3, measure="hausdorff"), "hausdorff"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(StatsInputError, match=message):
        call()
