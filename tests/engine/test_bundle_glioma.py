"""The shipped glioma bundle on a real patient: predictions, maps, progress and cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.progress import RecordingProgress

from engine.errors import BundleError
from engine.imaging import read_image
from engine.imaging.volume import ImageVolume
from engine.models import Bundle, load_bundle
from engine.progress import Cancelled

pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle("glioma")


@pytest.fixture(scope="module")
def volume(shared_data: Path, bundle: Bundle) -> ImageVolume:
    """A patient the shipped model never saw: held back in its test split."""
    case = "TCGA_HT_7692_19960724"
    assert case in bundle.metadata["split"]["test"]
    return read_image(shared_data / "glioma-lgg" / case)


def _positive_slices(volume: ImageVolume) -> np.ndarray:
    return volume.labels.reshape(volume.n_slices, -1).any(axis=1)


def test_predict_gives_probabilities_that_follow_the_mask(bundle: Bundle, volume: ImageVolume):
    prediction = bundle.predict(volume)
    assert prediction.probabilities.shape == (volume.n_slices, 2)
    assert prediction.probabilities.dtype == np.float32
    assert np.allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert prediction.class_names == bundle.class_names and prediction.item_axis == "slice"
    assert prediction.calibrated
    positive = _positive_slices(volume)
    assert positive.any() and (~positive).any()
    abnormal = prediction.probabilities[:, 1]
    assert abnormal[positive].mean() > abnormal[~positive].mean() + 0.3


def test_explain_maps_lie_on_the_volume_grid_and_point_into_the_mask(bundle: Bundle, volume: ImageVolume):
    maps = bundle.explain(volume, method="gradcam")
    assert maps.shape == (2, volume.n_slices) + volume.shape[1:] and maps.dtype == np.float32
    assert maps.min() < 0 < maps.max()  # raw and signed, not rectified or rescaled
    areas = volume.labels.reshape(volume.n_slices, -1).sum(axis=1)
    s = int(np.argmax(areas))
    positive_part = np.clip(maps[1, s], 0, None)
    inside = volume.labels[s] > 0
    assert positive_part[inside].mean() > 2 * positive_part[~inside].mean()


def test_explain_a_subset_of_slices_and_classes(bundle: Bundle, volume: ImageVolume):
    full = bundle.explain(volume, classes=[1])
    subset = bundle.explain(volume, classes=[1], slices=[3, 10])
    assert subset.shape == (1, 2) + volume.shape[1:]
    assert np.allclose(subset[0], full[0, [3, 10]], atol=1e-5)
    with pytest.raises(ValueError, match="unknown CAM method"):
        bundle.explain(volume, method="nonsense")
    with pytest.raises(ValueError, match="out of range"):
        bundle.explain(volume, slices=[volume.n_slices])


def test_progress_is_reported_per_batch_and_cancellation_stops_the_work(bundle: Bundle, volume: ImageVolume):
    progress = RecordingProgress()
    bundle.predict(volume, progress=progress, batch_size=8)
    assert len(progress.fractions) == -(-volume.n_slices // 8) and progress.fractions[-1] == 1.0
    with pytest.raises(Cancelled):
        bundle.explain(volume, progress=RecordingProgress(cancel_after=1), batch_size=8)


def test_a_volume_on_another_grid_is_resized_in_and_maps_come_back_on_its_grid(bundle: Bundle, volume: ImageVolume):
    small = volume.with_(array=volume.array[:, :, ::2, ::2], labels=volume.labels[:, ::2, ::2])
    assert bundle.preprocess(small).shape == (volume.n_slices, 3, 128, 128)
    maps = bundle.explain(small, classes=[1], slices=[5])
    assert maps.shape == (1, 1, 64, 64)
    abnormal = bundle.predict(small).probabilities[:, 1]
    positive = _positive_slices(volume)
    assert abnormal[positive].mean() > abnormal[~positive].mean()


def test_a_volume_without_the_needed_sequences_is_refused(bundle: Bundle, volume: ImageVolume):
    flair_only = volume.with_(array=volume.array[1:2], channel_names=("flair",))
    with pytest.raises(BundleError, match="needs \\['t1', 'flair', 't1ce'\\]"):
        bundle.predict(flair_only)
