"""Which of a model's classes a reviewer looks at first."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: Names of classes that mean "nothing found". Word boundaries matter: "abnormality" contains "normal".
_NO_FINDING = re.compile(r"\b(normal|healthy|background|negative|benign)\b|^(no|non)[ _-]", re.IGNORECASE)


def is_no_finding(name: str) -> bool:
    """True for class names such as "normal", "healthy", "no FLAIR abnormality"."""
    return bool(_NO_FINDING.search(name))


def finding_class(class_names: Sequence[str], probabilities: np.ndarray) -> int:
    """The class to show (or explain) first: the most likely finding anywhere in the image.

    The class with the highest per-item probability anywhere (any slice or frame), ignoring
    classes whose names mean "nothing found" unless every class is such a class. A reviewer
    wants to see where the model sees the finding, even when most slices are normal.

    Args:
        class_names: the model's classes, in output order.
        probabilities: ``(N, K)`` per-item probabilities.
    """
    peaks = np.asarray(probabilities, dtype=float).reshape(-1, len(class_names)).max(axis=0)
    candidates = [k for k, name in enumerate(class_names) if not is_no_finding(name)]
    candidates = candidates or list(range(len(class_names)))
    return max(candidates, key=lambda k: peaks[k])
