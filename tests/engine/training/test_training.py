"""The training loop and recipe skeleton the three recipes share: the kept epoch, seeds, class
weights, calibration, the bundle a run writes, the model-card lines and the command line."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import SalienceError
from engine.models import load_bundle
from engine.training.bundle_writer import BundleSpec
from engine.training.evaluation import nll
from engine.tasks.glioma.preprocess import DEFAULT_PARAMS
from engine.training.model_card import cam_layer_lines, confusion_table, network_summary, reproduce_lines
from engine.tasks.glioma.train import main as glioma_main
from engine.tasks.histopathology.train import main as histopathology_main
from engine.tasks.lung_ultrasound.train import main as lung_ultrasound_main
from engine.training.loop import (
    EpochScore,
    FitSettings,
    RecipeRun,
    calibrate,
    fit_network,
    network_logits,
    seeded_network,
    softmax,
)
from engine.training.cli import PrintProgress, run_training, training_parser
from tests.engine.test_bundle_loading import TINY_NET


class RecordingProgress:
    def __init__(self) -> None:
        self.reports: list[tuple[float, str]] = []

    def report(self, fraction: float, message: str = "") -> None:
        self.reports.append((fraction, message))

    def cancelled(self) -> bool:
        return False


def unchanged(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return x


def separable_items(count: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(count, 1, 4, 4)`` noise items, label 1 where the item's mean is positive."""
    inputs = torch.randn(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    return inputs, (inputs.mean(dim=(1, 2, 3)) > 0).long()


def linear_network(seed: int = 0) -> nn.Module:
    """No batch norm: an item only reaches the weights through its loss."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


def scripted_scores(scores: list[float], states: list[dict]):
    """A validation rule that returns ``scores`` in turn and keeps each epoch's weights."""
    remaining = iter(scores)

    def validate(network: nn.Module) -> EpochScore:
        states.append(copy.deepcopy(network.state_dict()))
        score = next(remaining)
        return EpochScore(score, {"score": score}, f"score {score:.1f}")

    return validate


def test_fit_network_keeps_the_epoch_the_recipe_scores_lowest():
    inputs, labels = separable_items()
    network, states, progress = linear_network(), [], RecordingProgress()
    settings = FitSettings(epochs=3, seed=0, batch_size=8, learning_rate=0.05)
    history, best = fit_network(
        network, inputs, labels, scripted_scores([3.0, 1.0, 2.0], states), settings, augment=unchanged, progress=progress
    )
    assert best == 2
    assert [(h["epoch"], h["score"]) for h in history] == [(1, 3.0), (2, 1.0), (3, 2.0)]
    assert all(torch.equal(value, states[1][key]) for key, value in network.state_dict().items())
    assert not torch.equal(states[1]["1.weight"], states[2]["1.weight"])  # epoch 3 moved on, and was undone
    assert not network.training
    messages = [message for _, message in progress.reports if message]
    assert messages == [f"epoch {h['epoch']}/3: loss {h['train_loss']:.3f}, score {h['score']:.1f}" for h in history]
    fractions = [fraction for fraction, _ in progress.reports]
    assert len(fractions) == 3 * (5 + 1)  # after each of 5 batches and each epoch
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.9)


def test_the_seed_alone_decides_initial_weights_batch_order_and_augmentation():
    inputs, labels = separable_items()

    def jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + 0.1 * torch.randn(x.shape, generator=generator)

    def weights_after(seed: int) -> dict[str, torch.Tensor]:
        network = seeded_network(TINY_NET | {"in_channels": 1}, seed)
        fit_network(
            network, inputs, labels, lambda net: EpochScore(0.0, {}, ""), FitSettings(2, seed, 8, 0.01),
            augment=jitter, progress=RecordingProgress(),
        )
        return network.state_dict()

    first, again, other = weights_after(3), weights_after(3), weights_after(4)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_a_class_weighted_zero_never_reaches_the_weights():
    """With class 1 weighted 0, what class-1 items contain changes nothing; unweighted it does."""
    inputs, labels = separable_items()
    scrambled = inputs.clone()
    scrambled[labels == 1] = torch.randn(int(labels.sum()), 1, 4, 4, generator=torch.Generator().manual_seed(9))

    def weights_after(items: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
        network = linear_network()
        fit_network(
            network, items, labels, lambda net: EpochScore(0.0, {}, ""), FitSettings(2, 0, 40, 0.05),
            augment=unchanged, progress=RecordingProgress(), class_weights=class_weights,
        )
        return network[1].weight.detach()

    only_class_0 = torch.tensor([1.0, 0.0])
    assert torch.equal(weights_after(inputs, only_class_0), weights_after(scrambled, only_class_0))
    assert not torch.equal(weights_after(inputs, None), weights_after(scrambled, None))


def test_a_run_whose_every_epoch_scores_nan_is_refused():
    inputs, labels = separable_items()
    with pytest.raises(SalienceError, match="no epoch of 2 gave a finite validation score"):
        fit_network(
            linear_network(), inputs, labels, lambda net: EpochScore(math.nan, {}, ""), FitSettings(2, 0, 8, 0.05),
            augment=unchanged, progress=RecordingProgress(),
        )


def test_calibrate_recovers_the_temperature_of_over_confident_logits():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(6000, 2)).astype(np.float32)
    labels = (rng.random(6000) < softmax(true_logits)[:, 1]).astype(np.int64)
    network = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        network.weight.copy_(3.0 * torch.eye(2))  # logits three times too confident
    items = torch.from_numpy(true_logits)
    calibration = calibrate(network, items[:4000], labels[:4000], items[4000:])
    assert calibration.temperature == pytest.approx(3.0, rel=0.15)
    assert np.allclose(calibration.test_probabilities(calibrated=False), softmax(3 * true_logits[4000:]), atol=1e-6)
    assert np.allclose(calibration.test_probabilities(), softmax(true_logits[4000:]), atol=0.05)
    calibrated, uncalibrated = calibration.test_ece(labels[4000:])
    assert calibrated < 0.5 * uncalibrated


SPEC = BundleSpec(
    name="glioma",
    description="Synthetic slices: is the mean intensity positive?",
    class_names=("no FLAIR abnormality", "FLAIR abnormality"),
    input_channels=("t1", "flair", "t1ce"),
    input_size=(16, 16),
    item_axis="slice",
    target_layer="class_layers.relu",
    preprocessing_function="engine.tasks.glioma.preprocess.glioma_slices",
    calibration_data="validation slices",
    data_license="synthetic",
    data_source="torch.randn",
    output_notes={"verdict": "per slice"},
)


def synthetic_run(out: Path) -> tuple[RecipeRun, dict, dict]:
    items = torch.randn(48, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = (items.mean(dim=(1, 2, 3)) > 0).long()
    run = RecipeRun(SPEC, TINY_NET, FitSettings(2, 5, 8, 0.01), split_seed=4)
    with pytest.raises(RuntimeError, match="train the network first"):
        run.calibrate(items[:8], labels[:8].numpy(), items[:8])
    run.data_read()

    def validate(network: nn.Module) -> EpochScore:
        score = nll(network_logits(network, items[32:40]), labels[32:40].numpy())
        return EpochScore(score, {"val_nll": score}, f"val NLL {score:.3f}")

    run.train(items[:32], labels[:32], validate, augment=unchanged)
    with pytest.raises(RuntimeError, match="calibrate the network"):
        run.metadata(DEFAULT_PARAMS, {})
    calibration = run.calibrate(items[32:40], labels[32:40].numpy(), items[40:])
    metadata = run.metadata(dict(DEFAULT_PARAMS), {"torch_threads": 1}, split={"test": ["synthetic"]})
    metrics = {"test_n": len(calibration.test_logits), **run.fit_figures(), **run.clock.phases()}
    run.save(out, metadata, metrics, lambda m: f"# card\n\nT = {m['temperature']:.3f}, {m['seconds_total']:.3f} s\n")
    return run, metadata, metrics


def test_a_recipe_run_writes_a_bundle_that_loads_with_its_metadata_metrics_and_card(tmp_path: Path):
    run, metadata, metrics = synthetic_run(tmp_path / "a")
    temperature = run.calibration.temperature
    assert list(metadata) == [
        "name", "version", "task", "description", "class_names", "input_channels", "input_size", "item_axis",
        "target_layer", "preprocessing", "calibration", "verdict", "data_license", "data_source", "intended_use",
        "monai_version", "pytorch_version", "training", "split", "target_layer_grid",
    ]
    assert metadata["calibration"] == {"temperature": round(temperature, 6), "calibrated": True, "fitted_on": "validation slices"}
    assert metadata["training"] == {
        "seed": 5, "split_seed": 4, "epochs": 2, "best_epoch": run.best_epoch, "batch_size": 8, "learning_rate": 0.01,
        "torch_threads": 1,
    }
    assert metadata["target_layer_grid"] == [4, 4]  # stem stride 2, max-pool stride 2, one block
    bundle = load_bundle(tmp_path / "a")
    assert bundle.temperature == pytest.approx(temperature, rel=1e-5) and bundle.metadata["verdict"] == "per slice"
    assert metrics["bundle"] == str(tmp_path / "a")
    written = json.loads((tmp_path / "a" / "docs" / "training_metrics.json").read_text())
    assert written["test_n"] == 8 and written["best_epoch"] in (1, 2) and len(written["history"]) == 2
    assert written["parameters"] == sum(p.numel() for p in bundle.network.parameters())
    assert written["seconds_total"] >= written["seconds_training"] >= 0 and "bundle" not in written
    assert bundle.model_card.read_text() == f"# card\n\nT = {temperature:.3f}, {written['seconds_total']:.3f} s\n"
    again, _, _ = synthetic_run(tmp_path / "b")
    assert load_bundle(tmp_path / "b").weights_sha256 == bundle.weights_sha256
    assert again.history == run.history


def test_model_card_lines_quote_the_figures_they_are_given():
    metadata = {"target_layer": "class_layers.relu", "target_layer_grid": [16, 16], "input_size": [128, 128]}
    assert cam_layer_lines(metadata, "input", more=" Maps are put back") == [
        "- CAM target layer: `class_layers.relu`, the last activation before global pooling:",
        "  16 x 16 cells for a 128 x 128 input (8 x 8 pixels per cell). Maps are put back",
    ]
    assert confusion_table(["a", "b"], [[3, 1], [0, 2]]) == [
        "| true \\ predicted | a | b |", "| --- | --- | --- |", "| a | 3 | 1 |", "| b | 0 | 2 |",
    ]
    assert network_summary({"_target_": "monai.networks.nets.DenseNet", "block_config": [4, 6]}, 43011) == (
        "`monai.networks.nets.DenseNet(block_config=[4, 6])`, 43,011 parameters"
    )
    training = {"epochs": 20, "seed": 0, "split_seed": 1, "torch_threads": 1}
    assert reproduce_lines("glioma", "--out x", training, ".")[1] == "  --epochs 20 --seed 0 --split-seed 1 --threads 1`."


def test_print_progress_prints_each_new_message_once(capsys):
    progress = PrintProgress()
    for fraction, message in [(0.0, "reading"), (0.2, ""), (0.3, "reading"), (0.45, "epoch 1/2: loss 0.650")]:
        progress.report(fraction, message)
    assert capsys.readouterr().err == "[  0%] reading\n[ 45%] epoch 1/2: loss 0.650\n"
    assert progress.cancelled() is False


def test_run_training_passes_the_common_options_and_prints_the_summary(tmp_path: Path, capsys):
    threads = torch.get_num_threads()
    parser = training_parser("glioma", "Train it.", tmp_path / "glioma-lgg", "patient split")
    args = parser.parse_args(["--epochs", "3", "--split-seed", "7", "--threads", str(threads)])
    assert (args.data, args.out, args.seed) == (tmp_path / "glioma-lgg", Path("glioma-bundle"), 0)
    calls = []

    def recipe(data_dir, out_dir, **options):
        calls.append((data_dir, out_dir, options))
        return {"bundle": str(out_dir), "n": 12}

    try:
        code = run_training(args, recipe, lambda m: f"wrote {m['bundle']} ({m['n']} items)", per_class=5)
    finally:
        torch.set_num_threads(threads)
    assert code == 0 and capsys.readouterr().out == "wrote glioma-bundle (12 items)\n"
    (data_dir, out_dir, options), = calls
    assert isinstance(options.pop("progress"), PrintProgress)
    assert (data_dir, out_dir, options) == (
        tmp_path / "glioma-lgg", Path("glioma-bundle"), {"epochs": 3, "seed": 0, "split_seed": 7, "per_class": 5}
    )


@pytest.mark.parametrize(
    "main, reason",
    [
        (glioma_main, "glioma data folder not found"),
        (histopathology_main, "histopathology data folder not found"),
        (lung_ultrasound_main, "no pocus_videos folder (expected the lung-ultrasound data set)"),
    ],
)
def test_each_recipe_reports_a_missing_data_folder_in_one_line(main, reason, tmp_path: Path, capsys):
    threads = torch.get_num_threads()
    try:
        code = main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--threads", str(threads)])
    finally:
        torch.set_num_threads(threads)
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: {reason}"
