"""Train the shipped glioma bundle: does an axial MRI slice show a FLAIR abnormality?

Input per slice: T1, FLAIR and post-contrast T1 as three channels (``glioma_slices``, the same
preprocessing ``Bundle.preprocess`` runs), with everything outside the brain set to 0 so the
head's bright outline cannot decide. Label: any voxel of the patient's FLAIR abnormality mask on
the slice. Patients, never slices, are split into train, validation and test parts.

The network is a MONAI DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR
2017) with two dense blocks: its last feature map is 16 x 16 for a 128 x 128 slice. Training adds
to the cross-entropy a penalty on the abnormality evidence that falls outside the training
patients' masks (``engine.training.guidance``), then centres the classifier so Grad-CAM of the
abnormality class is that evidence map. The validation patients pick the epoch and fit a softmax
temperature; the test patients are measured once, by ``salience evaluate``'s code, which writes
the model card.

Reproduce the shipped weights (same library versions) with::

    salience train glioma --data ../shared/data/glioma-lgg --out engine/bundles/glioma --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import SalienceError
from engine.models.bundle import Bundle, load_bundle
from engine.progress import Progress, ScaledProgress
from engine.tasks.glioma.augment import AUGMENTATIONS, IMAGE_CHANNELS, augment  # noqa: F401 - augment: the 1.x name
from engine.tasks.glioma.data import CHANNELS, SliceSet, list_patients, load_slices, read_case, split_patients
from engine.tasks.glioma.model_card import model_card
from engine.tasks.glioma.preprocess import DEFAULT_PARAMS
from engine.training.bundle_writer import BundleSpec
from engine.training.cli import SHARED_DATA, run_training, training_parser
from engine.training.evaluate import TaskEvaluation, evaluate_part, write_report
from engine.training.evaluation import binary_metrics, nll, roc_auc
from engine.training.guidance import GuidedObjective, centre_logits
from engine.training.loop import EpochScore, FitSettings, RecipeRun, network_logits, softmax

#: The networks ``--network`` offers. ``densenet-2block`` (shipped): two dense blocks, a 16 x 16
#: last feature map for a 128 x 128 slice. ``densenet-1block``: the glioma 1.x network, one block,
#: 32 x 32.
NETWORKS: dict[str, dict[str, Any]] = {
    "densenet-2block": {
        "_target_": "monai.networks.nets.DenseNet",
        "spatial_dims": 2,
        "in_channels": 3,
        "out_channels": 2,
        "init_features": 24,
        "growth_rate": 16,
        "block_config": [6, 12],
        "bn_size": 2,
    },
    "densenet-1block": {
        "_target_": "monai.networks.nets.DenseNet",
        "spatial_dims": 2,
        "in_channels": 3,
        "out_channels": 2,
        "init_features": 16,
        "growth_rate": 16,
        "block_config": [8],
        "bn_size": 2,
    },
}
DEFAULT_NETWORK = "densenet-2block"
#: The glioma 1.x name of the (then only) network.
NETWORK_DEF = NETWORKS[DEFAULT_NETWORK]
#: The last activation before global pooling, in every DenseNet of ``NETWORKS``.
TARGET_LAYER = "class_layers.relu"
CLASS_NAMES = ["no FLAIR abnormality", "FLAIR abnormality"]
INPUT_SIZE = (128, 128)
DEFAULT_SPLIT = (55, 12, 18)
DEFAULT_EPOCHS = 14
#: Recipe defaults of the options ``--augment``, ``--brain-margin``, ``--guidance``, ``--class-balance``.
#: 2.1.0 weighs the loss by class (issue 11: chosen on the validation patients, ``selection.RULE``).
DEFAULT_AUGMENT = "strong"
DEFAULT_BRAIN_MARGIN = 6
DEFAULT_GUIDANCE = 0.5
DEFAULT_CLASS_BALANCE = True
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
    version="2.1.0",
)
#: How ``salience evaluate glioma`` reads held-back patients and writes the card.
EVALUATION = TaskEvaluation(default_data=DEFAULT_DATA, read_case=read_case, positive_class=1, model_card=model_card)


def epoch_score(network: nn.Module, val: SliceSet) -> EpochScore:
    """An epoch is judged by its validation NLL (lower is better); the AUC is recorded beside it."""
    logits, labels = network_logits(network, val.inputs), val.labels.numpy()
    val_nll = nll(logits, labels)
    val_auc = roc_auc(labels, softmax(logits)[:, 1])
    return EpochScore(val_nll, {"val_nll": val_nll, "val_auc": val_auc}, f"val NLL {val_nll:.3f}, val AUC {val_auc:.3f}")


def class_weights_of(labels: torch.Tensor) -> torch.Tensor:
    """Inverse class frequencies, scaled so a balanced set would weigh every item 1."""
    counts = torch.bincount(labels, minlength=len(CLASS_NAMES)).float()
    return counts.sum() / (len(CLASS_NAMES) * counts.clamp(min=1))


def training_options(network: str, augment_name: str, brain_margin: int, guidance: float, class_balance: bool) -> dict[str, Any]:
    """The recipe options a bundle records (``training.options``), as ``salience train glioma`` spells them."""
    return {"network": network, "augment": augment_name, "brain_margin": brain_margin, "guidance": guidance,
            "class_balance": class_balance}


def train_glioma(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    split: tuple[int, int, int] = DEFAULT_SPLIT,
    network: str = DEFAULT_NETWORK,
    network_def: dict[str, Any] | None = None,
    augment_name: str = DEFAULT_AUGMENT,
    brain_margin: int = DEFAULT_BRAIN_MARGIN,
    guidance: float = DEFAULT_GUIDANCE,
    class_balance: bool = DEFAULT_CLASS_BALANCE,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
) -> dict[str, Any]:
    """Train, calibrate and write the glioma bundle to ``out_dir``, with its card from the test patients.

    Args:
        data_dir: the ``glioma-lgg`` folder (one sub-folder per patient).
        out_dir: the bundle folder to write (created; files overwritten).
        epochs: passes over the training slices.
        seed: seeds the initial weights, batch order and augmentation.
        split_seed: seeds the patient split; kept apart from ``seed`` so that runs with different
            initialisations are compared on the same held-back patients.
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        split: numbers of train, validation and test patients.
        network: a name from ``NETWORKS``.
        network_def: a ``monai.networks.nets`` config with ``TARGET_LAYER`` before a pooling and
            linear head, used instead of ``network`` (tests use tiny ones).
        augment_name: a name from ``AUGMENTATIONS``.
        brain_margin: pixels peeled off the head (``brain_region``); 0 keeps the whole head.
        guidance: weight of the map-guidance penalty (``GuidedObjective``); 0 trains on the
            cross-entropy alone.
        class_balance: weigh the cross-entropy (and the guided objective's) by inverse class
            frequency of the training slices.
        batch_size: slices per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule (AdamW).

    Returns:
        Metrics: test and validation slice metrics, temperature, chosen epoch, history, the
        held-back report (``evaluation``), timings (wall and CPU), the split, and the bundle path.

    Raises:
        SalienceError: the data folder is missing or unreadable, the split is too large, or an
            unknown network or augmentation.
    """
    if network_def is None and network not in NETWORKS:
        raise SalienceError(f"unknown glioma network {network!r}; known: {', '.join(NETWORKS)}")
    if augment_name not in AUGMENTATIONS:
        raise SalienceError(f"unknown augmentation {augment_name!r}; known: {', '.join(AUGMENTATIONS)}")
    settings = FitSettings(epochs, seed, batch_size, learning_rate)
    run = RecipeRun(SPEC, network_def or NETWORKS[network], settings, split_seed, progress)
    data_dir = Path(data_dir)
    patients = split_patients(list_patients(data_dir), split, split_seed)
    params = {**DEFAULT_PARAMS, "brain_margin": int(brain_margin)}
    run.progress.report(0.0, "reading patients")
    train, val, test = (load_slices(data_dir, part, INPUT_SIZE, params) for part in (patients.train, patients.val, patients.test))
    run.data_read()

    weights = class_weights_of(train.labels) if class_balance else None
    augment_batch, augmentation = AUGMENTATIONS[augment_name]
    if guidance > 0:
        inputs = torch.cat([train.inputs, train.masks[:, None].to(train.inputs.dtype)], dim=1)
        objective = GuidedObjective(TARGET_LAYER, IMAGE_CHANNELS, guidance, class_weights=weights)
    else:
        inputs, objective = train.inputs, None
    trained = run.train(inputs, train.labels, lambda net: epoch_score(net, val), augment=augment_batch,
                        class_weights=weights, objective=objective)
    del inputs
    centre_logits(trained)
    test_labels, val_labels = test.labels.numpy(), val.labels.numpy()
    calibration = run.calibrate(val.inputs, val_labels, test.inputs)
    split_names = {"train": list(patients.train), "val": list(patients.val), "test": list(patients.test)}
    details = {
        "torch_threads": torch.get_num_threads(),
        "options": training_options("custom" if network_def else network, augment_name, int(brain_margin), guidance, class_balance),
        "augmentation": augmentation,
        "logits_centred": True,
    }
    if guidance > 0:
        details["cam_guidance"] = (
            f"cross-entropy + {guidance} x the share of the abnormality evidence (at `{TARGET_LAYER}`) outside "
            "the training patient's FLAIR mask widened by one cell, on abnormal slices"
        )
    if weights is not None:
        details["class_weights"] = [round(float(w), 4) for w in weights]
    metadata = run.metadata(params, details, split=split_names)
    run.progress.report(0.92, "measuring the test patients")
    report = evaluate_part(
        Bundle(path=Path(out_dir), metadata=metadata, network=trained), EVALUATION, data_dir, "test", "gradcam",
        ScaledProgress(run.progress, 0.92, 0.99),
    )
    metrics = {
        "test": binary_metrics(test_labels, calibration.test_probabilities()[:, 1]),
        "val": binary_metrics(val_labels, calibration.val_probabilities()[:, 1]),
        **run.fit_figures(),
        **run.clock.phases(),
        "split": metadata["split"],
        "slices": {"train": len(train.labels), "val": len(val.labels), "test": len(test.labels)},
        "positive_slices": {"train": int(train.labels.sum()), "val": int(val.labels.sum()), "test": int(test.labels.sum())},
    }
    metadata["eval_metrics"] = {
        "part": "test",
        **{key: report[key] for key in ("auc", "accuracy", "sensitivity", "specificity", "calibration")},
        "pointing_game": report["localisation"]["pointing_game"],
        "energy_ratio": report["localisation"]["energy_ratio"],
    }
    out = run.save(out_dir, metadata, metrics, lambda m: model_card(metadata, run.network_def, report, m))
    write_report(out, {**report, "weights_sha256": load_bundle(out).weights_sha256})
    metrics["evaluation"] = report
    return metrics


def main(argv: list[str]) -> int:
    """``salience train glioma``: train and write the glioma bundle; returns the exit code."""
    parser = training_parser("glioma", __doc__.splitlines()[0], DEFAULT_DATA, "patient split")
    parser.set_defaults(epochs=DEFAULT_EPOCHS)
    parser.add_argument("--network", choices=list(NETWORKS), default=DEFAULT_NETWORK, help="default: %(default)s")
    parser.add_argument("--augment", choices=list(AUGMENTATIONS), default=DEFAULT_AUGMENT, help="default: %(default)s")
    parser.add_argument("--brain-margin", type=int, default=DEFAULT_BRAIN_MARGIN,
                        help="pixels peeled off the head; 0 keeps the whole head (default: %(default)s)")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help="weight of the penalty on evidence outside the training masks; 0: none (default: %(default)s)")
    parser.add_argument("--class-balance", action=argparse.BooleanOptionalAction, default=DEFAULT_CLASS_BALANCE,
                        help="weigh the loss by inverse class frequency (default: %(default)s)")
    args = parser.parse_args(argv)
    return run_training(
        args, train_glioma, _summary, network=args.network, augment_name=args.augment,
        brain_margin=args.brain_margin, guidance=args.guidance, class_balance=args.class_balance,
    )


def _summary(metrics: dict[str, Any]) -> str:
    test, report = metrics["test"], metrics["evaluation"]
    return (
        f"wrote {metrics['bundle']}: test AUC {test['auc']:.3f}, accuracy {test['accuracy']:.3f}, "
        f"sensitivity {test['sensitivity']:.3f}, specificity {test['specificity']:.3f} ({test['n']} slices), "
        f"pointing game {report['localisation']['pointing_game']['estimate']:.3f}; "
        f"trained in {metrics['seconds_training'] / 60:.1f} min"
    )
