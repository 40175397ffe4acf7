"""Train the shipped glioma-grade bundle: is a lower-grade glioma WHO grade II or grade III?

Input per patient: the whole T1, FLAIR and post-contrast T1 volume, the head's box resampled to
32 x 64 x 64 (``grade_input``, the same preprocessing ``Bundle.preprocess`` runs). Label: the
histological grade in ``data.csv``. Patients are split into train, validation and test parts,
stratified by grade. The network is a small 3-D MONAI DenseNet (Huang et al., "Densely Connected
Convolutional Networks", CVPR 2017); the validation patients pick the epoch and fit a softmax
temperature. The test patients give the AUC with a bootstrap CI and the Grad-CAM check against
the FLAIR abnormality masks. The same recipe is run again with further seeds (same split) so the
card reports how much the figures move between seeds.

Reproduce the shipped weights (same library versions) with::

    salience train glioma-grade --data ../shared/data/glioma-lgg --out engine/bundles/glioma-grade --threads 1

then ``salience evaluate glioma-grade`` (``engine.tasks.glioma_grade.evaluation``), which measures the
written bundle again on its test patients and writes the shipped card and ``docs/evaluation.json``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.models.bundle import Bundle
from engine.progress import NullProgress, Progress, ScaledProgress
from engine.stats.diagnostic import wilson_interval
from engine.stats.roc import roc_auc_bootstrap
from engine.tasks.glioma.data import CHANNELS, list_patients
from engine.tasks.glioma_grade.data import (
    CLASS_NAMES,
    GradedCase,
    VolumeSet,
    graded_cases,
    load_volumes,
    split_by_grade,
)
from engine.tasks.glioma_grade.localisation import cam_localisation
from engine.tasks.glioma_grade.model_card import model_card
from engine.tasks.glioma_grade.preprocess import DEFAULT_PARAMS
from engine.training.bundle_writer import BundleSpec
from engine.training.cli import SHARED_DATA, run_training, training_parser
from engine.training.evaluation import binary_metrics, nll, roc_auc
from engine.training.loop import EpochScore, FitSettings, RecipeRun, network_logits, softmax

#: The shipped network: a stem (7^3 convolution, stride 2, and max-pooling) and two dense blocks,
#: so the last feature map is 4 x 8 x 8 for a 32 x 64 x 64 input (8 input voxels a cell).
NETWORK_DEF: dict[str, Any] = {
    "_target_": "monai.networks.nets.DenseNet",
    "spatial_dims": 3,
    "in_channels": 3,
    "out_channels": 2,
    "init_features": 8,
    "growth_rate": 8,
    "block_config": [4, 4],
    "bn_size": 2,
}
#: The last activation before global pooling.
TARGET_LAYER = "class_layers.relu"
INPUT_SIZE = (32, 64, 64)
DEFAULT_SPLIT = (50, 14, 20)
DEFAULT_EPOCHS = 40
#: Further initial-weight seeds trained on the same split, for the seed range the card reports.
DEFAULT_REPEATS = 9
#: Seed of the bootstrap resampling of the test patients.
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
#: Voxels each way a training volume may be shifted in-plane (half as many across slices).
MAX_SHIFT = 4
#: Share of the progress bar the training runs fill (the shipped seed's, then the repeats');
#: the Grad-CAM check and writing the bundle take the rest.
TRAINED_SHARE = 0.95
DEFAULT_DATA = SHARED_DATA / "glioma-lgg"
DATA_LICENSE = (
    "TCGA-LGG images from The Cancer Imaging Archive (CC BY 3.0), grades from the TCGA clinical data "
    "as tabulated by Buda et al. 2019 (LGG segmentation dataset)"
)
SPEC = BundleSpec(
    name="glioma-grade",
    description="Per patient, from the whole T1/FLAIR/T1ce brain MRI volume: is the lower-grade glioma "
    "WHO grade II or grade III?",
    class_names=CLASS_NAMES,
    input_channels=tuple(CHANNELS),
    input_size=INPUT_SIZE,  # type: ignore[arg-type]
    item_axis="volume",
    target_layer=TARGET_LAYER,
    preprocessing_function="engine.tasks.glioma_grade.preprocess.grade_input",
    calibration_data="validation patients",
    data_license=DATA_LICENSE,
    data_source="TCGA-LGG via TCIA; LGG segmentation dataset (Buda et al. 2019), resampled to 128 x 128 in-plane",
)


def shift_volumes(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Each ``(C, d, h, w)`` volume of a batch moved by its ``(dd, dh, dw)`` voxels, zeros coming in.

    Args:
        x: ``(B, C, d, h, w)``.
        shifts: ``(B, 3)`` integer shifts (positive: towards higher indices).
    """
    out = torch.zeros_like(x)
    for i, shift in enumerate(shifts.tolist()):
        source, target = [], []
        for s, size in zip(shift, x.shape[2:]):
            s = max(-size, min(size, int(s)))
            source.append(slice(max(0, -s), size - max(0, s)))
            target.append(slice(max(0, s), size - max(0, -s)))
        out[(i, slice(None), *target)] = x[(i, slice(None), *source)]
    return out


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random left-right flip, per-channel intensity scale (+-10%) and foreground shift (+-0.05),
    and a shift of up to ``MAX_SHIFT`` voxels in-plane (half that across slices), zeros filling in."""
    b, c = x.shape[:2]
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
    scale = 1.0 + (torch.rand(b, c, 1, 1, 1, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(b, c, 1, 1, 1, generator=generator) - 0.5) * 0.1
    x = x * scale + shift * (x > 0)
    moves = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (b, 3), generator=generator)
    moves[:, 0] = torch.div(moves[:, 0], 2, rounding_mode="trunc")
    return shift_volumes(x, moves)


def epoch_score(network: nn.Module, val: VolumeSet) -> EpochScore:
    """An epoch is judged by its validation NLL (lower is better); the AUC is recorded beside it."""
    logits, labels = network_logits(network, val.inputs), val.labels.numpy()
    val_nll = nll(logits, labels)
    val_auc = roc_auc(labels, softmax(logits)[:, 1])
    return EpochScore(val_nll, {"val_nll": val_nll, "val_auc": val_auc}, f"val NLL {val_nll:.3f}, val AUC {val_auc:.3f}")


def patient_metrics(labels: np.ndarray, p_grade_iii: np.ndarray) -> dict[str, Any]:
    """AUC with its bootstrap 95% CI, and accuracy, sensitivity and specificity for grade III at
    p >= 0.5 with their Wilson 95% CIs (the counts behind each)."""
    figures: dict[str, Any] = binary_metrics(labels, p_grade_iii)
    figures["auc_ci"], figures["auc_ci_method"] = None, "needs both grades"
    if figures["positives"] and figures["negatives"]:
        auc = roc_auc_bootstrap(p_grade_iii, labels, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        figures["auc_ci"], figures["auc_ci_method"] = [auc.ci_low, auc.ci_high], auc.method
    for name, hits, trials in (("accuracy", figures["tp"] + figures["tn"], figures["n"]),
                               ("sensitivity", figures["tp"], figures["positives"]),
                               ("specificity", figures["tn"], figures["negatives"])):
        interval = wilson_interval(hits, trials) if trials else None
        figures[f"{name}_ci"] = None if interval is None else [interval.ci_low, interval.ci_high]
    return figures


def _fit_and_test(
    run: RecipeRun, train: VolumeSet, val: VolumeSet, test: VolumeSet
) -> tuple[nn.Module, np.ndarray]:
    """Train and calibrate ``run``; returns the network and the test patients' calibrated probabilities."""
    network = run.train(train.inputs, train.labels, lambda net: epoch_score(net, val), augment=augment)
    calibration = run.calibrate(val.inputs, val.labels.numpy(), test.inputs)
    return network, calibration.test_probabilities()


def seed_range(
    spec: BundleSpec, settings: FitSettings, network_def: dict[str, Any], split_seed: int, repeats: int,
    parts: tuple[VolumeSet, ...], progress: Progress,
) -> dict[str, Any]:
    """Train the recipe again with seeds ``settings.seed + 1 ...`` on the same split; the test and
    validation AUC of every seed (the caller puts the shipped seed's first)."""
    train, val, test = parts
    runs = []
    for r in range(1, repeats + 1):
        sub = ScaledProgress(progress, (r - 1) / repeats, r / repeats)
        run = RecipeRun(spec, network_def, FitSettings(settings.epochs, settings.seed + r, settings.batch_size,
                                                       settings.learning_rate), split_seed, sub)
        _, probabilities = _fit_and_test(run, train, val, test)
        runs.append({
            "seed": settings.seed + r,
            "best_epoch": run.best_epoch,
            "val_auc": roc_auc(val.labels.numpy(), run.calibration.val_probabilities()[:, 1]),
            "test_auc": roc_auc(test.labels.numpy(), probabilities[:, 1]),
            "test_accuracy": float(np.mean((probabilities[:, 1] >= 0.5) == test.labels.numpy().astype(bool))),
        })
    return {"runs": runs}


def grades_by_site(cases: list[GradedCase]) -> dict[str, list[int]]:
    """Per TCGA site code (``CS`` of ``TCGA_CS_4941_...``): ``[grade III patients, patients]``."""
    sites: dict[str, list[int]] = {}
    for case in cases:
        counts = sites.setdefault(case.folder.split("_")[1], [0, 0])
        counts[0] += case.grade
        counts[1] += 1
    return dict(sorted(sites.items()))


def train_glioma_grade(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    split: tuple[int, int, int] = DEFAULT_SPLIT,
    network_def: dict[str, Any] | None = None,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    input_size: tuple[int, int, int] = INPUT_SIZE,
    repeats: int = DEFAULT_REPEATS,
) -> dict[str, Any]:
    """Train, calibrate, evaluate and write the glioma-grade bundle to ``out_dir``.

    Args:
        data_dir: the ``glioma-lgg`` folder (patient folders and ``data.csv``).
        out_dir: the bundle folder to write (created; files overwritten).
        epochs: passes over the training volumes.
        seed: seeds the initial weights, batch order and augmentation.
        split_seed: seeds the stratified patient split (kept apart from ``seed``).
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        split: numbers of train, validation and test patients.
        network_def: a 3-D ``monai.networks.nets`` config; the shipped ``NETWORK_DEF`` by default.
        batch_size: volumes per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule (AdamW).
        input_size: the network's ``(d, h, w)``.
        repeats: further seeds trained on the same split for the seed range (0: none).

    Returns:
        Metrics: test and validation patient metrics with CIs, temperature and ECE, chosen epoch,
        history, the seed range, the Grad-CAM check on the test patients, timings, the split and
        each test patient's probability, and the bundle path.

    Raises:
        SalienceError: the data folder or grade table is missing or unreadable, or the split is
            too large.
    """
    spec = replace(SPEC, input_size=tuple(input_size))
    settings = FitSettings(epochs, seed, batch_size, learning_rate)
    progress = progress or NullProgress()
    span = TRAINED_SHARE / (1 + repeats)  # of the progress bar, for each seed's run
    run = RecipeRun(spec, network_def or NETWORK_DEF, settings, split_seed, ScaledProgress(progress, 0.0, span))
    data_dir = Path(data_dir)
    cases = graded_cases(data_dir)
    patients = split_by_grade(cases, split, split_seed)
    by_folder = {c.folder: c for c in cases}
    params = dict(DEFAULT_PARAMS)
    run.progress.report(0.0, "reading patients")
    parts = tuple(load_volumes(data_dir, [by_folder[f] for f in part], tuple(input_size), params)
                  for part in (patients.train, patients.val, patients.test))
    train, val, test = parts
    run.data_read()

    network, probabilities = _fit_and_test(run, train, val, test)
    test_labels, val_labels = test.labels.numpy(), val.labels.numpy()
    test_ece, test_ece_uncalibrated = run.calibration.test_ece(test_labels)
    split_names = {"train": list(patients.train), "val": list(patients.val), "test": list(patients.test)}
    metadata = run.metadata(params, {"torch_threads": torch.get_num_threads(), "repeats": repeats}, split=split_names)
    seeds = seed_range(spec, settings, run.network_def, split_seed, repeats, parts,
                       ScaledProgress(progress, span, TRAINED_SHARE))
    run.progress = ScaledProgress(progress, TRAINED_SHARE, 1.0)
    run.progress.report(0.0, "checking Grad-CAM on test patients")
    cam = cam_localisation(Bundle(path=Path(out_dir), metadata=metadata, network=network), data_dir, patients.test)
    shipped = {"seed": seed, "best_epoch": run.best_epoch, "val_auc": roc_auc(val_labels, run.calibration.val_probabilities()[:, 1]),
               "test_auc": roc_auc(test_labels, probabilities[:, 1]),
               "test_accuracy": float(np.mean((probabilities[:, 1] >= 0.5) == test_labels.astype(bool)))}
    seeds["runs"].insert(0, shipped)
    metrics = {
        "test": patient_metrics(test_labels, probabilities[:, 1]),
        "test_ece": test_ece,
        "test_ece_uncalibrated": test_ece_uncalibrated,
        "val": patient_metrics(val_labels, run.calibration.val_probabilities()[:, 1]),
        **run.fit_figures(),
        "seed_range": seeds,
        "cam_localisation": cam,
        **run.clock.phases(),
        "split": metadata["split"],
        "patients": {name: len(part.labels) for name, part in zip(("train", "val", "test"), parts)},
        "patient_folders": len(list_patients(data_dir)),
        "patients_graded": len(cases),
        "grade_iii_by_site": grades_by_site(cases),
        "slices_per_volume": [min(n for part in parts for n in part.slices), max(n for part in parts for n in part.slices)],
        "grade_iii": {name: int(part.labels.sum()) for name, part in zip(("train", "val", "test"), parts)},
        "test_predictions": [
            {"patient": f, "grade": CLASS_NAMES[int(y)], "p_grade_iii": round(float(p), 4)}
            for f, y, p in zip(test.folders, test_labels, probabilities[:, 1])
        ],
    }
    metadata["eval_metrics"] = {"test": {k: metrics["test"][k] for k in ("auc", "auc_ci", "accuracy", "n")},
                                "test_ece": test_ece, "cam_localisation": cam["predicted_class"]}
    run.save(out_dir, metadata, metrics, lambda m: model_card(metadata, m, run.network_def))
    return metrics


def main(argv: list[str]) -> int:
    """``salience train glioma-grade``: train and write the glioma-grade bundle; returns the exit code."""
    parser = training_parser("glioma-grade", __doc__.splitlines()[0], DEFAULT_DATA, "stratified patient split")
    parser.set_defaults(epochs=DEFAULT_EPOCHS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="further seeds trained on the same split for the seed range (default: %(default)s)")
    args = parser.parse_args(argv)
    return run_training(args, train_glioma_grade, _summary, repeats=args.repeats)


def _summary(metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    low, high = test["auc_ci"]
    aucs = [r["test_auc"] for r in metrics["seed_range"]["runs"]]
    return (
        f"wrote {metrics['bundle']}: test AUC {test['auc']:.3f} (95% CI {low:.3f}-{high:.3f}), accuracy "
        f"{test['accuracy']:.3f} ({test['n']} patients); test AUC over {len(aucs)} seeds {min(aucs):.3f}-{max(aucs):.3f}; "
        f"trained in {metrics['seconds_training'] / 60:.1f} min, {metrics['seconds_total'] / 60:.1f} min in all"
    )
