"""What a CAM explains: a target turns the model's logits into the scores whose gradients we take.

A target is a callable from logits ``(B, K)`` to scores of shape ``(T, B)`` (one score per batch
item, for each of ``T`` rows) or ``(T,)`` (one score per row pooled over the batch, e.g. a clip
verdict over frames or a slide score over tiles). ``CamCapture`` takes the gradient of every row
in one batched backward pass. Per-item rows rely on batch items being independent in evaluation
mode (the gradient of ``sum_b score[t, b]`` with respect to item ``b``'s activation is the gradient
of ``score[t, b]``), which holds for classifiers whose normalisation layers use running statistics.

Each target also names the class behind each row (``classes``), so methods that need the
classifier's weights (CAM) can find them, and a short ``label`` for records and tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

POOLINGS = ("mean", "max")
SCORES = ("logit", "probability")


def _check_class(k: int, logits: torch.Tensor) -> None:
    if not 0 <= k < logits.shape[1]:
        raise ValueError(f"class {k} is out of range for a model with {logits.shape[1]} outputs")


class ClassLogit:
    """The pre-softmax score of one class, for every batch item (Grad-CAM's usual target).

    Args:
        k: the class index, or one class index per batch item (a sequence of length B) to explain a
            different class for each item in one pass.
    """

    def __init__(self, k: int | Sequence[int]):
        self.per_item = not isinstance(k, int)
        self.k = tuple(int(c) for c in k) if self.per_item else int(k)
        self.classes: tuple[int | None, ...] = (None,) if self.per_item else (self.k,)
        self.label = f"logit[{self.k}]"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``(1, B)``."""
        if not self.per_item:
            _check_class(self.k, logits)
            return logits[:, self.k].unsqueeze(0)
        if len(self.k) != logits.shape[0]:
            raise ValueError(f"{len(self.k)} per-item classes for a batch of {logits.shape[0]}")
        for k in self.k:
            _check_class(k, logits)
        index = torch.tensor(self.k, device=logits.device).unsqueeze(1)
        return logits.gather(1, index).T


class ClassLogits:
    """Several class logits at once: row ``t`` is class ``classes[t]`` for every batch item.

    This is what ``CamCapture.run(x, classes=...)`` uses: one backward for all classes.

    Args:
        classes: the class indices, one per row.
    """

    def __init__(self, classes: Sequence[int]):
        self.classes: tuple[int | None, ...] = tuple(int(c) for c in classes)
        self.label = f"logits{list(self.classes)}"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``(T, B)``."""
        for k in self.classes:
            _check_class(k, logits)
        return logits[:, list(self.classes)].T


class ClassProbability:
    """The softmax probability of one class, for every batch item.

    Gradients of a probability mix in the other classes (``dp_k = p_k (dz_k - sum_j p_j dz_j)``)
    and vanish when the model is confident; use it to explain "why this probability", not "where
    is the class evidence" (that is ``ClassLogit``).

    Args:
        k: the class index.
    """

    def __init__(self, k: int):
        self.k = int(k)
        self.classes: tuple[int | None, ...] = (self.k,)
        self.label = f"probability[{self.k}]"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``(1, B)``."""
        _check_class(self.k, logits)
        return torch.softmax(logits, dim=1)[:, self.k].unsqueeze(0)


class ClassProbabilities(ClassLogits):
    """Several class probabilities at once: row ``t`` is ``softmax(logits)[:, classes[t]]``.

    The probability counterpart of ``ClassLogits`` (one backward for all classes). A clip verdict
    that is the mean of its frames' probabilities has, frame by frame, exactly these gradients
    divided by the number of frames; a slide score that is the mean tile probability likewise.

    Args:
        classes: the class indices, one per row.
    """

    def __init__(self, classes: Sequence[int]):
        super().__init__(classes)
        self.label = f"probabilities{list(self.classes)}"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``(T, B)``."""
        return super().__call__(torch.softmax(logits, dim=1))


class _PooledScore:
    """One score for class ``k`` pooled over the whole batch (frames of a clip, tiles of a slide)."""

    unit = "items"

    def __init__(self, k: int, reduce: str = "mean", score: str = "logit"):
        if reduce not in POOLINGS:
            raise ValueError(f"reduce must be one of {POOLINGS}, not {reduce!r}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, not {score!r}")
        self.k = int(k)
        self.reduce = reduce
        self.score = score
        self.classes: tuple[int | None, ...] = (self.k,)
        self.label = f"{self.unit} {reduce} {score}[{self.k}]"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``(1,)``: the pooled score of class ``k`` over the batch."""
        _check_class(self.k, logits)
        per_item = logits if self.score == "logit" else torch.softmax(logits, dim=1)
        column = per_item[:, self.k]
        pooled = column.mean() if self.reduce == "mean" else column.max()
        return pooled.unsqueeze(0)


class ClipVerdict(_PooledScore):
    """A clip-level verdict for class ``k`` from its frames, batched as B.

    With ``reduce="mean"`` every frame's map is its share of the clip's mean score (the frame maps
    are the frame Grad-CAMs divided by the number of frames); with ``"max"`` only the frame that
    decides the verdict gets a non-zero map.

    Args:
        k: the class index.
        reduce: ``"mean"`` or ``"max"`` over frames.
        score: ``"logit"`` or ``"probability"`` per frame before pooling.
    """

    unit = "clip"


class SlideScore(_PooledScore):
    """A slide-level score for class ``k`` from its tiles, batched as B.

    Args:
        k: the class index.
        reduce: ``"mean"`` or ``"max"`` over tiles.
        score: ``"logit"`` or ``"probability"`` per tile before pooling.
    """

    unit = "slide"


class Target(Protocol):
    """What ``CamCapture.run`` accepts as ``target``: any callable with these two attributes.

    Attributes:
        classes: the class behind each score row (None where a row mixes classes per item).
        label: a short name for records and tables.
    """

    classes: tuple[int | None, ...]
    label: str

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores ``(T, B)`` per item or ``(T,)`` pooled over the batch, from logits ``(B, K)``."""
        ...
