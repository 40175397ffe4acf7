"""``salience evaluate glioma-grade``: the shipped grade model measured again on its held-back
patients, and its model card written from that measurement.

The test patients are the ones the bundle's ``metadata.json`` split records. Each patient's volume
is read as training read it (``engine.imaging.read_image``, the T1, FLAIR and T1ce sequences) and
run through ``Bundle.predict``, the calibrated prediction the viewer shows (softmax of the logits
over the bundle's temperature; Guo et al., "On Calibration of Modern Neural Networks", ICML 2017).
Those probabilities must equal the ones training recorded (``test_predictions`` in
``docs/training_metrics.json``, to ``PREDICTION_TOLERANCE``); otherwise the weights, the data or
the preprocessing changed since training and the evaluation refuses, since the card would pair
figures of one model with the seed range of another.

From the recomputed probabilities: ``patient_metrics`` (AUC with its bootstrap CI, accuracy,
sensitivity and specificity with Wilson CIs), the expected calibration error before and after the
temperature, and the Grad-CAM check against the FLAIR masks (``cam_localisation``). The card is the
training card (``model_card``) with those test figures replaced; the seed range, validation figures,
history and timings stay the training run's, and the card says so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from engine.errors import SalienceError
from engine.imaging import read_image
from engine.models.bundle import Bundle, load_bundle
from engine.progress import NullProgress, Progress, ScaledProgress
from engine.tasks.glioma.data import CHANNELS
from engine.tasks.glioma_grade.data import CLASS_NAMES, GRADE_FILE, patient_of, read_grades
from engine.tasks.glioma_grade.localisation import cam_localisation
from engine.tasks.glioma_grade.model_card import model_card
from engine.training.evaluate import OwnEvaluation, held_back_part, write_card
from engine.training.evaluation import expected_calibration_error
from engine.training.loop import TRAINING_METRICS_FILE, softmax

TASK = "glioma-grade"
#: Largest difference allowed between a recomputed p(grade III) and the one training recorded
#: (which it rounded to 4 decimals, so up to 5e-5 of this is rounding).
PREDICTION_TOLERANCE = 1e-4
#: The metrics this evaluation recomputes; the card takes every other figure from training.
RECOMPUTED = ("test", "test_ece", "test_ece_uncalibrated", "cam_localisation", "test_predictions")


def training_metrics(bundle: Bundle) -> dict[str, Any]:
    """The bundle's ``docs/training_metrics.json``.

    Raises:
        SalienceError: the file is missing, unreadable or lacks the recorded test predictions.
    """
    path = bundle.path / TRAINING_METRICS_FILE
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SalienceError(f"{path}: cannot read the training metrics ({exc})") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test_predictions"), list):
        raise SalienceError(f"{path}: records no test_predictions to check the recomputation against")
    return metrics


def held_back_labels(data_dir: Path, patients: list[str]) -> np.ndarray:
    """Each held-back patient's grade class from ``data.csv``.

    Raises:
        SalienceError: a patient folder is missing or its patient has no grade.
    """
    grades = read_grades(data_dir / GRADE_FILE)
    labels = []
    for patient in patients:
        if not (data_dir / patient).is_dir():
            raise SalienceError(f"{data_dir / patient}: held-back patient folder not found")
        grade = grades.get(patient_of(patient))
        if grade is None:
            raise SalienceError(f"{data_dir / GRADE_FILE}: no grade for held-back patient {patient}")
        labels.append(grade)
    return np.asarray(labels, dtype=np.int64)


def predict_patients(bundle: Bundle, data_dir: Path, patients: list[str], progress: Progress) -> np.ndarray:
    """``(N, K)`` float32 logits of each patient's whole volume, through ``Bundle.predict``.

    Raises:
        SalienceError: a volume lacks one of the sequences.
    """
    logits = []
    for i, patient in enumerate(patients):
        progress.report(i / len(patients), f"predicting {patient}")
        volume = read_image(data_dir / patient)
        missing = [c for c in CHANNELS if c not in volume.channel_names]
        if missing:
            raise SalienceError(f"{volume.source}: missing sequences {missing}")
        logits.append(bundle.predict(volume).logits[0])
    return np.asarray(logits, dtype=np.float32)


def check_against_training(patients: list[str], p_grade_iii: np.ndarray, recorded: list[dict[str, Any]], source: Path) -> float:
    """The largest difference between recomputed and recorded p(grade III).

    Raises:
        SalienceError: training recorded other patients, or a probability differs by more than
            ``PREDICTION_TOLERANCE``.
    """
    names = [row.get("patient") for row in recorded]
    if names != patients:
        raise SalienceError(f"{source}: test_predictions name other patients than the bundle's test split")
    differences = np.abs(p_grade_iii - np.array([float(row["p_grade_iii"]) for row in recorded]))
    worst = int(np.argmax(differences))
    if differences[worst] > PREDICTION_TOLERANCE:
        raise SalienceError(
            f"{source}: recomputed p(grade III) of {patients[worst]} is {p_grade_iii[worst]:.4f}, training recorded "
            f"{recorded[worst]['p_grade_iii']:.4f}; the weights, data or preprocessing changed since training"
        )
    return float(differences[worst])


def card_metrics(training: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The training metrics with the test figures replaced by the recomputed ones."""
    return {**training, **{key: report[key] for key in RECOMPUTED}}


def evaluate(args: argparse.Namespace, progress: Progress | None = None) -> dict[str, Any]:
    """Measure ``args.bundle`` on its held-back test patients and write its card; returns the report.

    Raises:
        SalienceError: a bundle of another task, without a split or training metrics, a missing
            patient folder or grade, or probabilities that differ from training's.
    """
    import torch

    from engine.tasks.glioma_grade.train import patient_metrics

    torch.set_num_threads(args.threads)
    progress = progress or NullProgress()
    bundle = load_bundle(args.bundle)
    if bundle.task != TASK:
        raise SalienceError(f"bundle {bundle.path} is a {bundle.task!r} model, not {TASK!r}")
    patients = held_back_part(bundle, "test")
    training = training_metrics(bundle)
    data_dir = Path(args.data)
    labels = held_back_labels(data_dir, patients)
    logits = predict_patients(bundle, data_dir, patients, ScaledProgress(progress, 0.0, 0.5))
    probabilities = softmax(logits, bundle.temperature)
    difference = check_against_training(patients, probabilities[:, 1], training["test_predictions"],
                                         bundle.path / TRAINING_METRICS_FILE)
    progress.report(0.5, "checking Grad-CAM on test patients")
    report: dict[str, Any] = {
        "task": TASK,
        "bundle": str(bundle.path),
        "weights_sha256": bundle.weights_sha256,
        "data": str(data_dir),
        "part": "test",
        "temperature": bundle.temperature,
        "test": patient_metrics(labels, probabilities[:, 1]),
        "test_ece": expected_calibration_error(probabilities, labels),
        "test_ece_uncalibrated": expected_calibration_error(softmax(logits, 1.0), labels),
        "cam_localisation": cam_localisation(bundle, data_dir, patients),
        "test_predictions": [
            {"patient": f, "grade": CLASS_NAMES[int(y)], "p_grade_iii": round(float(p), 4)}
            for f, y, p in zip(patients, labels, probabilities[:, 1])
        ],
        "max_difference_from_training": difference,
        "from_training": sorted(set(training) - set(RECOMPUTED)),
    }

    def card(metadata: dict[str, Any], network_def: dict[str, Any], measured: dict[str, Any], _: Any) -> str:
        return model_card(metadata, card_metrics(training, measured), network_def, evaluated=True)

    report["card"] = str(write_card(bundle, SimpleNamespace(model_card=card), report, args.out))
    progress.report(1.0, "card written")
    return report


def parser() -> argparse.ArgumentParser:
    """``salience evaluate glioma-grade`` options."""
    from engine.tasks.glioma_grade.train import DEFAULT_DATA

    p = argparse.ArgumentParser(
        prog=f"salience evaluate {TASK}",
        description="Measure a glioma-grade bundle on its held-back test patients (the probabilities must equal "
        "training's), print the report as JSON and write the model card.",
    )
    p.add_argument("--bundle", default=TASK, help="bundle name or folder (default: the shipped %(default)s)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="glioma-lgg folder (default: %(default)s)")
    p.add_argument("--out", type=Path, help="where to write the card (default: the bundle's docs/README.md, with "
                   "docs/evaluation.json beside it)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def main(argv: list[str]) -> dict[str, Any]:
    """``salience evaluate glioma-grade [options]``: the report, after writing the card."""
    from engine.training.cli import PrintProgress

    return evaluate(parser().parse_args(argv), PrintProgress())


#: What the task registers as its ``salience evaluate`` (``TaskSpec.evaluation``).
EVALUATION = OwnEvaluation(main=main)
