"""Batched prediction and explanation of a stack of 2-D items (slices, frames, patches).

Plain functions of a network and a preprocessed ``(N, C, h, w)`` tensor; ``Bundle`` calls them.
Progress is reported once per batch and cancellation is checked before each batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from engine.progress import NullProgress, Progress, ScaledProgress, check_cancelled

def batches(count: int, batch_size: int) -> list[range]:
    """Consecutive index ranges covering ``range(count)``, each at most ``batch_size`` long."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def predict_items(
    network: nn.Module,
    inputs: torch.Tensor,
    temperature: float = 1.0,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and softmax probabilities of every item, with temperature scaling.

    Args:
        network: classifier in eval mode returning ``(B, K)`` logits.
        inputs: ``(N, C, h, w)`` preprocessed items.
        temperature: logits are divided by it before the softmax (Guo et al., "On Calibration of
            Modern Neural Networks", ICML 2017); 1.0 leaves them as they are.
        batch_size: items per forward pass.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.

    Returns:
        ``(logits, probabilities)``, both ``(N, K)`` float32.
    """
    progress = progress or NullProgress()
    chunks = batches(inputs.shape[0], batch_size)
    logits = []
    with torch.inference_mode():
        for done, chunk in enumerate(chunks, start=1):
            check_cancelled(progress)
            logits.append(network(inputs[chunk.start : chunk.stop]).float())
            progress.report(done / len(chunks), f"predicted {chunk.stop} of {inputs.shape[0]}")
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    raw = torch.cat(logits)
    probabilities = torch.softmax(raw / float(temperature), dim=1)
    return raw.numpy().astype(np.float32), probabilities.numpy().astype(np.float32)


#: Noisy copies per item for Smooth Grad-CAM++ (Omeiza et al. use a few tens; 8 keeps a batch small).
SMOOTH_SAMPLES = 8

#: What a map explains: the class logit (the Grad-CAM family's usual target) or its softmax
#: probability (what a clip verdict or a slide score averages). ``None`` picks each method's own
#: default: the logit for gradient methods, the probability for Score-CAM and occlusion.
SCORES = ("logit", "probability")


def _check_score(score: str | None) -> None:
    if score is not None and score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def capture_maps(network: nn.Module, inputs: torch.Tensor, target_layer: str, method: str,
                 classes: Sequence[int], score: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One capture of a batch and one gradient-family method's raw maps from it.

    Works for every method in ``engine.explain.METHODS``: CAM takes the network's final linear
    weight, Smooth Grad-CAM++ rides ``SMOOTH_SAMPLES`` noisy copies in the same pass. With
    ``score="probability"`` the gradients are those of the class probabilities
    (``engine.explain.ClassProbabilities``); CAM and Eigen-CAM use no gradients and do not change.

    Returns:
        ``(logits (b, K), maps (len(classes), b, *layer_spatial))``.

    Raises:
        ValueError: CAM on a network whose head is not pooling then one linear layer.
    """
    from engine.explain import METHODS, CamCapture, ClassProbabilities, compute_maps, final_linear_weight

    _check_score(score)
    noisy = SMOOTH_SAMPLES if METHODS[method].needs == "noisy_gradients" else 0
    if score == "probability":
        request = {"target": ClassProbabilities(classes)}
    else:
        request = {"classes": list(classes)}
    with CamCapture(network, [target_layer]) as cam:
        capture = cam.run(inputs, noise_samples=noisy, **request)
    weight = None
    if method == "cam":
        weight = final_linear_weight(network, capture.activations[target_layer].shape[1])
    maps = compute_maps(capture, target_layer, [method], fc_weight=weight)[method]
    return capture.logits, maps


def explain_items(
    network: nn.Module,
    inputs: torch.Tensor,
    target_layer: str,
    method: str,
    classes: Sequence[int],
    output_size: tuple[int, int],
    batch_size: int = 32,
    progress: Progress | None = None,
    score: str | None = None,
) -> np.ndarray:
    """Raw, signed CAMs of every item for each class, resized to ``output_size``.

    One ``CamCapture`` per batch (one forward pass, one partial backward for all ``classes``
    together, see ``capture_maps``); ``engine.explain.upsample`` brings the maps to the image grid.

    Args:
        network: classifier returning ``(B, K)`` logits.
        inputs: ``(N, C, h, w)`` preprocessed items.
        target_layer: dotted path of the explained layer.
        method: a name in ``engine.explain.METHODS``.
        classes: class indices to explain.
        output_size: ``(H, W)`` of the image the maps are drawn on.
        batch_size: items per capture.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
        score: "logit" (None) or "probability": which score's gradients (see ``capture_maps``).

    Returns:
        float32 array ``(len(classes), N, H, W)``; no ReLU and no normalisation applied.
    """
    from engine.explain import upsample

    progress = progress or NullProgress()
    chunks = batches(inputs.shape[0], batch_size)
    maps = np.zeros((len(classes), inputs.shape[0]) + tuple(output_size), dtype=np.float32)
    if not classes:
        return maps
    for done, chunk in enumerate(chunks, start=1):
        check_cancelled(progress)
        _, layer_maps = capture_maps(network, inputs[chunk.start : chunk.stop], target_layer, method, classes, score)
        for t in range(len(classes)):
            maps[t, chunk.start : chunk.stop] = upsample(layer_maps[t], output_size).float().numpy()
        progress.report(done / len(chunks), f"explained {chunk.stop} of {inputs.shape[0]}")
    return maps


def perturb_items(
    network: nn.Module,
    inputs: torch.Tensor,
    target_layer: str,
    method: Callable[..., torch.Tensor],
    classes: Sequence[int],
    output_size: tuple[int, int],
    batch_size: int = 32,
    progress: Progress | None = None,
    score: str | None = None,
) -> np.ndarray:
    """Perturbation maps (Score-CAM, occlusion) of every item for each class, on the image grid.

    Unlike the gradient family these need many forward passes per item; the methods chunk them
    under a memory bound. Progress runs over classes x batches, and cancellation is checked
    inside the method between chunks.

    Args:
        network: classifier returning ``(B, K)`` logits.
        inputs: ``(N, C, h, w)`` preprocessed items.
        target_layer: dotted path of the layer Score-CAM takes its masks from (occlusion ignores it).
        method: a function from ``engine.explain.perturbation.PERTURBATION_METHODS``.
        classes: class indices to explain.
        output_size: ``(H, W)`` of the image the maps are drawn on.
        batch_size: items per call.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
        score: "probability" (None, as the papers do) or "logit": the score a perturbation changes.

    Returns:
        float32 array ``(len(classes), N, H, W)``; raw and signed.
    """
    from engine.explain import upsample

    _check_score(score)
    method_score = "logit" if score == "logit" else "softmax"
    progress = progress or NullProgress()
    chunks = batches(inputs.shape[0], batch_size)
    maps = np.zeros((len(classes), inputs.shape[0]) + tuple(output_size), dtype=np.float32)
    steps = max(1, len(classes) * len(chunks))
    for t, k in enumerate(classes):
        for c, chunk in enumerate(chunks):
            check_cancelled(progress)
            step = t * len(chunks) + c
            sub = ScaledProgress(progress, step / steps, (step + 1) / steps)
            cam = method(network, inputs[chunk.start : chunk.stop], int(k), target_layer, progress=sub,
                         score=method_score)
            maps[t, chunk.start : chunk.stop] = upsample(cam.detach(), output_size).float().numpy()
    progress.report(1.0, f"explained {inputs.shape[0]} items")
    return maps


def method_names() -> list[str]:
    """Every CAM method a bundle can run: Grad-CAM first (the default everywhere), the rest of the
    gradient family (CAM and Smooth Grad-CAM++ included), then the perturbation methods."""
    from engine.explain import METHODS
    from engine.explain.perturbation import PERTURBATION_METHODS

    return ["gradcam"] + [name for name in METHODS if name != "gradcam"] + list(PERTURBATION_METHODS)


def explain_with(
    network: nn.Module,
    inputs: torch.Tensor,
    target_layer: str,
    method: str,
    classes: Sequence[int],
    output_size: tuple[int, int],
    batch_size: int = 32,
    progress: Progress | None = None,
    score: str | None = None,
) -> np.ndarray:
    """Maps by CAM method name, from whichever family the method belongs to.

    ``score`` is "logit", "probability", or None for the method's own default (``SCORES``).

    Raises:
        ValueError: ``method`` is not a known method (the message lists the known ones), or an
            unknown score.
    """
    from engine.explain import METHODS  # looked up now: methods are registered at import
    from engine.explain.perturbation import PERTURBATION_METHODS

    if method in PERTURBATION_METHODS:
        return perturb_items(
            network, inputs, target_layer, PERTURBATION_METHODS[method], classes, output_size, batch_size, progress,
            score,
        )
    if method in METHODS:
        return explain_items(network, inputs, target_layer, method, classes, output_size, batch_size, progress, score)
    raise ValueError(f"unknown CAM method {method!r}; available: {method_names()}")
