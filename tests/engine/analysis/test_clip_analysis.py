"""A clip through ``analyse_case``: the shipped lung-ultrasound bundle's clip verdicts, maps on the
full frame inside the scan region, key frames, and more methods added from the kept capture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.analysis import add_methods, analyse_case
from engine.imaging import read_image
from engine.models.crop_box import scaled_shape
from engine.tasks.lung_ultrasound.data import CLASS_NAMES
from tests.engine.tasks.test_lung_ultrasound import lus_dir, shipped, small_clip  # noqa: F401 (fixtures)


def _smallest_test_clips(bundle, lus_dir: Path, count: int) -> list[dict]:
    verdicts = bundle.metadata["eval_metrics"]["val_clip_verdicts"]
    return sorted(verdicts, key=lambda v: (lus_dir / v["path"]).stat().st_size)[:count]


def test_shipped_clip_verdicts_are_what_the_model_card_says(shipped, lus_dir):
    """The clip verdict (mean frame probability) on the inner-validation clips (never trained on)
    reproduces the recorded verdicts,
    and the maps cover the full frame, zero outside the scan region."""
    for record in _smallest_test_clips(shipped, lus_dir, 2):
        volume = read_image(lus_dir / record["path"])
        analysis = analyse_case(volume, shipped, max_map_side=96)
        maps = analysis.maps["gradcam"].maps
        assert np.allclose(analysis.verdict.probabilities, record["verdict"], atol=2e-4), record["path"]
        assert CLASS_NAMES[analysis.verdict.class_index] == record["predicted"]
        grid, _ = scaled_shape(volume.shape[1:], 96)
        assert maps.shape == (3, volume.n_slices) + grid
        region = analysis.crop_box.scaled_mask(grid)
        assert np.abs(maps[:, :, ~region]).max() == 0.0
        inside = maps[:, :, region]
        assert np.abs(inside).max() > 0
        k = analysis.verdict.class_index
        explanation = analysis.maps["gradcam"].key_frames[k]
        assert len(explanation.key_frames) == 3
        assert explanation.key_frames[0] == int(np.argmax(explanation.importance))


def test_analyse_clip_downsamples_maps_and_keeps_them_in_the_region(shipped, small_clip):
    analysis = analyse_case(small_clip, shipped, classes=[1], max_map_side=68)
    maps = analysis.maps["gradcam"]
    assert maps.maps.shape == (1, 26, 68, 68)
    assert maps.classes == (1,)
    mask = analysis.crop_box.scaled_mask((68, 68))
    assert np.abs(maps.maps[0][:, ~mask]).max() == 0.0
    full = analyse_case(small_clip, shipped, classes=[1])
    # The downsampled map is the full one seen coarser: it matches the full map averaged in 4 x 4 blocks.
    pooled = full.maps["gradcam"].maps[0].reshape(26, 68, 4, 68, 4).mean(axis=(2, 4))
    assert np.corrcoef(pooled.ravel(), maps.maps[0].ravel())[0, 1] > 0.95
    assert np.array_equal(full.verdict.probabilities, analysis.verdict.probabilities)


def test_the_shown_class_of_a_clip_is_its_verdict_class_and_frames_keep_their_times(shipped, small_clip):
    """``classes="shown"`` explains the verdict's class only, from the same single pass; the
    verdict is the mean frame probability and every frame has its time."""
    analysis = analyse_case(small_clip, shipped, classes="shown", max_map_side=34)
    np.testing.assert_allclose(analysis.verdict.probabilities, analysis.probabilities.mean(axis=0), atol=1e-6)
    assert analysis.maps["gradcam"].classes == (analysis.verdict.class_index,)
    assert analysis.class_to_show() == analysis.verdict.class_index
    assert analysis.item_axis == "frame" and analysis.kind == "clip"
    times = analysis.frame_times_ms
    assert len(times) == 26 and times[0] == 0 and np.all(np.diff(times) > 0)
    assert analysis.verdict.label == "Clip verdict: mean of 26 frames"
    assert any("zero outside" in note for note in analysis.notes)  # the network saw the scan region only


def test_a_method_added_to_a_clip_gets_its_own_key_frames_with_no_forward_pass(shipped, small_clip):
    analysis = analyse_case(small_clip, shipped, max_map_side=68)
    calls = []
    hook = shipped.network.register_forward_hook(lambda *_: calls.append(1))
    try:
        added = add_methods(analysis, small_clip, shipped, "layercam")
    finally:
        hook.remove()
    assert calls == []
    layercam = added.maps["layercam"]
    assert layercam.maps.shape == analysis.maps["gradcam"].maps.shape
    assert set(layercam.key_frames) == {0, 1, 2}
    assert layercam.params["key_frames"] == {str(k): list(v) for k, v in layercam.key_items.items()}
    direct = shipped.explain(small_clip, "layercam", max_map_side=68)
    np.testing.assert_allclose(layercam.maps, direct, atol=1e-5)
