"""Perturbation methods (Score-CAM, occlusion) run through a bundle like the gradient family."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging import read_image
from engine.models.bundle import load_bundle
from engine.progress import Cancelled
from tests.progress import RecordingProgress

HELD_OUT = "TCGA_HT_7692_19960724"  # a test-split patient of the shipped glioma bundle


@pytest.fixture(scope="module")
def held_out(shared_data):
    return read_image(shared_data / "glioma-lgg" / HELD_OUT)


def test_score_cam_on_a_held_out_lesion_points_into_the_mask(held_out):
    bundle = load_bundle("glioma")
    k = int(np.argmax(held_out.labels.sum(axis=(1, 2))))
    progress = RecordingProgress()
    maps = bundle.explain(held_out, method="scorecam", classes=[1], slices=[k], progress=progress)
    assert maps.shape == (1, 1, 128, 128) and maps.dtype == np.float32
    positive = np.clip(maps[0, 0], 0, None)
    mask = held_out.labels[k] > 0
    inside = positive[mask].sum() / positive.sum()
    assert inside > 5 * mask.mean()  # far more of the map on the lesion than its share of the slice
    assert progress.fractions[-1] == 1.0 and progress.fractions == sorted(progress.fractions)


def test_a_perturbation_run_can_be_cancelled(held_out):
    bundle = load_bundle("glioma")
    with pytest.raises(Cancelled):
        bundle.explain(held_out, method="occlusion", classes=[0, 1], slices=[0, 1], progress=RecordingProgress(cancel_after=1), batch_size=1)


def test_an_unknown_method_names_the_known_ones(held_out):
    with pytest.raises(ValueError, match="occlusion"):
        load_bundle("glioma").explain(held_out, method="no-such-cam", slices=[0])
