"""Train the shipped lung-ultrasound bundle: COVID-19, bacterial pneumonia or healthy, per frame.

Input per frame: the clip's scan region, grey, padded to a square and resized to 128 x 128
(``lung_ultrasound_preprocess``, the same preprocessing ``Bundle.preprocess`` runs), with a band
along the region's edge blanked. Every clip's frames are prepared once (``frame_cache``: up to 24
evenly spaced frames per clip, and the licensed stills); training takes 12 evenly spaced frames of
each training clip. The network is a compact MONAI DenseNet (Huang et al., "Densely Connected
Convolutional Networks", CVPR 2017) with two dense blocks, whose last feature map is 16 x 16 for a
128 x 128 frame. A small inner validation part, split by group and stratified by class, picks the
epoch and fits a softmax temperature; the clip verdict is the mean of its frames' calibrated
probabilities.

The shipped model is trained on every group but the inner validation part; how well the recipe
does on clips it never saw is measured by 5-fold cross-validation (``--folds 5 --fold-by clip`` or
``patient``, ``engine.tasks.lung_ultrasound.cross_validation``), whose out-of-fold predictions
``salience evaluate lung-ultrasound`` turns into the model card.

Reproduce the shipped weights and the cross-validation (same library versions) with::

    salience train lung-ultrasound --out engine/bundles/lung-ultrasound --folds 5 --fold-by clip --cache /tmp/lus/frames.pt
    salience train lung-ultrasound --out engine/bundles/lung-ultrasound --folds 5 --fold-by patient --cache /tmp/lus/frames.pt
    salience train lung-ultrasound --out engine/bundles/lung-ultrasound --keep-epoch 10 --cache /tmp/lus/frames.pt
    salience evaluate lung-ultrasound --compare SEED1_BUNDLE   (the same three runs with --seed 1 --out SEED1_BUNDLE)

Epoch 10 is the median of the epochs the ten cross-validation folds kept (by their inner validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import SalienceError
from engine.training.bundle_writer import BundleSpec
from engine.training.evaluation import expected_calibration_error, fit_temperature, nll
from engine.tasks.lung_ultrasound.data import CLASS_NAMES, FrameSet, Item, findings, list_items, load_frames, split_items
from engine.tasks.lung_ultrasound.frame_cache import cached_frames, select
from engine.tasks.lung_ultrasound.map_regions import map_shares
from engine.tasks.lung_ultrasound.metrics import clip_verdicts, multiclass_metrics
from engine.tasks.lung_ultrasound.model_card import model_card
from engine.tasks.lung_ultrasound.preprocess import DEFAULT_PARAMS, GREY_CHANNEL
from engine.training.loop import EpochScore, FitSettings, RecipeRun, fit_network, network_logits, seeded_network
from engine.training.cli import SHARED_DATA, run_training, training_parser
from engine.progress import NullProgress, Progress

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
#: Evenly spaced frames of each clip that are prepared (and cached) and judged out of fold.
EVAL_FRAMES_PER_CLIP = 24
#: Evenly spaced frames (of those) that training and the inner validation take per clip: 12, not
#: the 24 of 1.1.0, so that ten cross-validation runs and the shipped run fit the CPU budget.
FRAMES_PER_CLIP = 12
#: Epochs of every run (1.1.0: 20, whose best epoch was 11).
EPOCHS = 12
#: Share of each class's clips (by group) held back from training to pick the epoch and fit the temperature.
VAL_FRACTION = 0.15
DEFAULT_DATA = SHARED_DATA / "lung-ultrasound"
DATA_LICENSE = (
    "POCOVID-Net lung ultrasound collection (Born et al. 2021); licence per file as in "
    "dataset_metadata.csv: CC BY 4.0, CC BY 2.0, CC BY-NC 4.0, CC BY-NC-SA 3.0/4.0 and a COVID-19 "
    "emergency licence; non-commercial terms apply to part of the data"
)
SPEC = BundleSpec(
    name="lung-ultrasound",
    version="1.2.0",  # 1.2: trained on every group but a small inner validation part; measured by 5-fold CV
    description="Per frame of a lung ultrasound clip or still: COVID-19, bacterial pneumonia or healthy; "
    "the clip verdict is the mean of the frame probabilities.",
    class_names=tuple(CLASS_NAMES),
    input_channels=(GREY_CHANNEL,),
    input_size=INPUT_SIZE,
    item_axis="frame",
    target_layer=TARGET_LAYER,
    preprocessing_function="engine.tasks.lung_ultrasound.preprocess.prepare_frames",
    calibration_data="inner validation frames",
    data_license=DATA_LICENSE,
    data_source="POCOVID-Net lung ultrasound collection (github.com/jannisborn/covid19_ultrasound), "
    "as in ../shared/data/lung-ultrasound",
    output_notes={"clip_verdict": "mean of calibrated frame probabilities over every frame"},
)
#: Width of the blanked band along the scan region's boundary, as a fraction of the crop window's
#: side (``lung_ultrasound_preprocess.prepare_frames``): a model trained on the whole region put
#: its Grad-CAM for "Healthy" along the fan's edges, an outline the scanner (the source) decides.
EDGE_BAND = 0.05
#: Width of the edge band the map check measures (fraction of the input's side): the blanked band
#: and as much again inside it, where a map that followed the fan's outline would still sit.
MEASURED_EDGE_BAND = 0.10
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


@dataclass(frozen=True)
class FittedModel:
    """One run of the recipe: the network at its kept epoch and its temperature.

    Attributes:
        network: the trained network, in eval mode.
        temperature: fitted on the inner validation frames (Guo et al., ICML 2017).
        history: one record per epoch.
        best_epoch: the kept epoch, counted from 1.
    """

    network: nn.Module
    temperature: float
    history: list[dict[str, float]]
    best_epoch: int


def fixed_epoch_judge(val: FrameSet, keep_epoch: int):
    """An epoch judge that keeps epoch ``keep_epoch`` whatever the validation says (it still records it).

    The shipped run uses it with the epoch the cross-validation folds kept (their median): five
    inner-validation parts choose more steadily than the shipped run's one dozen clips.
    """
    calls = iter(range(1, 10**9))

    def judge(network: nn.Module) -> EpochScore:
        judged = epoch_score(network, val)
        score = 0.0 if next(calls) == keep_epoch else math.inf
        return EpochScore(score, judged.record, judged.summary)

    return judge


def fit_model(
    train: FrameSet, val: FrameSet, settings: FitSettings, network_def: dict[str, Any], progress: Progress | None = None
) -> FittedModel:
    """Train the seeded network on ``train``, keep the epoch ``val`` likes best, fit the temperature on ``val``."""
    network = seeded_network(network_def, settings.seed)
    history, best_epoch = fit_network(
        network, train.inputs, train.labels, lambda net: epoch_score(net, val), settings,
        augment=augment, progress=progress or NullProgress(), class_weights=class_weights(train.labels),
    )
    temperature = fit_temperature(network_logits(network, val.inputs), val.labels.numpy())
    return FittedModel(network, temperature, history, best_epoch)


def true_class_maps(network: nn.Module, frames: FrameSet, batch_size: int = 32) -> np.ndarray:
    """Rectified Grad-CAM of each frame's true class on the input grid, ``(N, h, w)``.

    Selvaraju et al., "Grad-CAM", ICCV 2017, at ``TARGET_LAYER`` (the bundle's CAM layer).
    """
    from engine.explain import CamCapture, grad_cam, upsample

    network.eval()
    labels = frames.labels
    out = []
    with CamCapture(network, [TARGET_LAYER]) as capture:
        for start in range(0, len(labels), batch_size):
            x = frames.inputs[start : start + batch_size]
            captured = capture.run(x, classes=list(range(len(CLASS_NAMES))))
            activations, gradients = captured.activations[TARGET_LAYER], captured.gradients[TARGET_LAYER]
            rows = labels[start : start + batch_size]
            chosen = gradients[rows, torch.arange(len(rows))]
            cam = upsample(grad_cam(activations, chosen), tuple(x.shape[2:]))
            out.append(cam.clamp(min=0).numpy())
    return np.concatenate(out) if out else np.zeros((0,) + INPUT_SIZE)


def frame_records(network: nn.Module, frames: FrameSet) -> dict[str, Any]:
    """What the evaluation needs of some frames: owner, raw logits and where the true-class map points.

    Returns:
        JSON-ready lists: ``owner``, ``logits`` (rounded to 5 decimals), and ``map_shares``
        (``engine.tasks.lung_ultrasound.map_regions.map_shares`` with ``MEASURED_EDGE_BAND``).
    """
    logits = network_logits(network, frames.inputs)
    maps = true_class_maps(network, frames)
    if frames.regions is None:
        raise ValueError("frames without scan regions cannot be map-checked")
    regions = frames.regions.numpy()[frames.owners.numpy()]
    shares = map_shares(maps, regions, MEASURED_EDGE_BAND * INPUT_SIZE[0])
    return {
        "owner": frames.owners.tolist(),
        "logits": np.round(logits.astype(np.float64), 5).tolist(),
        "map_shares": {k: np.round(v, 5).tolist() for k, v in shares.items()},
    }


def clip_verdict_rows(items: tuple[Item, ...], verdicts: np.ndarray, owners: np.ndarray) -> list[dict]:
    """Each clip's verdict as the card and ``metadata.json`` list it: path, class, frames, verdict, predicted."""
    frames = np.bincount(owners, minlength=len(items))
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


def clip_table(items: tuple[Item, ...], data_dir: Path, **columns: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per clip: path, class, group, findings, and any per-path ``columns`` (e.g. ``fold``)."""
    found = findings(data_dir, items)
    return [
        {"path": item.path, "class": CLASS_NAMES[item.label], "label": item.label, "group": item.group,
         **found[item.path], **{name: values[item.path] for name, values in columns.items()}}
        for item in items
    ]


def train_lung_ultrasound(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    val_fraction: float = VAL_FRACTION,
    frames_per_clip: int = FRAMES_PER_CLIP,
    eval_frames: int = EVAL_FRAMES_PER_CLIP,
    cache: Path | None = None,
    network_def: dict[str, Any] | None = None,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    limit_items: int | None = None,
    edge_band: float = EDGE_BAND,
    keep_epoch: int | None = None,
) -> dict[str, Any]:
    """Train on every group but an inner validation part, calibrate, and write the bundle to ``out_dir``.

    Args:
        data_dir: the ``lung-ultrasound`` folder (``pocus_videos``, ``pocus_images``, metadata).
        out_dir: the bundle folder to write (created; files overwritten, other files kept).
        epochs: passes over the training frames.
        seed: seeds the initial weights, batch order and augmentation.
        split_seed: seeds the inner validation split by group (kept apart from ``seed``).
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        val_fraction: share of each class's clips (whole groups) in the inner validation part.
        frames_per_clip: evenly spaced frames per clip that training and the epoch choice see.
        eval_frames: evenly spaced frames per clip prepared (cached) and measured on validation.
        cache: the prepared-frame cache (``frame_cache.cached_frames``); None reads the clips.
        network_def: a ``monai.networks.nets`` config; ``NETWORK_DEF`` by default.
        batch_size: frames per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule (AdamW).
        limit_items: keep only this many of the smallest clips of each class, for smoke tests.
        edge_band: width of the blanked boundary band, a fraction of the crop window's side.
        keep_epoch: keep this epoch (``fixed_epoch_judge``) instead of the one with the lowest
            calibrated inner-validation NLL; the inner validation then only fits the temperature.

    Returns:
        Metrics: inner-validation frame (every frame) and clip metrics (optimistic: the same clips
        chose the epoch and temperature), each clip's verdict, ECE, map records (on the cached
        frames), temperature, chosen epoch, history, timings, split.

    Raises:
        SalienceError: the data folder is missing or unreadable, the split leaves a class out, or
            ``keep_epoch`` is not one of the epochs.
    """
    if keep_epoch is not None and not 1 <= keep_epoch <= epochs:
        raise SalienceError(f"--keep-epoch {keep_epoch}: not one of the {epochs} epochs")
    run = RecipeRun(SPEC, network_def or NETWORK_DEF, FitSettings(epochs, seed, batch_size, learning_rate), split_seed, progress)
    data_dir = Path(data_dir)
    items, excluded = usable_items(data_dir, limit_items)
    split = split_items(items, (1 - val_fraction, val_fraction), split_seed, parts=("train", "val"))
    params = {**DEFAULT_PARAMS, "edge_band": float(edge_band)}
    run.progress.report(0.0, "reading clips")
    frames = cached_frames(data_dir, tuple(items), INPUT_SIZE, params, eval_frames, cache)
    train_items, val_items = split["train"], tuple(item for item in split["val"] if item.is_clip)
    train = select(frames, train_items, frames_per_clip)
    val = select(frames, val_items, frames_per_clip)
    val_all = select(frames, val_items, None)
    val_full = load_frames(data_dir, val_items, INPUT_SIZE, params, None)  # every frame, as the clip verdict takes them
    run.data_read()

    judge = (lambda net: epoch_score(net, val)) if keep_epoch is None else fixed_epoch_judge(val, keep_epoch)
    run.train(train.inputs, train.labels, judge, augment=augment, class_weights=class_weights(train.labels))
    calibration = run.calibrate(val.inputs, val.labels.numpy(), val_full.inputs)
    labels = val_full.labels.numpy()
    probs = calibration.test_probabilities()
    verdicts = clip_verdicts(probs, val_full.owners.numpy(), len(val_items))
    details = {"frames_per_clip": frames_per_clip, "eval_frames_per_clip": eval_frames, "val_fraction": val_fraction,
               "keep_epoch": keep_epoch, "torch_threads": torch.get_num_threads()}
    metadata = run.metadata(params, details, split={"train": [i.path for i in train_items], "val": [i.path for i in val_items]})
    metrics = {
        "val_frames": multiclass_metrics(labels, probs, CLASS_NAMES),
        "val_clips": multiclass_metrics(np.array([i.label for i in val_items]), verdicts, CLASS_NAMES),
        "val_clip_verdicts": clip_verdict_rows(val_items, verdicts, val_full.owners.numpy()),
        "val_frame_ece": expected_calibration_error(probs, labels),
        "val_frame_ece_uncalibrated": expected_calibration_error(calibration.test_probabilities(calibrated=False), labels),
        "val_records": {"clips": clip_table(val_items, data_dir), **frame_records(run.network, val_all)},
        **run.fit_figures(),
        **run.clock.phases(),
        "split": metadata["split"],
        "groups": {part: len({item.group for item in chosen}) for part, chosen in split.items()},
        "frames": {"train": len(train.labels), "val": len(val.labels), "val_every_frame": len(labels), "val_map_checked": len(val_all.labels)},
        "excluded": [{"path": path, "reason": reason} for path, reason in excluded],
    }
    metadata["eval_metrics"] = {
        "val_clips": {k: metrics["val_clips"][k] for k in ("n", "accuracy", "macro_auc")},
        "val_clip_verdicts": metrics["val_clip_verdicts"],
    }
    run.save(out_dir, metadata, metrics, lambda m: model_card(metadata, m, run.network_def, items, None))
    return metrics


def usable_items(data_dir: Path, limit_items: int | None) -> tuple[list[Item], list[tuple[str, str]]]:
    """Every usable item (``list_items``), or, with ``limit_items``, only the smallest clips of each class."""
    items, excluded = list_items(data_dir)
    if limit_items is None:
        return items, excluded
    chosen: list[Item] = []
    for label in range(len(CLASS_NAMES)):
        members = sorted((i for i in items if i.label == label and i.is_clip), key=lambda i: (data_dir / i.path).stat().st_size)
        chosen += members[:limit_items]
    return sorted(chosen, key=lambda item: item.path), excluded


def main(argv: list[str]) -> int:
    """``salience train lung-ultrasound``: the shipped run, or with ``--folds`` a cross-validation; returns the exit code."""
    parser = training_parser("lung-ultrasound", __doc__.splitlines()[0], DEFAULT_DATA, "inner validation split (and fold assignment)")
    parser.set_defaults(epochs=EPOCHS)
    parser.add_argument("--frames-per-clip", type=int, default=FRAMES_PER_CLIP, help="evenly spaced training frames per clip")
    parser.add_argument("--eval-frames", type=int, default=EVAL_FRAMES_PER_CLIP, help="evenly spaced frames per clip prepared and measured")
    parser.add_argument("--cache", type=Path, default=None, help="prepared-frame cache file (.pt), read if it matches, else written")
    parser.add_argument("--limit", type=int, default=None, help="use only the N smallest clips per class (smoke test)")
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                        help="share of each class's clips (whole units) in the inner validation part")
    parser.add_argument(
        "--edge-band", type=float, default=EDGE_BAND, help="blanked band along the scan region's edge, fraction of the window side"
    )
    parser.add_argument("--keep-epoch", type=int, default=None,
                        help="keep this epoch (e.g. the median the cross-validation folds kept) instead of the inner validation's choice")
    parser.add_argument("--folds", type=int, default=None, help="run a K-fold cross-validation instead of the shipped run")
    parser.add_argument("--fold-by", choices=["clip", "patient"], default="patient",
                        help="cross-validation unit: each clip (the POCOVID-Net paper) or each patient group (stricter)")
    args = parser.parse_args(argv)
    options = dict(frames_per_clip=args.frames_per_clip, eval_frames=args.eval_frames, cache=args.cache,
                   limit_items=args.limit, edge_band=args.edge_band, val_fraction=args.val_fraction)
    if args.folds is not None:
        from engine.tasks.lung_ultrasound.cross_validation import cross_validate, summary_line

        return run_training(args, cross_validate, summary_line, folds=args.folds, fold_by=args.fold_by, **options)
    return run_training(args, train_lung_ultrasound, _summary, keep_epoch=args.keep_epoch, **options)


def _summary(metrics: dict[str, Any]) -> str:
    clips = metrics["val_clips"]
    return (
        f"wrote {metrics['bundle']}: inner validation clips accuracy {clips['accuracy']:.3f} ({clips['correct']} of {clips['n']}); "
        f"trained in {metrics['seconds_training'] / 60:.1f} min; run `salience evaluate lung-ultrasound` for the card"
    )
