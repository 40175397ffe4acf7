"""Which of a model's classes a reviewer looks at first."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from engine.errors import SalienceError

#: Names of classes that mean "nothing found". Word boundaries matter: "abnormality" contains "normal".
_NO_FINDING = re.compile(r"\b(normal|healthy|background|negative|benign)\b|^(no|non)[ _-]", re.IGNORECASE)


def is_no_finding(name: str) -> bool:
    """True for class names such as "normal", "healthy", "no FLAIR abnormality"."""
    return bool(_NO_FINDING.search(name))


def finding_class(class_names: Sequence[str], probabilities: np.ndarray) -> int:
    """The class to show (or explain) first: the most likely finding anywhere in the image.

    Among the finding classes (names that do not mean "nothing found") that the model ranks first
    on at least one item (slice, frame, patch), the one with the highest per-item probability
    anywhere: a reviewer wants to see where the model sees the finding, even when most slices
    are normal. When no finding is ranked first anywhere, the model's own answer is shown instead
    (the class with the highest probability anywhere), never a finding it gives 1e-9.

    Args:
        class_names: the model's classes, in output order.
        probabilities: ``(N, K)`` per-item probabilities.
    """
    table = np.asarray(probabilities, dtype=float).reshape(-1, len(class_names))
    peaks = table.max(axis=0)
    ranked_first = set(np.argmax(table, axis=1).tolist())
    findings = [k for k, name in enumerate(class_names) if not is_no_finding(name) and k in ranked_first]
    candidates = findings or list(range(len(class_names)))
    return max(candidates, key=lambda k: peaks[k])


def class_index(class_names: Sequence[str], wanted: str | None, probabilities: np.ndarray | None = None) -> int:
    """The class a user asked for, by name or index, or (``wanted`` None) the one to show first.

    Args:
        class_names: the model's classes, in output order.
        wanted: a class name, a class index as text ("0"), or None.
        probabilities: ``(N, K)`` per-item probabilities; with ``wanted`` None the class is
            ``finding_class`` of them (a clip passes its verdict as one row: its most likely class).

    Returns:
        The class index.

    Raises:
        SalienceError: ``wanted`` names no class of the model.
        ValueError: ``wanted`` is None and no probabilities are given.
    """
    names = list(class_names)
    if wanted is None:
        if probabilities is None:
            raise ValueError("no class asked for and no probabilities to choose one from")
        return finding_class(names, probabilities)
    if wanted in names:
        return names.index(wanted)
    if wanted.isdigit() and int(wanted) < len(names):
        return int(wanted)
    raise SalienceError(f"class {wanted!r} is not one of {names}")
