"""Perturbation CAMs: Score-CAM and occlusion sensitivity.

Both methods explain by changing the input and watching the class score, so they need no
gradients. Both are dimension-agnostic: the input is ``(B, C, *spatial)`` with 2-D, 3-D or 2-D+time
spatial axes, and both return raw, signed maps ``(B, *spatial)`` at the input's resolution.

Masked and occluded inputs are forwarded in chunks. A chunk holds at most ``chunk_size`` inputs and
at most ``max_batch_bytes`` bytes of perturbed input (and, for Score-CAM, of masks), so memory stays
bounded whatever the number of channels or patches; a single input larger than the bound is still
forwarded alone. Long runs report their progress and stop with ``Cancelled`` when asked.

Every method in ``PERTURBATION_METHODS`` has the signature
``method(model, x, target=None, target_layer=None, *, progress=None, **params)`` where ``target``
is a class index, one class index per batch item, or None for the predicted class.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from engine.explain.capture import CamCapture
from engine.explain.methods import upsample
from engine.progress import NullProgress, Progress, check_cancelled

#: A class index, one per batch item, None (the predicted class), or a target object of
#: ``engine.explain.targets`` whose ``classes`` name one class (e.g. ``ClassLogit(2)``).
Target = int | Sequence[int] | torch.Tensor | object | None

#: Default bound on the bytes of perturbed inputs held at once (256 MiB).
DEFAULT_MAX_BATCH_BYTES = 256 * 2**20


def class_indices(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """One class index per batch item, as a ``(B,)`` long tensor.

    Args:
        target: an int (same class for every item), a sequence or tensor of ``B`` ints, None
            for each item's predicted class (argmax of ``logits``), or a target object whose
            ``classes`` attribute names one class (per-item targets give their ``k`` tuple).
        logits: ``(B, K)`` model output on the unperturbed input.

    Raises:
        ValueError: when the number of indices differs from the batch size or one is out of range.
    """
    batch, n_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if hasattr(target, "classes"):
        named = tuple(target.classes)
        if len(named) == 1 and isinstance(named[0], int):
            target = named[0]
        elif isinstance(getattr(target, "k", None), tuple):
            target = target.k
        else:
            raise ValueError(f"target {getattr(target, 'label', target)!r} does not name one class per item")
    if isinstance(target, int):
        indices = torch.full((batch,), target, dtype=torch.long)
    else:
        indices = torch.as_tensor(target, dtype=torch.long).reshape(-1)
        if indices.numel() != batch:
            raise ValueError(f"target has {indices.numel()} class indices for a batch of {batch}")
    if bool(((indices < 0) | (indices >= n_classes)).any()):
        raise ValueError(f"target {indices.tolist()} out of range for a model with {n_classes} classes")
    return indices.to(logits.device)


def class_scores(logits: torch.Tensor, classes: torch.Tensor, score: str) -> torch.Tensor:
    """The ``(N,)`` score of ``classes[i]`` in row ``i``: its softmax probability or its logit."""
    if score == "softmax":
        values = logits.softmax(dim=1)
    elif score == "logit":
        values = logits
    else:
        raise ValueError(f"score must be 'softmax' or 'logit', got {score!r}")
    return values.gather(1, classes.reshape(-1, 1)).squeeze(1)


def items_per_chunk(item_elements: int, dtype: torch.dtype, chunk_size: int, max_batch_bytes: int) -> int:
    """How many perturbed inputs of ``item_elements`` values fit in one forward chunk (at least 1)."""
    if chunk_size < 1 or max_batch_bytes < 1:
        raise ValueError(f"chunk_size and max_batch_bytes must be positive, got {chunk_size}, {max_batch_bytes}")
    item_bytes = item_elements * torch.empty((), dtype=dtype).element_size()
    return max(1, min(chunk_size, max_batch_bytes // item_bytes))


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _chunks(total: int, size: int, device: torch.device | None = None) -> Iterator[torch.Tensor]:
    for start in range(0, total, size):
        yield torch.arange(start, min(start + size, total), device=device)


def _minmax_per_item(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``(*spatial)`` item of ``(N, *spatial)`` to [0, 1]; a constant item becomes 0."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), 0.0)
    return scaled.reshape(maps.shape)


def score_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    target_layer: str | None = None,
    *,
    baseline: float = 0.0,
    score: str = "softmax",
    chunk_size: int = 32,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Score-CAM: each activation channel, used as a mask, is weighted by the score it keeps.

    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", CVPR Workshops 2020. The target layer is captured once (no gradients). Each
    channel ``A_k`` is upsampled to the input and min-max scaled to a mask ``H_k`` in [0, 1]; the
    masked input ``baseline + (x - baseline) * H_k`` is forwarded, and the channel's weight is the
    increase of the class score over the all-baseline input. The map is ``sum_k w_k A_k`` at the
    layer's resolution, upsampled to the input, without the paper's ReLU (see ``rectify``).

    Args:
        model: classifier returning ``(B, K)`` logits.
        x: input ``(B, C, *spatial)``.
        target: class index, per-item class indices, or None for the predicted class.
        target_layer: dotted path of the layer whose channels become masks (required).
        baseline: value the input fades to where a mask is 0 (the paper uses 0).
        score: "softmax" (the paper's probability) or "logit".
        chunk_size: most masked inputs per forward pass.
        max_batch_bytes: most bytes of masked inputs plus masks per forward pass.
        progress: optional progress sink; ``Cancelled`` is raised between chunks when cancelled.

    Returns:
        Raw signed maps ``(B, *spatial)``.

    Raises:
        ValueError: without a target layer, or with a bad target, score or chunk bound.
        engine.progress.Cancelled: when ``progress`` reports cancellation.
    """
    if target_layer is None:
        raise ValueError("Score-CAM needs a target_layer whose channels become masks")
    progress = progress or NullProgress()
    spatial = tuple(x.shape[2:])
    with CamCapture(model, [target_layer]) as cam:
        capture = cam.run(x, classes=[])
    activations = capture.activations[target_layer]
    classes = class_indices(target, capture.logits)
    batch, channels = activations.shape[:2]
    per_chunk = items_per_chunk((x.shape[1] + 1) * math.prod(spatial), x.dtype, chunk_size, max_batch_bytes)
    weights = torch.zeros(batch * channels, dtype=activations.dtype, device=activations.device)
    total = batch * channels
    with evaluating(model), torch.no_grad():
        baseline_scores = class_scores(model(torch.full_like(x, baseline)), classes, score)
        for index in _chunks(total, per_chunk, activations.device):
            check_cancelled(progress)
            items, channel = index // channels, index % channels
            masks = _minmax_per_item(upsample(activations[items, channel], spatial))
            masked = baseline + (x[items] - baseline) * masks.unsqueeze(1).to(x.dtype)
            scores = class_scores(model(masked), classes[items], score)
            weights[index] = (scores - baseline_scores[items]).to(weights.dtype)
            progress.report(float(index[-1] + 1) / total, "Score-CAM")
    weights = weights.reshape((batch, channels) + (1,) * len(activations.shape[2:]))
    return upsample((weights * activations).sum(dim=1), spatial)


def _per_axis(value: int | Sequence[int], n_axes: int, name: str) -> tuple[int, ...]:
    values = (int(value),) * n_axes if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != n_axes or min(values) < 1:
        raise ValueError(f"{name} needs {n_axes} positive sizes, got {value!r}")
    return values


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    """Start offsets of a sliding window along one axis; the last window ends at ``size``."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    target_layer: str | None = None,
    *,
    patch_size: int | Sequence[int] = 8,
    stride: int | Sequence[int] | None = None,
    baseline: float = 0.0,
    score: str = "softmax",
    chunk_size: int = 64,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Occlusion sensitivity: how much the class score drops when a patch is hidden.

    Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014. A patch
    of ``baseline`` values slides over every spatial axis with ``stride`` (the last window is
    shifted to end at the border, so every voxel is covered); each voxel's value is the mean score
    drop over the windows that cover it. Positive values mark evidence for the class.

    Args:
        model: classifier returning ``(B, K)`` logits.
        x: input ``(B, C, *spatial)``.
        target: class index, per-item class indices, or None for the predicted class.
        target_layer: unused (occlusion looks only at the output); kept for the uniform signature.
        patch_size: patch extent, one int for every axis or one per spatial axis (clipped to the
            input size).
        stride: step between windows; None means half the patch (at least 1).
        baseline: value written into the occluded patch.
        score: "softmax" (probability) or "logit".
        chunk_size: most occluded inputs per forward pass.
        max_batch_bytes: most bytes of occluded inputs per forward pass.
        progress: optional progress sink; ``Cancelled`` is raised between chunks when cancelled.

    Returns:
        Raw signed maps ``(B, *spatial)``.

    Raises:
        ValueError: with bad patch or stride sizes, target, score or chunk bound.
        engine.progress.Cancelled: when ``progress`` reports cancellation.
    """
    progress = progress or NullProgress()
    spatial = tuple(x.shape[2:])
    patch = tuple(min(p, s) for p, s in zip(_per_axis(patch_size, len(spatial), "patch_size"), spatial))
    steps = tuple(max(1, p // 2) for p in patch) if stride is None else _per_axis(stride, len(spatial), "stride")
    windows = [
        tuple(slice(start, start + p) for start, p in zip(starts, patch))
        for starts in itertools.product(*(window_starts(s, p, t) for s, p, t in zip(spatial, patch, steps)))
    ]
    coverage = torch.zeros(spatial, dtype=torch.float64)
    for window in windows:
        coverage[window] += 1
    drops = torch.zeros((x.shape[0],) + spatial, dtype=torch.float64)
    per_chunk = items_per_chunk(x[0].numel(), x.dtype, chunk_size, max_batch_bytes)
    total = x.shape[0] * len(windows)
    with evaluating(model), torch.no_grad():
        logits = model(x)
        classes = class_indices(target, logits)
        full_scores = class_scores(logits, classes, score)
        for index in _chunks(total, per_chunk):
            check_cancelled(progress)
            items, window_ids = (index // len(windows)).tolist(), (index % len(windows)).tolist()
            occluded = x[items].clone()
            for row, window_id in enumerate(window_ids):
                occluded[(row, slice(None)) + windows[window_id]] = baseline
            scores = class_scores(model(occluded), classes[items], score)
            for item, window_id, drop in zip(items, window_ids, (full_scores[items] - scores).tolist()):
                drops[(item,) + windows[window_id]] += drop
            progress.report(float(index[-1] + 1) / total, "occlusion")
    # Scores come back to the host once per chunk and the drops add up there (one slice per
    # window); the map goes back to the input's device.
    return (drops / coverage).to(device=x.device, dtype=x.dtype)


PerturbationMethod = Callable[..., torch.Tensor]

#: Perturbation methods by the name users pick; uniform signature
#: ``(model, x, target=None, target_layer=None, *, progress=None, **params)``.
PERTURBATION_METHODS: dict[str, PerturbationMethod] = {
    "scorecam": score_cam,
    "occlusion": occlusion,
}
