"""The shipped glioma bundle: what its metadata promises, its checksum, its generated card, and
where its Grad-CAM points on a held-back patient."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.imaging import read_image
from engine.models import load_bundle
from engine.models.metadata import INFERENCE_FILE, WEIGHTS_FILE, bundles_root, file_sha256, list_bundles
from engine.tasks.glioma import train as recipe
from engine.tasks.glioma.selection import RULE, SHIPPED_LABEL, choose
from engine.training.bundle_writer import layer_grid
from engine.training.evaluate import EVALUATION_FILE


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("glioma")


def test_shipped_bundle_is_the_recipes_network_with_its_checksum(bundle):
    assert bundle.version == recipe.SPEC.version == "2.1.0"
    assert bundle.weights_sha256 == file_sha256(bundle.path / WEIGHTS_FILE)
    network_def = json.loads((bundle.path / INFERENCE_FILE).read_text())["network_def"]
    assert network_def == recipe.NETWORKS[recipe.DEFAULT_NETWORK]
    assert network_def["_target_"].startswith("monai.networks.nets.")
    grid = layer_grid(bundle.network, bundle.target_layer, bundle.input_size, len(bundle.input_channels))
    assert bundle.metadata["target_layer_grid"] == grid and min(grid) >= 16
    assert bundle.metadata["preprocessing"]["brain_margin"] == recipe.DEFAULT_BRAIN_MARGIN
    assert bundle.metadata["training"]["options"] == recipe.training_options(
        recipe.DEFAULT_NETWORK, recipe.DEFAULT_AUGMENT, recipe.DEFAULT_BRAIN_MARGIN, recipe.DEFAULT_GUIDANCE,
        recipe.DEFAULT_CLASS_BALANCE,
    )
    assert bundle.metadata["training"]["options"]["class_balance"] is True and len(bundle.metadata["training"]["class_weights"]) == 2
    assert bundle.metadata["training"]["epochs"] == recipe.DEFAULT_EPOCHS
    weight = bundle.network.class_layers.out.weight
    assert torch.allclose(weight[0], -weight[1])  # centred: Grad-CAM of the abnormality is its evidence
    split = bundle.metadata["split"]
    assert [len(split[p]) for p in ("train", "val", "test")] == list(recipe.DEFAULT_SPLIT)
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])


def test_shipped_card_is_the_one_salience_evaluate_wrote(bundle):
    report = json.loads((bundle.path / EVALUATION_FILE).read_text())
    assert report["weights_sha256"] == bundle.weights_sha256 and report["cases"] == bundle.metadata["split"]["test"]
    card = bundle.model_card.read_text()
    assert card.startswith("# glioma 2.1.0") and "written by `salience evaluate glioma`" in card
    assert f"| ROC AUC, slice level | {report['auc']['estimate']:.3f}" in card
    pointing = report["localisation"]["pointing_game"]
    assert f"| pointing game (gradcam) | {pointing['estimate']:.3f} (95% CI {pointing['ci95'][0]:.3f}" in card
    assert bundle.metadata["eval_metrics"]["pointing_game"] == pointing
    # Seeds 0-2 give the ranges; the first run is this bundle.
    runs = report["seed_runs"]["runs"]
    assert [run["seed"] for run in runs] == [0, 1, 2] and runs[0]["weights_sha256"] == bundle.weights_sha256


def test_shipped_card_says_the_validation_patients_chose_it_by_the_declared_rule(bundle):
    """Issue 11: 2.1.0 replaced 2.0.0 because the rule, applied to validation figures only, picks it."""
    report = json.loads((bundle.path / EVALUATION_FILE).read_text())
    assert report["levers_cases"] == bundle.metadata["split"]["val"]
    rows = {row["label"]: row for row in report["levers"]}
    candidates = [row for row in report["levers"] if row["label"] != SHIPPED_LABEL]
    assert choose(rows[SHIPPED_LABEL], candidates).chosen == "this bundle"
    assert "class_balance=False" in rows[SHIPPED_LABEL]["setting"] and "class_balance=True" in rows["this bundle"]["setting"]
    card = bundle.model_card.read_text()
    assert "Chosen by the rule: this bundle." in card and RULE in card
    # The levers measured for 2.0.0 stay in the card, and its class-balanced run is this bundle's settings.
    earlier = {row["label"]: row for row in report["earlier_levers"]["rows"]}
    assert report["earlier_levers"]["version"] == "2.0.0" and "no map guidance" in earlier
    assert earlier["class-balanced loss"]["setting"] == rows["this bundle"]["setting"]


def test_all_shipped_weights_stay_small():
    sizes = [(bundles_root() / name / WEIGHTS_FILE).stat().st_size for name in list_bundles()]
    assert sum(sizes) < 25 * 2**20
    assert (bundles_root() / "glioma" / WEIGHTS_FILE).stat().st_size < 3 * 2**20


@pytest.mark.needs_data
def test_grad_cam_peaks_inside_the_lesion_of_a_held_back_patient(bundle, shared_data: Path):
    """The issue opened TCGA_CS_4941 slice 12, but that patient is in the training split. This is
    the held-back test patient with the largest lesion on one slice (chosen from the masks alone,
    before looking at any map): TCGA_FG_A4MU, slice 15."""
    case = "TCGA_FG_A4MU_20030903"
    assert case in bundle.metadata["split"]["test"]
    volume = read_image(shared_data / "glioma-lgg" / case)
    areas = volume.labels.reshape(volume.n_slices, -1).sum(axis=1)
    assert int(np.argmax(areas)) == 15
    assert bundle.predict(volume).probabilities[15, 1] > 0.5
    cam = bundle.explain(volume, method="gradcam", classes=[1], slices=[15])[0, 0]
    lesion = volume.labels[15] > 0
    assert lesion.flat[int(np.argmax(cam))]  # the peak lies inside the FLAIR abnormality
    positive = np.clip(cam, 0, None)
    assert positive[lesion].sum() / positive.sum() > 3 * lesion.mean()
