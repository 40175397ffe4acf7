"""Train the shipped glioma bundle: does an axial MRI slice show a FLAIR abnormality?

Input per slice: T1, FLAIR and post-contrast T1 as three channels (``glioma_slices``, the same
preprocessing ``Bundle.preprocess`` runs). Label: any voxel of the patient's FLAIR abnormality
mask on the slice. Patients, never slices, are split into train, validation and test parts.
The network is a compact MONAI DenseNet (Huang et al., "Densely Connected Convolutional
Networks", CVPR 2017) whose last feature map is 32 x 32 for a 128 x 128 slice, so Grad-CAM has
useful resolution. The validation patients pick the epoch and fit a softmax temperature.

Reproduce the shipped weights (same library versions) with::

    salience train glioma --data ../shared/data/glioma-lgg --out engine/bundles/glioma --threads 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.models.bundle import Bundle
from engine.training.bundle_writer import BundleSpec
from engine.training.evaluation import binary_metrics, mask_energy, nll, roc_auc
from engine.tasks.glioma.data import CHANNELS, SliceSet, list_patients, load_slices, split_patients
from engine.tasks.glioma.model_card import model_card
from engine.tasks.glioma.preprocess import DEFAULT_PARAMS
from engine.training.loop import EpochScore, FitSettings, RecipeRun, network_logits, softmax
from engine.training.cli import SHARED_DATA, run_training, training_parser
from engine.progress import Progress

#: The shipped network: one dense block after the stem, so the last feature map is 32 x 32 for a
#: 128 x 128 slice and each cell sees about 60 pixels: enough to judge a FLAIR hyperintensity
#: against its surroundings, local enough that Grad-CAM points at it. (A second block gave a
#: 16 x 16 map whose cells saw ~160 pixels, i.e. the whole slice, and Grad-CAM peaks that missed
#: the mask on 93% of test slices.)
NETWORK_DEF: dict[str, Any] = {
    "_target_": "monai.networks.nets.DenseNet",
    "spatial_dims": 2,
    "in_channels": 3,
    "out_channels": 2,
    "init_features": 16,
    "growth_rate": 16,
    "block_config": [8],
    "bn_size": 2,
}
#: The last activation before global pooling: 32 x 32 for a 128 x 128 input (4 pixels per cell).
TARGET_LAYER = "class_layers.relu"
CLASS_NAMES = ["no FLAIR abnormality", "FLAIR abnormality"]
INPUT_SIZE = (128, 128)
DEFAULT_SPLIT = (60, 10, 15)
DEFAULT_DATA = SHARED_DATA / "glioma-lgg"
DATA_LICENSE = (
    "TCGA-LGG images from The Cancer Imaging Archive (CC BY 3.0), FLAIR abnormality masks and "
    "slice preparation by Buda et al. 2019 (LGG segmentation dataset)"
)
SPEC = BundleSpec(
    name="glioma",
    description="Per axial slice of a T1/FLAIR/T1ce brain MRI: does it show a FLAIR abnormality "
    "(lower-grade glioma)?",
    class_names=tuple(CLASS_NAMES),
    input_channels=tuple(CHANNELS),
    input_size=INPUT_SIZE,
    item_axis="slice",
    target_layer=TARGET_LAYER,
    preprocessing_function="engine.tasks.glioma.preprocess.glioma_slices",
    calibration_data="validation patients",
    data_license=DATA_LICENSE,
    data_source="TCGA-LGG via TCIA; LGG segmentation dataset (Buda et al. 2019), resampled to 128 x 128",
)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light augmentation: random left-right flip, per-channel intensity scale (+-10%) and
    foreground shift (+-0.05); the black background stays black as it is at inference."""
    b, c = x.shape[:2]
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    scale = 1.0 + (torch.rand(b, c, 1, 1, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(b, c, 1, 1, generator=generator) - 0.5) * 0.1
    return x * scale + shift * (x > 0)


def epoch_score(network: nn.Module, val: SliceSet) -> EpochScore:
    """An epoch is judged by its validation NLL (lower is better); the AUC is recorded beside it."""
    logits, labels = network_logits(network, val.inputs), val.labels.numpy()
    val_nll = nll(logits, labels)
    val_auc = roc_auc(labels, softmax(logits)[:, 1])
    return EpochScore(val_nll, {"val_nll": val_nll, "val_auc": val_auc}, f"val NLL {val_nll:.3f}, val AUC {val_auc:.3f}")


def cam_localisation(bundle: Bundle, data_dir: Path, patients: tuple[str, ...], method: str = "gradcam") -> dict:
    """Where the abnormality-class map points on mask-positive slices of held-out patients.

    Returns:
        Mean share of positive map energy inside the mask, mean mask area share, the share of
        slices where energy exceeds area, the share whose map peak lies in the mask (pointing
        game, Zhang et al. ECCV 2016), and energy and area on each patient's largest-mask slice.
    """
    from engine.imaging import read_image

    energies, areas, top_energy, top_area, hits = [], [], [], [], []
    for patient in patients:
        volume = read_image(data_dir / patient)
        positive = np.flatnonzero(volume.labels.reshape(volume.n_slices, -1).any(axis=1))
        if positive.size == 0:
            continue
        maps = bundle.explain(volume, method=method, classes=[1], slices=positive)[0]
        pairs = [mask_energy(m, volume.labels[s]) for m, s in zip(maps, positive)]
        hits += [bool(volume.labels[s].flat[int(np.argmax(m))]) for m, s in zip(maps, positive)]
        energies += [e for e, _ in pairs]
        areas += [a for _, a in pairs]
        largest = int(np.argmax(volume.labels[positive].reshape(positive.size, -1).sum(axis=1)))
        top_energy.append(pairs[largest][0])
        top_area.append(pairs[largest][1])
    energies_a, areas_a = np.array(energies), np.array(areas)
    valid = ~np.isnan(energies_a)
    return {
        "method": method,
        "slices": int(energies_a.size),
        "slices_with_positive_map": int(valid.sum()),
        "mean_energy_inside_mask": float(np.mean(energies_a[valid])),
        "mean_mask_area_fraction": float(np.mean(areas_a[valid])),
        "share_energy_above_area": float(np.mean(energies_a[valid] > areas_a[valid])),
        "share_peak_inside_mask": float(np.mean(hits)),
        "largest_mask_slice_mean_energy": float(np.nanmean(top_energy)),
        "largest_mask_slice_mean_area": float(np.mean(top_area)),
    }


def train_glioma(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = 20,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    split: tuple[int, int, int] = DEFAULT_SPLIT,
    network_def: dict[str, Any] | None = None,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
) -> dict[str, Any]:
    """Train, calibrate, evaluate and write the glioma bundle to ``out_dir``.

    Args:
        data_dir: the ``glioma-lgg`` folder (one sub-folder per patient).
        out_dir: the bundle folder to write (created; files overwritten).
        epochs: passes over the training slices.
        seed: seeds the initial weights, batch order and augmentation.
        split_seed: seeds the patient split; kept apart from ``seed`` so that runs with different
            initialisations are compared on the same held-back patients.
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        split: numbers of train, validation and test patients.
        network_def: a ``monai.networks.nets`` config; the shipped ``NETWORK_DEF`` by default.
        batch_size: slices per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule (AdamW).

    Returns:
        Metrics: test and validation slice metrics, temperature, chosen epoch, history, CAM
        localisation on test patients, timings (wall and CPU), the split, and the bundle path.

    Raises:
        SalienceError: the data folder is missing or unreadable, or the split is too large.
    """
    run = RecipeRun(SPEC, network_def or NETWORK_DEF, FitSettings(epochs, seed, batch_size, learning_rate), split_seed, progress)
    data_dir = Path(data_dir)
    patients = split_patients(list_patients(data_dir), split, split_seed)
    params = dict(DEFAULT_PARAMS)
    run.progress.report(0.0, "reading patients")
    train, val, test = (load_slices(data_dir, part, INPUT_SIZE, params) for part in (patients.train, patients.val, patients.test))
    run.data_read()

    network = run.train(train.inputs, train.labels, lambda net: epoch_score(net, val), augment=augment)
    test_labels, val_labels = test.labels.numpy(), val.labels.numpy()
    calibration = run.calibrate(val.inputs, val_labels, test.inputs)
    test_ece, test_ece_uncalibrated = calibration.test_ece(test_labels)
    split_names = {"train": list(patients.train), "val": list(patients.val), "test": list(patients.test)}
    metadata = run.metadata(params, {"torch_threads": torch.get_num_threads()}, split=split_names)
    run.progress.report(0.92, "checking Grad-CAM on test patients")
    cam = cam_localisation(Bundle(path=Path(out_dir), metadata=metadata, network=network), data_dir, patients.test)
    metrics = {
        "test": binary_metrics(test_labels, calibration.test_probabilities()[:, 1]),
        "test_ece": test_ece,
        "test_ece_uncalibrated": test_ece_uncalibrated,
        "val": binary_metrics(val_labels, calibration.val_probabilities()[:, 1]),
        **run.fit_figures(),
        "cam_localisation": cam,
        **run.clock.phases(),
        "split": metadata["split"],
        "slices": {"train": len(train.labels), "val": len(val.labels), "test": len(test.labels)},
        "positive_slices": {"train": int(train.labels.sum()), "val": int(val.labels.sum()), "test": int(test.labels.sum())},
    }
    metadata["eval_metrics"] = {k: metrics[k] for k in ("test", "test_ece", "cam_localisation")}
    run.save(out_dir, metadata, metrics, lambda m: model_card(metadata, m, run.network_def))
    return metrics


def main(argv: list[str]) -> int:
    """``salience train glioma``: train and write the glioma bundle; returns the exit code."""
    parser = training_parser("glioma", __doc__.splitlines()[0], DEFAULT_DATA, "patient split")
    return run_training(parser.parse_args(argv), train_glioma, _summary)


def _summary(metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    return (
        f"wrote {metrics['bundle']}: test AUC {test['auc']:.3f}, accuracy {test['accuracy']:.3f}, "
        f"sensitivity {test['sensitivity']:.3f}, specificity {test['specificity']:.3f} "
        f"({test['n']} slices); trained in {metrics['seconds_training'] / 60:.1f} min"
    )
