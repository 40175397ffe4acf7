"""Train the shipped lung-ultrasound bundle: COVID-19, bacterial pneumonia or healthy, per frame.

Input per frame: the clip's scan region, grey, padded to a square and resized to 128 x 128
(``lung_ultrasound_preprocess``, the same preprocessing ``Bundle.preprocess`` runs). Up to 24
evenly spaced frames per clip (and the licensed still frames of training groups) are learned
from; groups of clips (one patient, one recording set) are split, stratified by class, into
train, validation and test parts, never frames. The network is a compact MONAI DenseNet (Huang
et al., "Densely Connected Convolutional Networks", CVPR 2017) with two dense blocks, whose last
feature map is 16 x 16 for a 128 x 128 frame. Validation frames pick the epoch and fit a softmax
temperature; the clip verdict is the mean of its frames' calibrated probabilities.

Reproduce the shipped weights (same library versions) with::

    salience train lung-ultrasound --out engine/bundles/lung-ultrasound --threads 1
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
from engine.models.evaluation import expected_calibration_error, fit_temperature, nll
from engine.models.inference import batches, predict_items
from engine.models.lung_ultrasound_data import CLASS_NAMES, FrameSet, Item, list_items, load_frames, split_items
from engine.models.lung_ultrasound_metrics import clip_verdicts, multiclass_metrics
from engine.models.lung_ultrasound_model_card import model_card
from engine.models.lung_ultrasound_preprocess import DEFAULT_PARAMS, GREY_CHANNEL
from engine.models.network_config import build_network
from engine.models.train_glioma import _PrintProgress, layer_grid
from engine.progress import NullProgress, Progress, check_cancelled

#: Two dense blocks: the stem and one transition take 128 x 128 to a 16 x 16 map (8 pixels per
#: cell), fine enough for Grad-CAM to tell the pleural line from the B-lines below it.
NETWORK_DEF: dict[str, Any] = {
    "_target_": "monai.networks.nets.DenseNet",
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": len(CLASS_NAMES),
    "init_features": 16,
    "growth_rate": 12,
    "block_config": [4, 6],
    "bn_size": 2,
}
TARGET_LAYER = "class_layers.relu"
INPUT_SIZE = (128, 128)
FRAMES_PER_CLIP = 24
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "lung-ultrasound"
BUNDLE_VERSION = "1.0.0"
TRAINING_METRICS_FILE = "docs/training_metrics.json"
DATA_LICENSE = (
    "POCOVID-Net lung ultrasound collection (Born et al. 2021); licence per file as in "
    "dataset_metadata.csv: CC BY 4.0, CC BY 2.0, CC BY-NC 4.0, CC BY-NC-SA 3.0/4.0 and a COVID-19 "
    "emergency licence; non-commercial terms apply to part of the data"
)
#: Largest shift (pixels of the 128 x 128 input) of the translation augmentation.
MAX_SHIFT = 8


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random left-right flip, gain (+-20%), gamma (x ** e^u, u in +-0.25) and a shift of up to
    ``MAX_SHIFT`` pixels with zero fill; the black surround stays black as at inference."""
    b = x.shape[0]
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    gain = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.4
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.5)
    x = x.clamp(min=0.0).pow(gamma) * gain
    padded = F.pad(x, (MAX_SHIFT,) * 4)
    shifts = torch.randint(0, 2 * MAX_SHIFT + 1, (b, 2), generator=generator)
    h, w = x.shape[2:]
    return torch.stack([padded[i, :, r : r + h, c : c + w] for i, (r, c) in enumerate(shifts.tolist())])


def _class_weights(labels: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=len(CLASS_NAMES)).float()
    return counts.sum() / (len(CLASS_NAMES) * counts.clamp(min=1))


def _logits(network: torch.nn.Module, frames: FrameSet) -> np.ndarray:
    network.eval()
    logits, _ = predict_items(network, frames.inputs, batch_size=64)
    return logits


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits) / temperature, 1).numpy()


def fit_network(
    network: torch.nn.Module,
    train: FrameSet,
    val: FrameSet,
    *,
    epochs: int,
    seed: int,
    batch_size: int,
    learning_rate: float,
    progress: Progress,
) -> tuple[list[dict], int]:
    """AdamW, one-cycle schedule, class-weighted cross-entropy; keep the epoch with the lowest
    validation NLL after temperature scaling.

    The calibrated NLL judges how well an epoch ranks and separates the classes, not how
    over-confident it is (the temperature fitted afterwards removes that); raw NLL on ~20
    validation clips kept the second epoch of a run that went on to separate the classes better.

    Returns:
        ``(history, best_epoch)``; ``network`` holds the best epoch's weights, in eval mode.
    """
    optimiser = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps = epochs * len(batches(len(train.labels), batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=learning_rate, total_steps=steps, pct_start=0.2)
    generator = torch.Generator().manual_seed(seed)
    weights = _class_weights(train.labels)
    history, best = [], (math.inf, -1, None)
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(len(train.labels), generator=generator)
        total = 0.0
        for chunk in batches(len(order), batch_size):
            check_cancelled(progress)
            index = order[chunk.start : chunk.stop]
            loss = F.cross_entropy(network(augment(train.inputs[index], generator)), train.labels[index], weight=weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        val_logits = _logits(network, val)
        labels = val.labels.numpy()
        val_nll = nll(val_logits, labels)
        calibrated_nll = nll(val_logits, labels, fit_temperature(val_logits, labels))
        val_accuracy = float((val_logits.argmax(1) == labels).mean())
        history.append({
            "epoch": epoch + 1, "train_loss": total / len(order), "val_nll": val_nll,
            "val_nll_calibrated": calibrated_nll, "val_accuracy": val_accuracy,
        })
        progress.report(
            0.9 * (epoch + 1) / epochs,
            f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.3f}, val NLL {val_nll:.3f} "
            f"(calibrated {calibrated_nll:.3f}), val frame accuracy {val_accuracy:.3f}",
        )
        if calibrated_nll < best[0]:
            best = (calibrated_nll, epoch + 1, copy.deepcopy(network.state_dict()))
    network.load_state_dict(best[2])
    network.eval()
    return history, best[1]


def _test_clips(items: tuple[Item, ...], verdicts: np.ndarray, frames: np.ndarray) -> list[dict]:
    return [
        {
            "path": item.path,
            "class": CLASS_NAMES[item.label],
            "frames": int(n),
            "verdict": [round(float(p), 6) for p in verdict],
            "predicted": CLASS_NAMES[int(np.argmax(verdict))],
        }
        for item, verdict, n in zip(items, verdicts, frames)
    ]


def _metadata(params: dict, temperature: float, training: dict, split: dict[str, tuple[Item, ...]]) -> dict[str, Any]:
    return {
        "name": "lung-ultrasound",
        "version": BUNDLE_VERSION,
        "task": "lung-ultrasound",
        "description": "Per frame of a lung ultrasound clip or still: COVID-19, bacterial pneumonia or healthy; "
        "the clip verdict is the mean of the frame probabilities.",
        "class_names": list(CLASS_NAMES),
        "input_channels": [GREY_CHANNEL],
        "input_size": list(INPUT_SIZE),
        "item_axis": "frame",
        "target_layer": TARGET_LAYER,
        "preprocessing": {"function": "engine.models.lung_ultrasound_preprocess.prepare_frames", **params},
        "calibration": {"temperature": round(temperature, 6), "calibrated": True, "fitted_on": "validation frames"},
        "clip_verdict": "mean of calibrated frame probabilities over every frame",
        "data_license": DATA_LICENSE,
        "data_source": "POCOVID-Net lung ultrasound collection (github.com/jannisborn/covid19_ultrasound), "
        "as in ../shared/data/lung-ultrasound",
        "intended_use": "Research and demonstration, not for clinical decisions.",
        "monai_version": __import__("monai").__version__,
        "pytorch_version": torch.__version__,
        "training": training,
        "split": {part: [item.path for item in items] for part, items in split.items()},
    }


def train_lung_ultrasound(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = 20,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    frames_per_clip: int = FRAMES_PER_CLIP,
    network_def: dict[str, Any] | None = None,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    limit_items: int | None = None,
) -> dict[str, Any]:
    """Train, calibrate, evaluate and write the lung-ultrasound bundle to ``out_dir``.

    Args:
        data_dir: the ``lung-ultrasound`` folder (``pocus_videos``, ``pocus_images``, metadata).
        out_dir: the bundle folder to write (created; files overwritten).
        epochs: passes over the training frames.
        seed: seeds the initial weights, batch order and augmentation.
        split_seed: seeds the group split (kept apart from ``seed``).
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        fractions: shares of each class's clips for train, validation and test.
        frames_per_clip: evenly spaced frames per clip for training and validation (test clips
            use every frame, as the clip verdict does).
        network_def: a ``monai.networks.nets`` config; ``NETWORK_DEF`` by default.
        batch_size: frames per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule (AdamW).
        limit_items: keep only this many items of each part (smallest files first), for smoke tests.

    Returns:
        Metrics: test frame and clip metrics, per-clip verdicts, validation metrics, temperature,
        chosen epoch, history, timings (wall and CPU), the split and the bundle path.

    Raises:
        SalienceError: the data folder is missing or unreadable, or the split leaves a class out.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    progress = progress or NullProgress()
    network_def = copy.deepcopy(network_def or NETWORK_DEF)
    data_dir = Path(data_dir)
    items, excluded = list_items(data_dir)
    split = split_items(items, fractions, split_seed)
    if limit_items is not None:
        split = {part: _smallest(data_dir, chosen, limit_items) for part, chosen in split.items()}
    params = dict(DEFAULT_PARAMS)
    progress.report(0.0, "reading clips")
    train_items = tuple(item for item in split["train"])
    val_items = tuple(item for item in split["val"] if item.is_clip)
    test_items = tuple(item for item in split["test"] if item.is_clip)
    train = load_frames(data_dir, train_items, INPUT_SIZE, params, frames_per_clip)
    val = load_frames(data_dir, val_items, INPUT_SIZE, params, frames_per_clip)
    test = load_frames(data_dir, test_items, INPUT_SIZE, params, None)
    loaded, cpu_loaded = time.perf_counter(), time.process_time()

    torch.manual_seed(seed)
    network = build_network(network_def, "training")
    history, best_epoch = fit_network(
        network, train, val, epochs=epochs, seed=seed, batch_size=batch_size, learning_rate=learning_rate, progress=progress
    )
    trained, cpu_trained = time.perf_counter(), time.process_time()

    val_logits = _logits(network, val)
    temperature = fit_temperature(val_logits, val.labels.numpy())
    test_logits = _logits(network, test)
    test_probs = _softmax(test_logits, temperature)
    owners = test.owners.numpy()
    verdicts = clip_verdicts(test_probs, owners, len(test_items))
    clip_labels = np.array([item.label for item in test_items])
    val_verdicts = clip_verdicts(_softmax(val_logits, temperature), val.owners.numpy(), len(val_items))
    training = {
        "seed": seed, "split_seed": split_seed, "epochs": epochs, "best_epoch": best_epoch, "batch_size": batch_size,
        "learning_rate": learning_rate, "frames_per_clip": frames_per_clip, "fractions": list(fractions),
        "torch_threads": torch.get_num_threads(),
    }
    used = {"train": train_items, "val": val_items, "test": test_items}  # stills of val/test groups go unused
    metadata = _metadata(params, temperature, training, used)
    metadata["target_layer_grid"] = layer_grid(network, TARGET_LAYER, INPUT_SIZE, 1)
    metrics = {
        "test_frames": multiclass_metrics(test.labels.numpy(), test_probs, CLASS_NAMES),
        "test_clips": multiclass_metrics(clip_labels, verdicts, CLASS_NAMES),
        "test_clip_verdicts": _test_clips(test_items, verdicts, np.bincount(owners, minlength=len(test_items))),
        "test_frame_ece": expected_calibration_error(test_probs, test.labels.numpy()),
        "test_frame_ece_uncalibrated": expected_calibration_error(_softmax(test_logits), test.labels.numpy()),
        "val_frames": multiclass_metrics(val.labels.numpy(), _softmax(val_logits, temperature), CLASS_NAMES),
        "val_clips": multiclass_metrics(np.array([i.label for i in val_items]), val_verdicts, CLASS_NAMES),
        "temperature": temperature,
        "best_epoch": best_epoch,
        "parameters": sum(p.numel() for p in network.parameters()),
        "history": history,
        "seconds_loading": loaded - started,
        "seconds_training": trained - loaded,
        "cpu_seconds_training": cpu_trained - cpu_loaded,
        "split": metadata["split"],
        "groups": {part: len({item.group for item in chosen}) for part, chosen in split.items()},
        "frames": {"train": len(train.labels), "val": len(val.labels), "test": len(test.labels)},
        "excluded": [{"path": path, "reason": reason} for path, reason in excluded],
    }
    metadata["eval_metrics"] = {k: metrics[k] for k in ("test_frames", "test_clips", "test_clip_verdicts", "test_frame_ece")}
    metrics["seconds_total"] = time.perf_counter() - started
    metrics["cpu_seconds_total"] = time.process_time() - cpu_started
    out = write_bundle(out_dir, metadata, network_def, network.state_dict(), model_card(metadata, metrics, network_def, items))
    load_bundle(out)  # the written bundle must load and pass its checksum
    (out / TRAINING_METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    metrics["bundle"] = str(out)
    progress.report(1.0, f"wrote {out}")
    return metrics


def _smallest(data_dir: Path, items: tuple[Item, ...], count: int) -> tuple[Item, ...]:
    """The ``count`` smallest files of each class among ``items`` (quick smoke runs)."""
    chosen: list[Item] = []
    for label in range(len(CLASS_NAMES)):
        members = sorted((i for i in items if i.label == label and i.is_clip), key=lambda i: (data_dir / i.path).stat().st_size)
        chosen += members[:count]
    return tuple(sorted(chosen, key=lambda item: item.path))


def main(argv: list[str]) -> int:
    """``salience train lung-ultrasound``: train and write the bundle; returns the exit code."""
    parser = argparse.ArgumentParser(prog="salience train lung-ultrasound", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="lung-ultrasound folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("lung-ultrasound-bundle"), help="bundle folder to write")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="initial weights, batch order, augmentation")
    parser.add_argument("--split-seed", type=int, default=0, help="group split (keep it fixed to compare runs)")
    parser.add_argument("--frames-per-clip", type=int, default=FRAMES_PER_CLIP, help="evenly spaced training frames per clip")
    parser.add_argument("--limit", type=int, default=None, help="use only the N smallest clips per class and part (smoke test)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads; the shipped weights used 1 (results differ in the last bits with another count)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        metrics = train_lung_ultrasound(
            args.data, args.out, epochs=args.epochs, seed=args.seed, split_seed=args.split_seed,
            frames_per_clip=args.frames_per_clip, limit_items=args.limit, progress=_PrintProgress(),
        )
    except SalienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    clips, frames = metrics["test_clips"], metrics["test_frames"]
    print(
        f"wrote {metrics['bundle']}: test clips accuracy {clips['accuracy']:.3f} ({clips['correct']} of {clips['n']}), "
        f"macro AUC {clips['macro_auc']:.3f}; test frames accuracy {frames['accuracy']:.3f} ({frames['n']} frames); "
        f"trained in {metrics['seconds_training'] / 60:.1f} min"
    )
    return 0
