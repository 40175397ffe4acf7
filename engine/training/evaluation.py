"""Item-level metrics, temperature calibration and a CAM localisation check for a bundle."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from scipy.stats import norm, rankdata


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank statistic (ties count one half).

    Hanley and McNeil, "The meaning and use of the area under a ROC curve", Radiology 1982.

    Returns:
        The AUC, or NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson, JASA 1927), good for small ``n``.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when ``n`` is 0.
    """
    if n == 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float | int]:
    """AUC, accuracy, sensitivity and specificity at ``threshold``, with the counts behind them."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & labels).sum())
    fn = int((~predicted & labels).sum())
    tn = int((~predicted & ~labels).sum())
    fp = int((predicted & ~labels).sum())
    n = tp + fn + tn + fp
    return {
        "auc": roc_auc(labels, scores),
        "accuracy": (tp + tn) / n if n else math.nan,
        "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
        "specificity": tn / (tn + fp) if tn + fp else math.nan,
        "threshold": threshold,
        "n": n,
        "positives": tp + fn,
        "negatives": tn + fp,
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
    }


def per_class_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """The confusion matrix of argmax predictions and each class's counts, sensitivity and AUC.

    Args:
        labels: ``(N,)`` true class indices.
        probabilities: ``(N, K)`` class probabilities.
        class_names: the ``K`` names.

    Returns:
        ``(confusion, per_class)``: ``confusion[i][j]`` counts items of true class i predicted as
        j; ``per_class[name]`` holds ``n``, ``correct``, ``sensitivity`` (NaN without items) and
        the one-vs-rest ``auc`` (``roc_auc``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, probabilities.argmax(axis=1)), 1)
    per_class = {}
    for c, name in enumerate(class_names):
        members, hits = int(confusion[c].sum()), int(confusion[c, c])
        per_class[name] = {
            "n": members,
            "correct": hits,
            "sensitivity": hits / members if members else math.nan,
            "auc": roc_auc(labels == c, probabilities[:, c]),
        }
    return confusion, per_class


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits / temperature)``."""
    log_p = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-log_p[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the validation NLL (searched over log T in [-3, 3]).

    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """
    result = minimize_scalar(
        lambda log_t: nll(logits, labels, math.exp(log_t)), bounds=(-3.0, 3.0), method="bounded"
    )
    return float(math.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the predicted class's confidence over ``bins`` equal-width bins (Guo et al. 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def mask_energy(cam: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Share of a map's positive energy that falls inside a mask, and the mask's area share.

    The energy-based pointing game of Wang et al., "Score-CAM", CVPR Workshops 2020: a map that
    points into the mask has an energy share well above the mask's share of the image area.

    Args:
        cam: ``(H, W)`` raw signed map; only its positive part counts as evidence.
        mask: ``(H, W)`` binary mask on the same grid.

    Returns:
        ``(energy_inside, area_inside)`` in [0, 1]; energy is NaN for a map with no positive part.
    """
    positive = np.clip(cam, 0, None)
    inside = np.asarray(mask) > 0
    total = float(positive.sum())
    energy = float(positive[inside].sum()) / total if total > 0 else math.nan
    return energy, float(inside.mean())
