"""Training recipe: patient split, metrics, calibration, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from engine.errors import SalienceError
from engine.models import load_bundle
from engine.training.evaluation import binary_metrics, fit_temperature, mask_energy, nll, roc_auc
from engine.tasks.glioma.data import slice_labels, split_patients
from engine.tasks.glioma.train import augment, train_glioma
from tests.engine.test_bundle_loading import TINY_NET


def test_split_is_by_patient_disjoint_and_seeded():
    patients = [f"P{i:02d}" for i in range(20)]
    split = split_patients(patients, (12, 3, 5), seed=7)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert [len(p) for p in parts] == [12, 3, 5]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert split == split_patients(list(reversed(patients)), (12, 3, 5), seed=7)
    assert split != split_patients(patients, (12, 3, 5), seed=8)
    with pytest.raises(SalienceError, match="needs 21 patients"):
        split_patients(patients, (12, 4, 5), seed=0)


def test_slice_labels_mark_slices_with_any_mask_voxel():
    mask = np.zeros((4, 5, 5), dtype=np.uint8)
    mask[1, 2, 2] = 1
    mask[3] = 1
    assert slice_labels(mask).tolist() == [0, 1, 0, 1]


def test_auc_and_counts_match_hand_computed_values():
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])
    # 9 positive/negative pairs; (0.4 vs 0.6) is the only one ranked wrongly.
    assert roc_auc(labels, scores) == pytest.approx(8 / 9)
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(roc_auc(np.ones(3), np.arange(3)))
    m = binary_metrics(labels, scores)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (2, 1, 2, 1)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(4 / 6)


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(4000, 2))
    p = torch.softmax(torch.from_numpy(true_logits), 1)[:, 1].numpy()
    labels = (rng.random(4000) < p).astype(np.int64)
    overconfident = true_logits * 3.0
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)
    assert nll(overconfident, labels, temperature) < nll(overconfident, labels)


def test_mask_energy_counts_only_positive_evidence():
    cam = np.full((4, 4), -1.0)
    cam[0, 0] = 3.0
    cam[3, 3] = 1.0
    mask = np.zeros((4, 4))
    mask[0, :2] = 1
    energy, area = mask_energy(cam, mask)
    assert energy == pytest.approx(0.75) and area == pytest.approx(2 / 16)


def test_augment_flips_and_jitters_but_keeps_background_black():
    x = torch.zeros(64, 3, 8, 8)
    x[:, :, :, :2] = 1.0  # bright stripe on the left
    out = augment(x, torch.Generator().manual_seed(0))
    flipped = out[:, 0, 0, -1] > 0
    assert 10 < int(flipped.sum()) < 54  # about half were flipped
    assert float(out[~flipped][:, :, :, 2:].abs().max()) == 0.0
    assert float(out[flipped][:, :, :, :-2].abs().max()) == 0.0
    assert ((out != 0).sum(dim=(1, 2, 3)) == 3 * 8 * 2).all()  # the shift touches the stripe only
    bright = out[out != 0]
    assert 0.85 < float(bright.min()) and float(bright.max()) < 1.16


def test_tiny_training_run_writes_a_loadable_reproducible_bundle(shared_data: Path, tmp_path: Path, capsys):
    data = shared_data / "glioma-lgg"
    kwargs = dict(epochs=1, seed=3, split=(1, 1, 1), network_def=TINY_NET, batch_size=16)
    metrics = train_glioma(data, tmp_path / "a", **kwargs)
    bundle = load_bundle(tmp_path / "a")
    assert bundle.name == "glioma" and bundle.version == "2.1.0" and bundle.target_layer == "class_layers.relu"
    split = bundle.metadata["split"]
    assert len(set(split["train"]) | set(split["val"]) | set(split["test"])) == 3
    assert metrics["slices"]["test"] > 0 and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["temperature"] == pytest.approx(bundle.temperature, rel=1e-5)
    assert bundle.metadata["preprocessing"]["brain_margin"] == 6
    assert bundle.metadata["training"]["options"] == {
        "network": "custom", "augment": "strong", "brain_margin": 6, "guidance": 0.5, "class_balance": True,
    }
    weight = bundle.network.class_layers.out.weight
    assert torch.allclose(weight[0], -weight[1])  # centred: each logit is half the log-odds
    card = bundle.model_card.read_text()
    assert "Results on the held-back test patients" in card and "Map guidance: cross-entropy + 0.5" in card
    assert "Class weights of the loss: [" in card
    assert metrics["evaluation"]["cases"] == split["test"]
    # `salience evaluate glioma` measures the same patients and writes the same card and report.
    report = (tmp_path / "a" / "docs" / "evaluation.json").read_text()
    assert main(["evaluate", "glioma", "--bundle", str(tmp_path / "a"), "--data", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["auc"] == metrics["evaluation"]["auc"]
    assert bundle.model_card.read_text() == card
    assert (tmp_path / "a" / "docs" / "evaluation.json").read_text() == report
    again = train_glioma(data, tmp_path / "b", **kwargs)
    assert load_bundle(tmp_path / "b").weights_sha256 == bundle.weights_sha256
    assert again["test"] == metrics["test"]


def test_each_lever_can_be_switched_off_and_is_recorded(shared_data: Path, tmp_path: Path):
    data = shared_data / "glioma-lgg"
    train_glioma(data, tmp_path / "plain", epochs=1, seed=3, split=(1, 1, 1), network_def=TINY_NET, batch_size=16,
                 augment_name="light", brain_margin=0, guidance=0.0, class_balance=False)
    bundle = load_bundle(tmp_path / "plain")
    assert bundle.metadata["preprocessing"]["brain_margin"] == 0
    training = bundle.metadata["training"]
    assert training["options"]["augment"] == "light" and training["options"]["guidance"] == 0.0
    assert "cam_guidance" not in training and "class_weights" not in training
    assert training["options"]["class_balance"] is False
    with pytest.raises(SalienceError, match="unknown glioma network 'vgg'"):
        train_glioma(data, tmp_path / "x", network="vgg")
    with pytest.raises(SalienceError, match="unknown augmentation 'heavy'"):
        train_glioma(data, tmp_path / "x", augment_name="heavy")


def test_the_recipe_command_passes_its_options_on(monkeypatch, tmp_path: Path):
    import engine.tasks.glioma.train as recipe

    calls = []
    monkeypatch.setattr(recipe, "train_glioma", lambda data, out, **options: calls.append(options) or {})
    monkeypatch.setattr(recipe, "_summary", lambda metrics: "done")
    threads = torch.get_num_threads()
    try:
        code = recipe.main(["--out", str(tmp_path), "--guidance", "0", "--brain-margin", "0", "--augment", "light",
                            "--network", "densenet-1block", "--no-class-balance", "--threads", str(threads)])
        assert recipe.main(["--out", str(tmp_path), "--threads", str(threads)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    options, defaults = calls
    assert options["epochs"] == recipe.DEFAULT_EPOCHS
    assert {k: options[k] for k in ("network", "augment_name", "brain_margin", "guidance", "class_balance")} == {
        "network": "densenet-1block", "augment_name": "light", "brain_margin": 0, "guidance": 0.0, "class_balance": False,
    }
    assert defaults["class_balance"] is recipe.DEFAULT_CLASS_BALANCE is True  # 2.1.0's setting
