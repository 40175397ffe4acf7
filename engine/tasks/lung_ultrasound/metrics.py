"""Multi-class metrics for frames and clips, with the counts behind them and honest intervals."""

from __future__ import annotations

import math

import numpy as np
from engine.training.evaluation import per_class_metrics, wilson_interval


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """Accuracy (argmax), per-class sensitivity, one-vs-rest AUC per class and their mean.

    Args:
        labels: ``(N,)`` true class indices.
        probabilities: ``(N, K)`` class probabilities.
        class_names: the ``K`` names.

    Returns:
        JSON-ready dict: ``n``, ``accuracy`` with its Wilson 95% interval and count, per class
        ``n``, ``sensitivity`` (with count) and ``auc``, ``macro_auc`` over classes whose AUC is
        defined, and the confusion matrix (rows true, columns predicted).
    """
    confusion, per_class = per_class_metrics(labels, probabilities, class_names)
    correct = int(np.trace(confusion))
    n = int(np.asarray(labels).size)
    aucs = [c["auc"] for c in per_class.values() if not math.isnan(c["auc"])]
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else math.nan,
        "accuracy_95ci": list(wilson_interval(correct, n)),
        "macro_auc": float(np.mean(aucs)) if aucs else math.nan,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def clip_verdicts(frame_probabilities: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """Each clip's verdict: the mean of its frames' probabilities.

    Args:
        frame_probabilities: ``(N, K)``.
        owners: ``(N,)`` clip index of each frame, in ``range(count)``.
        count: number of clips.

    Returns:
        ``(count, K)`` float64; NaN rows for clips without frames.
    """
    sums = np.zeros((count, frame_probabilities.shape[1]))
    np.add.at(sums, owners, frame_probabilities)
    frames = np.bincount(owners, minlength=count)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / frames
