"""Train the shipped histopathology bundle: lung adenocarcinoma, squamous cell carcinoma or benign.

Input: an H&E patch (LC25000 lung, 224 x 224) resized to 128 x 128 RGB with a fixed
normalisation (``histopathology_preprocess``). Near copies (patches augmented from one original)
are grouped and the split is by group (``histopathology_data``). The network is a compact MONAI
DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017) trained from
scratch with the 8 rotations/flips of a square as augmentation; the validation groups pick the
epoch and fit a softmax temperature.

Reproduce the shipped weights (same library versions) with::

    salience train histopathology --out engine/bundles/histopathology --threads 1
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.models.bundle import WEIGHTS_FILE, file_sha256
from engine.training.bundle_writer import BundleSpec
from engine.training.evaluate import write_report
from engine.training.evaluation import nll, per_class_metrics
from engine.tasks.histopathology.data import CLASS_FOLDERS, CLASS_NAMES, COPY_THRESHOLD, load_inputs, read_and_split
from engine.tasks.histopathology.evaluation import patch_report
from engine.tasks.histopathology.model_card import model_card
from engine.tasks.histopathology.preprocess import DEFAULT_PARAMS, RGB_CHANNELS
from engine.training.loop import EpochScore, FitSettings, RecipeRun, network_logits
from engine.training.cli import SHARED_DATA, run_training, training_parser
from engine.progress import Progress

#: Three dense blocks: the last feature map is 8 x 8 for a 128 x 128 patch (16 pixels per cell),
#: fine enough for a patch heatmap, each cell seeing enough context to judge gland and nest shape.
NETWORK_DEF: dict[str, Any] = {
    "_target_": "monai.networks.nets.DenseNet",
    "spatial_dims": 2,
    "in_channels": 3,
    "out_channels": 3,
    "init_features": 16,
    "growth_rate": 12,
    "block_config": [4, 6, 8],
    "bn_size": 2,
}
TARGET_LAYER = "class_layers.relu"
INPUT_SIZE = (128, 128)
#: LC25000 states no pixel size. Assumed: the 224-px patches are at about 0.5 um/px (20x), the
#: usual whole-slide scanning resolution; slide tiles of 224 px are read at that magnification.
PATCH_SIZE = 224
ASSUMED_PATCH_MPP = 0.5
DEFAULT_DATA = SHARED_DATA / "histopathology-lc25000"
DATA_LICENSE = (
    "LC25000 lung and colon histopathological image dataset (Borkowski et al. 2019, arXiv:1912.12142), "
    "released by its authors for research use; lung patches only"
)
SPEC = BundleSpec(
    name="histopathology",
    description="Per H&E lung patch (or whole-slide tile): adenocarcinoma, squamous cell carcinoma or "
    "benign lung tissue (LC25000).",
    class_names=tuple(CLASS_NAMES),
    input_channels=tuple(RGB_CHANNELS),
    input_size=INPUT_SIZE,
    item_axis="patch",
    target_layer=TARGET_LAYER,
    preprocessing_function="engine.tasks.histopathology.preprocess.prepare",
    calibration_data="validation groups",
    data_license=DATA_LICENSE,
    data_source="LC25000 lung patches (lung_aca, lung_scc, lung_n), 600 per class, 224 x 224 JPEG",
    # A quarter of tissue is enough: benign lung is airy, and alveoli look like glass.
    input_notes={"slide": {"tile_size": PATCH_SIZE, "tile_mpp": ASSUMED_PATCH_MPP, "tile_mpp_assumed": True,
                           "min_tissue_fraction": 0.25, "slide_score": "mean tile probability"}},
)


def dihedral(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Apply one of the 8 rotations/flips of a square to each item (``which`` in 0..7)."""
    out = x.clone()
    for k in range(8):
        chosen = which == k
        if chosen.any():
            item = torch.rot90(x[chosen], k % 4, dims=(2, 3))
            out[chosen] = item.flip(3) if k >= 4 else item
    return out


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random rotation/flip of each patch and a small stain jitter (per-channel shift +-0.1 SD)."""
    which = torch.randint(0, 8, (x.shape[0],), generator=generator)
    shift = (torch.rand(x.shape[0], 3, 1, 1, generator=generator) - 0.5) * 0.2
    return dihedral(x, which) + shift


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, per-class sensitivity and one-vs-rest AUC, macro AUC and the confusion matrix.

    Returns:
        JSON-ready dict; ``confusion[i][j]`` counts patches of true class i predicted as j;
        ``macro_auc`` is NaN when a class's AUC is.
    """
    labels = np.asarray(labels, dtype=np.int64)
    confusion, per_class = per_class_metrics(labels, probabilities, class_names)
    aucs = [v["auc"] for v in per_class.values()]
    return {
        "n": int(len(labels)),
        "accuracy": float(np.trace(confusion) / len(labels)) if len(labels) else math.nan,
        "macro_auc": float(np.mean(aucs)) if not any(math.isnan(a) for a in aucs) else math.nan,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def epoch_score(network: nn.Module, inputs: torch.Tensor, labels: np.ndarray) -> EpochScore:
    """An epoch is judged by its validation NLL (lower is better); the accuracy is recorded beside it."""
    logits = network_logits(network, inputs)
    val_nll = nll(logits, labels)
    val_accuracy = float((logits.argmax(1) == labels).mean())
    return EpochScore(
        val_nll, {"val_nll": val_nll, "val_accuracy": val_accuracy}, f"val NLL {val_nll:.3f}, val accuracy {val_accuracy:.3f}"
    )


def train_histopathology(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = 20,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    network_def: dict[str, Any] | None = None,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    per_class: int | None = None,
) -> dict[str, Any]:
    """Group, split, train, calibrate, evaluate and write the histopathology bundle.

    Args:
        data_dir: the ``histopathology-lc25000`` folder (``lung_aca``, ``lung_scc``, ``lung_n``).
        out_dir: the bundle folder to write (created; files overwritten).
        epochs: passes over the training patches.
        seed: seeds the initial weights, batch order and augmentation.
        split_seed: seeds the split of near-copy groups (kept apart from ``seed``).
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        network_def: a ``monai.networks.nets`` config; ``NETWORK_DEF`` by default.
        batch_size: patches per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule (AdamW).
        per_class: use only the first this many patches of each class (quick checks).

    Returns:
        Metrics: test and validation metrics, temperature, chosen epoch, history, grouping,
        timings (wall and CPU), split sizes, and the bundle path.

    Raises:
        SalienceError: the data folder is missing or unreadable, or a class has too few groups.
    """
    run = RecipeRun(SPEC, network_def or NETWORK_DEF, FitSettings(epochs, seed, batch_size, learning_rate), split_seed, progress)
    grouped = read_and_split(data_dir, per_class, split_seed, run.progress)
    paths, labels, rgb, groups, split = grouped.paths, grouped.labels, grouped.rgb, grouped.groups, grouped.split
    parts = {"train": split.train, "val": split.val, "test": split.test}
    params = dict(DEFAULT_PARAMS)
    inputs = load_inputs(rgb, INPUT_SIZE, params)
    run.data_read()

    val_labels, test_labels = labels[split.val], labels[split.test]
    run.train(
        inputs[split.train], torch.from_numpy(labels[split.train]), lambda net: epoch_score(net, inputs[split.val], val_labels),
        augment=augment,
    )
    calibration = run.calibrate(inputs[split.val], val_labels, inputs[split.test])
    test_ece, test_ece_uncalibrated = calibration.test_ece(test_labels)
    sizes = np.bincount(groups)
    grouping = {
        "method": "polar-signature circular correlation over rotations, mirror images and zooms",
        "threshold": COPY_THRESHOLD,
        "patches": int(len(groups)),
        "groups": int(len(sizes)),
        "groups_per_class": {CLASS_NAMES[k]: int(len(np.unique(groups[labels == k]))) for k in range(len(CLASS_NAMES))},
        "largest_group": int(sizes.max()),
        "singletons": int((sizes == 1).sum()),
        "split_seed": split_seed,
    }
    metadata = run.metadata(params, {"torch_threads": torch.get_num_threads(), "per_class": per_class}, grouping=grouping)
    metadata["split"] = {"test": [paths[i].name for i in split.test]}
    metrics = {
        "test": multiclass_metrics(test_labels, calibration.test_probabilities(), CLASS_NAMES),
        "test_ece": test_ece,
        "test_ece_uncalibrated": test_ece_uncalibrated,
        "val": multiclass_metrics(val_labels, calibration.val_probabilities(), CLASS_NAMES),
        **run.fit_figures(),
        "grouping": grouping,
        "patches": {name: int(len(index)) for name, index in parts.items()},
        "groups": {name: int(len(np.unique(groups[index]))) for name, index in parts.items()},
        **run.clock.phases(),
        "class_folders": CLASS_FOLDERS,
    }
    metadata["eval_metrics"] = {"test": {k: metrics["test"][k] for k in ("n", "accuracy", "macro_auc")}, "test_ece": metrics["test_ece"]}
    report = {
        "written_by": "`salience train histopathology` (`salience evaluate histopathology` adds the slide check)",
        "part": "test",
        **patch_report(test_labels, calibration.test_logits, groups[split.test], calibration.temperature),
        "split": {"patches": metrics["patches"], "groups": metrics["groups"]},
        "slides": None,
    }
    out = run.save(out_dir, metadata, metrics, lambda m: model_card(metadata, run.network_def, report, m))
    write_report(out, {**report, "weights_sha256": file_sha256(out / WEIGHTS_FILE)})
    return metrics


def main(argv: list[str]) -> int:
    """``salience train histopathology``: train and write the bundle; returns the exit code."""
    parser = training_parser("histopathology", __doc__.splitlines()[0], DEFAULT_DATA, "split of near-copy groups")
    parser.add_argument("--per-class", type=int, default=None, help="use only this many patches per class (quick checks)")
    args = parser.parse_args(argv)
    return run_training(args, train_histopathology, _summary, per_class=args.per_class)


def _summary(metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    return (
        f"wrote {metrics['bundle']}: test accuracy {test['accuracy']:.3f}, macro AUC {test['macro_auc']:.3f} "
        f"({test['n']} patches in {metrics['groups']['test']} groups); trained in {metrics['seconds_training'] / 60:.1f} min"
    )
