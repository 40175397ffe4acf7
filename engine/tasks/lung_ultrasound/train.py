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

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.training.bundle_writer import BundleSpec
from engine.training.evaluation import fit_temperature, nll
from engine.tasks.lung_ultrasound.data import CLASS_NAMES, FrameSet, Item, list_items, load_frames, split_items
from engine.tasks.lung_ultrasound.metrics import clip_verdicts, multiclass_metrics
from engine.tasks.lung_ultrasound.model_card import model_card
from engine.tasks.lung_ultrasound.preprocess import DEFAULT_PARAMS, GREY_CHANNEL
from engine.training.loop import EpochScore, FitSettings, RecipeRun, network_logits
from engine.training.cli import SHARED_DATA, run_training, training_parser
from engine.progress import Progress

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
DEFAULT_DATA = SHARED_DATA / "lung-ultrasound"
DATA_LICENSE = (
    "POCOVID-Net lung ultrasound collection (Born et al. 2021); licence per file as in "
    "dataset_metadata.csv: CC BY 4.0, CC BY 2.0, CC BY-NC 4.0, CC BY-NC-SA 3.0/4.0 and a COVID-19 "
    "emergency licence; non-commercial terms apply to part of the data"
)
SPEC = BundleSpec(
    name="lung-ultrasound",
    version="1.1.0",  # 1.1: a band along the scan region's edge blanked (the fan's outline was a shortcut)
    description="Per frame of a lung ultrasound clip or still: COVID-19, bacterial pneumonia or healthy; "
    "the clip verdict is the mean of the frame probabilities.",
    class_names=tuple(CLASS_NAMES),
    input_channels=(GREY_CHANNEL,),
    input_size=INPUT_SIZE,
    item_axis="frame",
    target_layer=TARGET_LAYER,
    preprocessing_function="engine.tasks.lung_ultrasound.preprocess.prepare_frames",
    calibration_data="validation frames",
    data_license=DATA_LICENSE,
    data_source="POCOVID-Net lung ultrasound collection (github.com/jannisborn/covid19_ultrasound), "
    "as in ../shared/data/lung-ultrasound",
    output_notes={"clip_verdict": "mean of calibrated frame probabilities over every frame"},
)
#: Width of the blanked band along the scan region's boundary, as a fraction of the crop window's
#: side (``lung_ultrasound_preprocess.prepare_frames``): a model trained on the whole region put
#: its Grad-CAM for "Healthy" along the fan's edges, an outline the scanner (the source) decides.
EDGE_BAND = 0.05
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


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy weight of each class, inversely proportional to its count (mean weight per item 1)."""
    counts = torch.bincount(labels, minlength=len(CLASS_NAMES)).float()
    return counts.sum() / (len(CLASS_NAMES) * counts.clamp(min=1))


def epoch_score(network: nn.Module, val: FrameSet) -> EpochScore:
    """An epoch is judged by its validation NLL after temperature scaling (lower is better).

    The calibrated NLL judges how well an epoch ranks and separates the classes, not how
    over-confident it is (the temperature fitted afterwards removes that); raw NLL on ~20
    validation clips kept the second epoch of a run that went on to separate the classes better.
    """
    logits, labels = network_logits(network, val.inputs), val.labels.numpy()
    val_nll = nll(logits, labels)
    calibrated_nll = nll(logits, labels, fit_temperature(logits, labels))
    val_accuracy = float((logits.argmax(1) == labels).mean())
    return EpochScore(
        calibrated_nll,
        {"val_nll": val_nll, "val_nll_calibrated": calibrated_nll, "val_accuracy": val_accuracy},
        f"val NLL {val_nll:.3f} (calibrated {calibrated_nll:.3f}), val frame accuracy {val_accuracy:.3f}",
    )


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
    edge_band: float = EDGE_BAND,
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
        edge_band: width of the blanked boundary band, a fraction of the crop window's side
            (recorded in the bundle's ``preprocessing``).

    Returns:
        Metrics: test frame and clip metrics, per-clip verdicts, validation metrics, temperature,
        chosen epoch, history, timings (wall and CPU), the split and the bundle path.

    Raises:
        SalienceError: the data folder is missing or unreadable, or the split leaves a class out.
    """
    run = RecipeRun(SPEC, network_def or NETWORK_DEF, FitSettings(epochs, seed, batch_size, learning_rate), split_seed, progress)
    data_dir = Path(data_dir)
    items, excluded = list_items(data_dir)
    split = split_items(items, fractions, split_seed)
    if limit_items is not None:
        split = {part: _smallest(data_dir, chosen, limit_items) for part, chosen in split.items()}
    params = {**DEFAULT_PARAMS, "edge_band": float(edge_band)}
    run.progress.report(0.0, "reading clips")
    train_items = tuple(item for item in split["train"])
    val_items = tuple(item for item in split["val"] if item.is_clip)
    test_items = tuple(item for item in split["test"] if item.is_clip)
    train = load_frames(data_dir, train_items, INPUT_SIZE, params, frames_per_clip)
    val = load_frames(data_dir, val_items, INPUT_SIZE, params, frames_per_clip)
    test = load_frames(data_dir, test_items, INPUT_SIZE, params, None)
    run.data_read()

    run.train(
        train.inputs, train.labels, lambda net: epoch_score(net, val), augment=augment, class_weights=class_weights(train.labels)
    )
    calibration = run.calibrate(val.inputs, val.labels.numpy(), test.inputs)
    test_probs, test_labels = calibration.test_probabilities(), test.labels.numpy()
    test_frame_ece, test_frame_ece_uncalibrated = calibration.test_ece(test_labels)
    owners = test.owners.numpy()
    verdicts = clip_verdicts(test_probs, owners, len(test_items))
    clip_labels = np.array([item.label for item in test_items])
    val_verdicts = clip_verdicts(calibration.val_probabilities(), val.owners.numpy(), len(val_items))
    details = {"frames_per_clip": frames_per_clip, "fractions": list(fractions), "torch_threads": torch.get_num_threads()}
    used = {"train": train_items, "val": val_items, "test": test_items}  # stills of val/test groups go unused
    metadata = run.metadata(params, details, split={part: [item.path for item in chosen] for part, chosen in used.items()})
    metrics = {
        "test_frames": multiclass_metrics(test_labels, test_probs, CLASS_NAMES),
        "test_clips": multiclass_metrics(clip_labels, verdicts, CLASS_NAMES),
        "test_clip_verdicts": _test_clips(test_items, verdicts, np.bincount(owners, minlength=len(test_items))),
        "test_frame_ece": test_frame_ece,
        "test_frame_ece_uncalibrated": test_frame_ece_uncalibrated,
        "val_frames": multiclass_metrics(val.labels.numpy(), calibration.val_probabilities(), CLASS_NAMES),
        "val_clips": multiclass_metrics(np.array([i.label for i in val_items]), val_verdicts, CLASS_NAMES),
        **run.fit_figures(),
        **run.clock.phases(),
        "split": metadata["split"],
        "groups": {part: len({item.group for item in chosen}) for part, chosen in split.items()},
        "frames": {"train": len(train.labels), "val": len(val.labels), "test": len(test.labels)},
        "excluded": [{"path": path, "reason": reason} for path, reason in excluded],
    }
    metadata["eval_metrics"] = {k: metrics[k] for k in ("test_frames", "test_clips", "test_clip_verdicts", "test_frame_ece")}
    run.save(out_dir, metadata, metrics, lambda m: model_card(metadata, m, run.network_def, items))
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
    parser = training_parser("lung-ultrasound", __doc__.splitlines()[0], DEFAULT_DATA, "group split")
    parser.add_argument("--frames-per-clip", type=int, default=FRAMES_PER_CLIP, help="evenly spaced training frames per clip")
    parser.add_argument("--limit", type=int, default=None, help="use only the N smallest clips per class and part (smoke test)")
    parser.add_argument(
        "--edge-band", type=float, default=EDGE_BAND, help="blanked band along the scan region's edge, fraction of the window side"
    )
    args = parser.parse_args(argv)
    return run_training(
        args, train_lung_ultrasound, _summary, frames_per_clip=args.frames_per_clip, limit_items=args.limit, edge_band=args.edge_band
    )


def _summary(metrics: dict[str, Any]) -> str:
    clips, frames = metrics["test_clips"], metrics["test_frames"]
    return (
        f"wrote {metrics['bundle']}: test clips accuracy {clips['accuracy']:.3f} ({clips['correct']} of {clips['n']}), "
        f"macro AUC {clips['macro_auc']:.3f}; test frames accuracy {frames['accuracy']:.3f} ({frames['n']} frames); "
        f"trained in {metrics['seconds_training'] / 60:.1f} min"
    )
