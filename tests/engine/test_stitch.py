"""Slide heatmaps from tiles and clip explanations from frames, on layouts known in advance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.explain.stitch import clip_explanation, feather_window, probability_heatmap, stitch_tiles

CHECKER = np.indices((4, 5)).sum(axis=0) % 2  # 4 x 5 tiles, alternating 0 / 1


def checkerboard_tiles(tile: int, map_size: int) -> list[tuple[int, int, np.ndarray]]:
    return [
        (r * tile, c * tile, np.full((map_size, map_size), float(CHECKER[r, c])))
        for r in range(CHECKER.shape[0])
        for c in range(CHECKER.shape[1])
    ]


@pytest.mark.parametrize("map_size", [16, 2])  # CAM at the tile's resolution, or at the layer's
@pytest.mark.parametrize("downsample", [1.0, 4.0])
def test_checkerboard_of_tile_maps_is_reassembled_exactly(map_size, downsample):
    heatmap = stitch_tiles(checkerboard_tiles(16, map_size), (64, 80), 16, downsample=downsample)
    cell = int(16 / downsample)
    assert heatmap.shape == (64 / downsample, 80 / downsample)
    assert np.array_equal(heatmap, np.kron(CHECKER, np.ones((cell, cell))).astype(np.float32))


@pytest.mark.parametrize("blend", ["mean", "feather"])
def test_overlapping_tiles_cut_from_one_map_give_that_map_back(blend):
    slide = np.random.default_rng(0).random((40, 40))
    tiles = [(r, c, slide[r : r + 16, c : c + 16]) for r in range(0, 25, 8) for c in range(0, 25, 8)]
    heatmap = stitch_tiles(tiles, (40, 40), 16, blend=blend)
    assert np.allclose(heatmap, slide, atol=1e-6)


def test_overlap_is_a_weighted_average_and_gaps_are_marked():
    tiles = [(0, 0, np.full((8, 8), 1.0)), (0, 4, np.full((8, 8), 3.0))]
    heatmap = stitch_tiles(tiles, (16, 16), 8)
    assert np.all(heatmap[:8, :4] == 1.0) and np.all(heatmap[:8, 4:8] == 2.0) and np.all(heatmap[:8, 8:12] == 3.0)
    assert np.isnan(heatmap[8:]).all() and np.isnan(heatmap[:, 12:]).all()
    feathered = stitch_tiles(tiles, (16, 16), 8, blend="feather")
    # Near the first tile's centre it weighs more than the second tile's edge.
    assert 1.0 < feathered[4, 4] < 2.0 and 2.0 < feathered[4, 7] < 3.0


def test_tiles_past_the_slide_border_are_cropped():
    heatmap = stitch_tiles([(8, 8, np.full((4, 4), 5.0))], (12, 12), 8, fill=0.0)
    assert heatmap.shape == (12, 12)
    assert np.all(heatmap[8:, 8:] == 5.0) and heatmap[:8].sum() == 0.0


def test_feather_window_is_positive_and_peaks_in_the_middle():
    window = feather_window((5, 4))
    assert window.min() > 0 and window[2, 1] == window.max() == 1.0 and window[0, 0] == pytest.approx(1 / 6)


def test_probability_heatmap_puts_each_tile_in_its_cell():
    coords = [(0, 0), (1, 2), (1, 2), (2, 1)]
    probabilities = [0.9, 0.2, 0.4, 0.7]
    heatmap = probability_heatmap(coords, probabilities)
    assert heatmap.shape == (3, 3)
    assert heatmap[0, 0] == pytest.approx(0.9) and heatmap[1, 2] == pytest.approx(0.3)
    assert heatmap[2, 1] == pytest.approx(0.7) and np.isnan(heatmap[0, 1])
    per_class = probability_heatmap(coords, [[p, 1 - p] for p in probabilities], grid_shape=(3, 4), fill=-1.0)
    assert per_class.shape == (2, 3, 4)
    assert per_class[1, 0, 0] == pytest.approx(0.1) and per_class[0, 2, 3] == -1.0
    with pytest.raises(ValueError, match="outside the grid"):
        probability_heatmap([(5, 0)], [0.5], grid_shape=(3, 3))


def test_key_frames_are_the_frames_that_contribute_most():
    frames = np.zeros((6, 8, 8))
    frames[2, :4, :4] = 1.0  # strongest map energy
    frames[4, :2, :2] = 1.0
    frames[0] = -1.0  # only negative evidence: no energy
    scores = np.array([0.1, 0.1, 0.7, 0.1, 0.6, 0.1])
    clip = clip_explanation(frames, scores, top_k=2)
    assert clip.key_frames == [2, 4]
    assert clip.energy_share[2] == pytest.approx(16 / 20) and clip.energy_share[0] == 0.0
    assert clip.score_share[4] == pytest.approx(0.6 / 1.7)
    assert clip.frame_stats[2].max == 1.0 and clip.frame_stats[0].positive_fraction == 0.0
    # With scores alone, the frame scoring highest comes first.
    assert clip_explanation(frames, scores[::-1].copy(), top_k=1, score_weight=1.0).key_frames == [3]
    assert json.loads(json.dumps(clip.to_dict()))["key_frames"] == [2, 4]


def test_clip_explanation_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="T scores"):
        clip_explanation(np.zeros((3, 4, 4)), [0.1, 0.2])
