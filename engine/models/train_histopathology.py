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

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import SalienceError
from engine.models.bundle import load_bundle
from engine.models.bundle_writer import write_bundle
from engine.models.evaluation import expected_calibration_error, fit_temperature, nll, roc_auc
from engine.models.histopathology_data import (
    CLASS_FOLDERS,
    CLASS_NAMES,
    COPY_THRESHOLD,
    group_near_copies,
    list_lc25000,
    load_inputs,
    read_rgb,
    split_by_group,
)
from engine.models.histopathology_model_card import model_card
from engine.models.histopathology_preprocess import DEFAULT_PARAMS, RGB_CHANNELS
from engine.models.inference import batches, predict_items
from engine.models.network_config import build_network
from engine.models.train_glioma import _PrintProgress, layer_grid
from engine.progress import NullProgress, Progress, check_cancelled

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
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "histopathology-lc25000"
BUNDLE_VERSION = "1.0.0"
TRAINING_METRICS_FILE = "docs/training_metrics.json"
DATA_LICENSE = (
    "LC25000 lung and colon histopathological image dataset (Borkowski et al. 2019, arXiv:1912.12142), "
    "released by its authors for research use; lung patches only"
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
        JSON-ready dict; ``confusion[i][j]`` counts patches of true class i predicted as j.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(probabilities).argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for c, name in enumerate(class_names):
        n_c = int(confusion[c].sum())
        per_class[name] = {
            "n": n_c,
            "correct": int(confusion[c, c]),
            "sensitivity": confusion[c, c] / n_c if n_c else math.nan,
            "auc": roc_auc(labels == c, probabilities[:, c]),
        }
    aucs = [v["auc"] for v in per_class.values()]
    return {
        "n": int(len(labels)),
        "accuracy": float((predicted == labels).mean()) if len(labels) else math.nan,
        "macro_auc": float(np.mean(aucs)) if not any(math.isnan(a) for a in aucs) else math.nan,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits) / temperature, 1).numpy()


def _evaluate(network: torch.nn.Module, inputs: torch.Tensor) -> np.ndarray:
    network.eval()
    logits, _ = predict_items(network, inputs, batch_size=64)
    return logits


def fit_network(
    network: torch.nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    seed: int,
    batch_size: int,
    learning_rate: float,
    progress: Progress,
) -> tuple[list[dict], int]:
    """AdamW with a one-cycle schedule; keep the epoch with the lowest validation NLL.

    Returns:
        ``(history, best_epoch)``; ``network`` holds the best epoch's weights, in eval mode.
    """
    inputs, labels = train
    optimiser = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps = epochs * len(batches(len(labels), batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=learning_rate, total_steps=steps, pct_start=0.2)
    generator = torch.Generator().manual_seed(seed)
    history, best = [], (math.inf, -1, None)
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for chunk in batches(len(order), batch_size):
            check_cancelled(progress)
            index = order[chunk.start : chunk.stop]
            loss = F.cross_entropy(network(augment(inputs[index], generator)), labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        val_logits = _evaluate(network, val[0])
        val_nll = nll(val_logits, val[1].numpy())
        val_accuracy = float((val_logits.argmax(1) == val[1].numpy()).mean())
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), "val_nll": val_nll, "val_accuracy": val_accuracy})
        progress.report(0.9 * (epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.3f}, "
                        f"val NLL {val_nll:.3f}, val accuracy {val_accuracy:.3f}")
        if val_nll < best[0]:
            best = (val_nll, epoch + 1, copy.deepcopy(network.state_dict()))
    network.load_state_dict(best[2])
    network.eval()
    return history, best[1]


def _metadata(params: dict, temperature: float, training: dict, grouping: dict) -> dict[str, Any]:
    return {
        "name": "histopathology",
        "version": BUNDLE_VERSION,
        "task": "histopathology",
        "description": "Per H&E lung patch (or whole-slide tile): adenocarcinoma, squamous cell carcinoma or "
        "benign lung tissue (LC25000).",
        "class_names": list(CLASS_NAMES),
        "input_channels": list(RGB_CHANNELS),
        "input_size": list(INPUT_SIZE),
        "item_axis": "patch",
        "target_layer": TARGET_LAYER,
        "preprocessing": {"function": "engine.models.histopathology_preprocess.prepare", **params},
        # A quarter of tissue is enough: benign lung is airy, and alveoli look like glass.
        "slide": {"tile_size": PATCH_SIZE, "tile_mpp": ASSUMED_PATCH_MPP, "tile_mpp_assumed": True,
                  "min_tissue_fraction": 0.25, "slide_score": "mean tile probability"},
        "calibration": {"temperature": round(temperature, 6), "calibrated": True, "fitted_on": "validation groups"},
        "data_license": DATA_LICENSE,
        "data_source": "LC25000 lung patches (lung_aca, lung_scc, lung_n), 600 per class, 224 x 224 JPEG",
        "intended_use": "Research and demonstration, not for clinical decisions.",
        "monai_version": __import__("monai").__version__,
        "pytorch_version": torch.__version__,
        "training": training,
        "grouping": grouping,
    }


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
    started, cpu_started = time.perf_counter(), time.process_time()
    progress = progress or NullProgress()
    network_def = copy.deepcopy(network_def or NETWORK_DEF)
    patches = list_lc25000(data_dir)
    keep = np.concatenate([np.flatnonzero(patches.labels == k)[:per_class] for k in range(len(CLASS_NAMES))])
    paths, labels = [patches.paths[i] for i in keep], patches.labels[keep]
    progress.report(0.0, f"reading {len(paths)} patches")
    rgb = [read_rgb(p) for p in paths]
    progress.report(0.01, "grouping near copies")
    groups = group_near_copies(rgb, labels)
    split = split_by_group(groups, labels, seed=split_seed)
    params = dict(DEFAULT_PARAMS)
    inputs = load_inputs(rgb, INPUT_SIZE, params)
    targets = torch.from_numpy(labels)
    parts = {name: (inputs[index], targets[index]) for name, index in zip(("train", "val", "test"), (split.train, split.val, split.test))}
    loaded, cpu_loaded = time.perf_counter(), time.process_time()

    torch.manual_seed(seed)
    network = build_network(network_def, "training")
    history, best_epoch = fit_network(
        network, parts["train"], parts["val"], epochs=epochs, seed=seed, batch_size=batch_size,
        learning_rate=learning_rate, progress=progress,
    )
    trained, cpu_trained = time.perf_counter(), time.process_time()

    val_logits = _evaluate(network, parts["val"][0])
    temperature = fit_temperature(val_logits, parts["val"][1].numpy())
    test_logits = _evaluate(network, parts["test"][0])
    test_labels = parts["test"][1].numpy()
    test_probs = _softmax(test_logits, temperature)
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
    part_sizes = {name: int(len(index)) for name, index in zip(("train", "val", "test"), (split.train, split.val, split.test))}
    part_groups = {name: int(len(np.unique(groups[index]))) for name, index in zip(("train", "val", "test"), (split.train, split.val, split.test))}
    training = {"seed": seed, "split_seed": split_seed, "epochs": epochs, "best_epoch": best_epoch, "batch_size": batch_size,
                "learning_rate": learning_rate, "torch_threads": torch.get_num_threads(), "per_class": per_class}
    metadata = _metadata(params, temperature, training, grouping)
    metadata["target_layer_grid"] = layer_grid(network, TARGET_LAYER, INPUT_SIZE, 3)
    metadata["split"] = {"test": [paths[i].name for i in split.test]}
    metrics = {
        "test": multiclass_metrics(test_labels, test_probs, CLASS_NAMES),
        "test_ece": expected_calibration_error(test_probs, test_labels),
        "test_ece_uncalibrated": expected_calibration_error(_softmax(test_logits), test_labels),
        "val": multiclass_metrics(parts["val"][1].numpy(), _softmax(val_logits, temperature), CLASS_NAMES),
        "temperature": temperature,
        "best_epoch": best_epoch,
        "parameters": sum(p.numel() for p in network.parameters()),
        "history": history,
        "grouping": grouping,
        "patches": part_sizes,
        "groups": part_groups,
        "seconds_loading": loaded - started,
        "seconds_training": trained - loaded,
        "cpu_seconds_training": cpu_trained - cpu_loaded,
        "class_folders": CLASS_FOLDERS,
    }
    metadata["eval_metrics"] = {"test": {k: metrics["test"][k] for k in ("n", "accuracy", "macro_auc")}, "test_ece": metrics["test_ece"]}
    metrics["seconds_total"] = time.perf_counter() - started
    metrics["cpu_seconds_total"] = time.process_time() - cpu_started
    out = write_bundle(out_dir, metadata, network_def, network.state_dict(), model_card(metadata, metrics, network_def))
    load_bundle(out)  # the written bundle must load and pass its checksum
    (Path(out) / TRAINING_METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    metrics["bundle"] = str(out)
    progress.report(1.0, f"wrote {out}")
    return metrics


def main(argv: list[str]) -> int:
    """``salience train histopathology``: train and write the bundle; returns the exit code."""
    parser = argparse.ArgumentParser(prog="salience train histopathology", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="histopathology-lc25000 folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("histopathology-bundle"), help="bundle folder to write")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="initial weights, batch order, augmentation")
    parser.add_argument("--split-seed", type=int, default=0, help="split of near-copy groups (keep it fixed to compare runs)")
    parser.add_argument("--per-class", type=int, default=None, help="use only this many patches per class (quick checks)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads; the shipped weights used 1 (results differ in the last bits with another count)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        metrics = train_histopathology(
            args.data, args.out, epochs=args.epochs, seed=args.seed, split_seed=args.split_seed,
            progress=_PrintProgress(), per_class=args.per_class,
        )
    except SalienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    test = metrics["test"]
    print(
        f"wrote {metrics['bundle']}: test accuracy {test['accuracy']:.3f}, macro AUC {test['macro_auc']:.3f} "
        f"({test['n']} patches in {metrics['groups']['test']} groups); trained in {metrics['seconds_training'] / 60:.1f} min"
    )
    return 0
