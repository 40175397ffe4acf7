"""The shipped 3-D glioma-grade bundle: it loads with its checksum, and on a held-back patient it
gives one verdict and a map on every slice of the volume's own grid, peaking on the voxels the
network's own map points at."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.analysis import analyse_case
from engine.models import list_bundles, load_bundle
from engine.models.bundle import WEIGHTS_FILE, file_sha256
from engine.imaging import read_image
from engine.models.inference import explain_with


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("glioma-grade")


def test_shipped_grade_bundle_loads_with_its_checksum_and_declares_a_3d_input(bundle):
    assert "glioma-grade" in list_bundles()
    assert bundle.weights_sha256 == file_sha256(bundle.path / WEIGHTS_FILE)
    assert bundle.whole_volume and len(bundle.input_size) == 3 and bundle.task == "glioma-grade"
    assert bundle.class_names == ("WHO grade II", "WHO grade III") and bundle.calibrated
    assert bundle.metadata["input_channels"] == ["t1", "flair", "t1ce"]
    assert (bundle.path / WEIGHTS_FILE).stat().st_size < 2 * 2**20
    shipped = sum((p / WEIGHTS_FILE).stat().st_size for p in bundle.path.parent.iterdir() if (p / WEIGHTS_FILE).is_file())
    assert shipped < 25 * 2**20  # every shipped bundle together
    card = bundle.model_card.read_text()
    assert "CC BY 3.0" in card and "95% CI" in card and "bootstrap" in card
    split = bundle.metadata["split"]
    assert not (set(split["train"]) & set(split["test"]) or set(split["val"]) & set(split["test"]))


def test_a_held_back_patient_gets_one_verdict_and_a_map_on_every_slice_peaking_where_the_network_looked(
    bundle, shared_data: Path
):
    metrics = json.loads((bundle.path / "docs" / "training_metrics.json").read_text())
    recorded = metrics["test_predictions"][0]
    assert recorded["patient"] in bundle.metadata["split"]["test"]
    volume = read_image(shared_data / "glioma-lgg" / recorded["patient"])
    analysis = analyse_case(volume, bundle, "gradcam", classes=None)
    assert analysis.probabilities.shape == (1, 2) and analysis.item_axis == "volume"
    # The window and the recipe see the same number: preprocessing, network and temperature agree.
    assert analysis.probabilities[0, 1] == pytest.approx(recorded["p_grade_iii"], abs=1e-3)
    assert analysis.verdict.class_index == int(np.argmax(analysis.probabilities[0]))
    maps = analysis.maps["gradcam"].maps
    assert maps.shape == (2, volume.n_slices, 128, 128) and np.isfinite(maps).all()
    k = analysis.class_to_show()
    shown = analysis.maps["gradcam"].of(k)
    # Where the peak must be: the peak of the map on the network's own input grid, carried through
    # the head box back to the volume's voxels (within one input voxel).
    x = bundle.preprocess(volume)
    on_input = explain_with(bundle.network, x, bundle.target_layer, "gradcam", [k], tuple(x.shape[2:]))[0, 0]
    box, size = analysis.volume_box, bundle.input_size
    expected = [first + (i + 0.5) * extent / n - 0.5
                for i, first, extent, n in zip(np.unravel_index(int(np.argmax(on_input)), size), box.start, box.size, size)]
    peak = np.unravel_index(int(np.argmax(shown)), shown.shape)
    assert all(abs(p - e) <= extent / n + 1 for p, e, extent, n in zip(peak, expected, box.size, size)), (peak, expected)
    (s0, s1), (r0, r1), (c0, c1) = box.bounds
    outside = np.ones(shown.shape, dtype=bool)
    outside[s0:s1, r0:r1, c0:c1] = False
    assert not shown[outside].any() and shown[~outside].any()
    assert len(analysis.maps["gradcam"].key_items[k]) == 3
