"""Batched prediction and explanation of a stack of 2-D items (slices, frames, patches, tiles).

Plain functions of a network and preprocessed ``(N, C, h, w)`` inputs; ``Bundle`` and
``engine.analysis`` call them. Progress is reported once per batch and cancellation is checked
before each batch.

``capture_pass`` is the one loop that explains: one ``CamCapture`` per batch gives the logits of
its forward pass and, from one partial backward, the gradients every gradient-family method
needs for every requested class. What it captured can be kept (``StoredCapture``) so that more
methods are computed later with no forward pass at all (``maps_from_capture``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from engine.progress import NullProgress, Progress, ScaledProgress, check_cancelled


def batches(count: int, batch_size: int) -> list[range]:
    """Consecutive index ranges covering ``range(count)``, each at most ``batch_size`` long."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def calibrated_probabilities(logits: np.ndarray | torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` as float32 ``(N, K)`` (Guo et al., "On Calibration of
    Modern Neural Networks", ICML 2017); a temperature of 1.0 is the plain softmax."""
    raw = torch.as_tensor(logits).float()
    if raw.numel() == 0:
        return np.zeros(tuple(raw.shape), np.float32)
    return torch.softmax(raw / float(temperature), dim=1).numpy().astype(np.float32)


def network_device(network: nn.Module) -> torch.device:
    """The device of the network's parameters (the CPU for a network without any)."""
    parameter = next(network.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


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
        temperature: logits are divided by it before the softmax (``calibrated_probabilities``).
        batch_size: items per forward pass.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.

    Returns:
        ``(logits, probabilities)``, both ``(N, K)`` float32.
    """
    progress = progress or NullProgress()
    chunks = batches(inputs.shape[0], batch_size)
    device = network_device(network)
    logits = []
    with torch.inference_mode():
        for done, chunk in enumerate(chunks, start=1):
            check_cancelled(progress)
            logits.append(network(inputs[chunk.start : chunk.stop].to(device)).float().cpu())
            progress.report(done / len(chunks), f"predicted {chunk.stop} of {inputs.shape[0]}")
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    raw = torch.cat(logits)
    return raw.numpy().astype(np.float32), calibrated_probabilities(raw, temperature)


#: Noisy copies per item for Smooth Grad-CAM++ (Omeiza et al. use a few tens; 8 keeps a batch small).
SMOOTH_SAMPLES = 8

#: What a map explains: the class logit (the Grad-CAM family's usual target) or its softmax
#: probability (what a clip verdict or a slide score averages). ``None`` picks each method's own
#: default: the logit for gradient methods, the probability for Score-CAM and occlusion.
SCORES = ("logit", "probability")


def _check_score(score: str | None) -> None:
    if score is not None and score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def method_score(method: str, score: str | None) -> str:
    """The score a method's maps explain: ``score`` if given, else the method's own default
    ("probability" for the perturbation methods, "logit" for the gradient family)."""
    from engine.explain.perturbation import PERTURBATION_METHODS

    _check_score(score)
    if score is not None:
        return score
    return "probability" if method in PERTURBATION_METHODS else "logit"


@dataclass(frozen=True, eq=False)
class StoredCapture:
    """What a pass over a case's items leaves for later methods: the target layer's activations and
    the gradient of each captured class score with respect to them, on the CPU.

    Attributes:
        layer: the captured layer.
        activations: ``(N, C, *spatial)``.
        gradients: ``(T, N, C, *spatial)``, row ``t`` the gradient of class ``classes[t]``'s score.
        classes: the class behind each gradient row.
        score: "logit" or "probability": which score's gradients.
    """

    layer: str
    activations: torch.Tensor
    gradients: torch.Tensor
    classes: tuple[int, ...]
    score: str

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.activations, self.gradients))

    def covers(self, classes: Sequence[int], score: str) -> bool:
        """True when every class of ``classes`` was captured for ``score``."""
        return score == self.score and set(int(k) for k in classes) <= set(self.classes)


@dataclass(frozen=True, eq=False)
class ItemPass:
    """What ``capture_pass`` gives.

    Attributes:
        logits: ``(N, K)`` float32 raw outputs of the clean items.
        layer_maps: per method, ``(T, N, *layer_spatial)`` raw signed maps at the layer's resolution.
        classes: the class of each of the ``T`` map rows.
        score: "logit" or "probability": which score the gradients are of.
        capture: the stored capture, when one was asked for and fitted its budget; else None.
        capture_bytes: the capture's size (or its estimate when it was not kept); 0 if none was asked for.
        forward_passes: how many times the network ran.
    """

    logits: np.ndarray
    layer_maps: dict[str, torch.Tensor]
    classes: tuple[int, ...]
    score: str
    capture: StoredCapture | None
    capture_bytes: int
    forward_passes: int


def capture_pass(
    network: nn.Module,
    target_layer: str,
    inputs: Iterable[torch.Tensor],
    total: int,
    methods: Sequence[str],
    classes: Sequence[int],
    *,
    score: str | None = None,
    progress: Progress | None = None,
    keep_bytes: int = 0,
) -> ItemPass:
    """One ``CamCapture`` per batch: the logits and every gradient-family method's raw maps.

    Each batch costs one forward pass and one partial backward (to the hooked layer only) for all
    ``classes`` together. Smooth Grad-CAM++ (``methods`` naming "smoothgradcampp") makes the
    forward pass carry ``SMOOTH_SAMPLES`` noisy copies of each item as well.

    Args:
        network: classifier returning ``(B, K)`` logits.
        target_layer: dotted path of the explained layer.
        inputs: the batches, ``(b, C, h, w)`` each (a tensor's chunks, or tiles read lazily).
        total: how many items the batches hold together (for progress).
        methods: names in ``engine.explain.METHODS`` (may be empty: logits and capture only).
        classes: class indices whose scores' gradients are taken (the rows of the maps).
        score: "logit" (None) or "probability": which score's gradients. CAM and Eigen-CAM use
            no gradients and do not change.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
        keep_bytes: keep the activations and gradients (``StoredCapture``) when they take at
            most this many bytes (estimated from the first batch); 0 keeps nothing.

    Raises:
        ValueError: an unknown method or score, or CAM on a network whose head is not global
            pooling then one linear layer.
    """
    from engine.explain import METHODS, CamCapture, ClassProbabilities, compute_maps, final_linear_weight

    _check_score(score)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"not gradient-family CAM methods: {unknown}")
    grad_score = "probability" if score == "probability" else "logit"
    classes = tuple(int(k) for k in classes)
    request = {"target": ClassProbabilities(classes)} if grad_score == "probability" else {"classes": list(classes)}
    noisy = SMOOTH_SAMPLES if any(METHODS[m].needs == "noisy_gradients" for m in methods) else 0
    progress = progress or NullProgress()
    logits: list[torch.Tensor] = []
    maps: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    kept: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if keep_bytes > 0 else None
    capture_bytes, done, weight = 0, 0, None
    device = network_device(network)
    with CamCapture(network, [target_layer]) as cam:
        for x in inputs:
            check_cancelled(progress)
            capture = in_float32(cam.run(x.to(device), noise_samples=noisy, **request), target_layer)
            logits.append(capture.logits.float().cpu())
            if "cam" in methods and weight is None:
                weight = final_linear_weight(network, capture.activations[target_layer].shape[1])
            with torch.autocast(device.type, enabled=False):  # maps in float32 under a half-precision run
                batch_maps = compute_maps(capture, target_layer, methods, fc_weight=weight)
            for name, layer_maps in batch_maps.items():
                maps[name].append(layer_maps.float().cpu())
            activations, gradients = capture.activations[target_layer], capture.gradients[target_layer]
            if kept is not None and not capture_bytes:  # the first batch tells the whole capture's size
                per_item = sum(t.element_size() * t.numel() for t in (activations, gradients)) / max(1, x.shape[0])
                capture_bytes = int(per_item * total)
                if capture_bytes > keep_bytes:
                    kept = None
            if kept is not None:  # copies, not views: with noisy copies a view would hold the whole noisy batch
                kept.append((activations.cpu().clone(), gradients.cpu().clone()))
            done += x.shape[0]
            progress.report(done / max(1, total), f"analysed {done} of {total}")
    raw = torch.cat(logits) if logits else torch.zeros((0, 0))
    stored = None
    if kept:
        stored = StoredCapture(target_layer, torch.cat([a for a, _ in kept]), torch.cat([g for _, g in kept], dim=1),
                               classes, grad_score)
    return ItemPass(
        logits=raw.numpy().astype(np.float32),
        layer_maps={m: torch.cat(parts, dim=1) if parts else torch.zeros((len(classes), 0)) for m, parts in maps.items()},
        classes=classes,
        score=grad_score,
        capture=stored,
        capture_bytes=capture_bytes,
        forward_passes=len(logits),
    )


def in_float32(capture, layer: str):
    """The capture with its activations and gradients at ``layer`` in float32 (as it is when they
    already are): a forward pass under ``torch.autocast`` leaves them in bfloat16 or float16, and
    the CAM methods (sums over channels, Eigen-CAM's eigenvectors) are computed in float32."""
    tensors = [capture.activations[layer], capture.gradients[layer], *capture.noisy_gradients.values()]
    if all(t.dtype == torch.float32 for t in tensors):
        return capture
    return replace(
        capture,
        activations={**capture.activations, layer: capture.activations[layer].float()},
        gradients={**capture.gradients, layer: capture.gradients[layer].float()},
        noisy_gradients={name: g.float() for name, g in capture.noisy_gradients.items()},
    )


def maps_from_capture(
    capture: StoredCapture, network: nn.Module, methods: Sequence[str], classes: Sequence[int], batch_size: int = 32,
) -> dict[str, torch.Tensor]:
    """Gradient-family maps from a stored capture, with no forward pass.

    Args:
        capture: from ``capture_pass(..., keep_bytes=...)``.
        network: the network captured (read only for CAM's final linear weight).
        methods: names in ``engine.explain.METHODS`` other than Smooth Grad-CAM++ (which needs
            noisy copies of the input, hence a forward pass).
        classes: a subset of ``capture.classes``: the rows of the maps.
        batch_size: items computed together (bounds the working memory).

    Returns:
        Per method, ``(len(classes), N, *layer_spatial)`` raw signed maps.

    Raises:
        ValueError: Smooth Grad-CAM++, an unknown method, or a class not captured.
    """
    from engine.explain import METHODS, Capture, compute_maps, final_linear_weight

    rows = [capture.classes.index(int(k)) if int(k) in capture.classes else -1 for k in classes]
    if -1 in rows:
        raise ValueError(f"classes {list(classes)} were not all captured (captured: {list(capture.classes)})")
    noisy = [m for m in methods if m not in METHODS or METHODS[m].needs == "noisy_gradients"]
    if noisy:
        raise ValueError(f"{noisy} cannot be computed from a stored capture")
    weight = final_linear_weight(network, capture.activations.shape[1]) if "cam" in methods else None
    weight = None if weight is None else weight.cpu()
    maps: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    for chunk in batches(capture.activations.shape[0], batch_size):
        part = Capture(
            logits=torch.zeros((0, 0)),
            activations={capture.layer: capture.activations[chunk.start : chunk.stop]},
            gradients={capture.layer: capture.gradients[rows, chunk.start : chunk.stop]},
            classes=tuple(int(k) for k in classes),
        )
        for name, batch_maps in compute_maps(part, capture.layer, methods, fc_weight=weight).items():
            maps[name].append(batch_maps.float())
    return {m: torch.cat(parts, dim=1) if parts else torch.zeros((len(rows), 0)) for m, parts in maps.items()}


def on_grid(layer_maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(T, N, h, w)`` layer-resolution maps resized (``engine.explain.upsample``) to float32
    ``(T, N, *size)``."""
    from engine.explain import upsample

    out = np.zeros(tuple(layer_maps.shape[:2]) + tuple(size), dtype=np.float32)
    for t in range(layer_maps.shape[0]):
        if layer_maps.shape[1]:
            out[t] = upsample(layer_maps[t], tuple(size)).float().numpy()
    return out


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

    One ``CamCapture`` per batch (``capture_pass``: one forward pass, one partial backward for
    all ``classes`` together); ``engine.explain.upsample`` brings the maps to the image grid.

    Args:
        network: classifier returning ``(B, K)`` logits.
        inputs: ``(N, C, h, w)`` preprocessed items.
        target_layer: dotted path of the explained layer.
        method: a name in ``engine.explain.METHODS``.
        classes: class indices to explain.
        output_size: ``(H, W)`` of the image the maps are drawn on.
        batch_size: items per capture.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
        score: "logit" (None) or "probability": which score's gradients (see ``capture_pass``).

    Returns:
        float32 array ``(len(classes), N, H, W)``; no ReLU and no normalisation applied.
    """
    if not classes:
        return np.zeros((0, inputs.shape[0]) + tuple(output_size), dtype=np.float32)
    chunks = (inputs[c.start : c.stop] for c in batches(inputs.shape[0], batch_size))
    result = capture_pass(network, target_layer, chunks, inputs.shape[0], [method], classes, score=score,
                          progress=progress)
    return on_grid(result.layer_maps[method], output_size)


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
    device = network_device(network)
    steps = max(1, len(classes) * len(chunks))
    for t, k in enumerate(classes):
        for c, chunk in enumerate(chunks):
            check_cancelled(progress)
            step = t * len(chunks) + c
            sub = ScaledProgress(progress, step / steps, (step + 1) / steps)
            cam = method(network, inputs[chunk.start : chunk.stop].to(device), int(k), target_layer, progress=sub,
                         score=method_score)
            maps[t, chunk.start : chunk.stop] = upsample(cam.detach().float(), output_size).cpu().numpy()
    progress.report(1.0, f"explained {inputs.shape[0]} items")
    return maps


def method_names() -> list[str]:
    """Every CAM method a bundle can run: Grad-CAM first (the default everywhere), the rest of the
    gradient family (CAM and Smooth Grad-CAM++ included), then the perturbation methods."""
    from engine.explain import METHODS
    from engine.explain.perturbation import PERTURBATION_METHODS

    return ["gradcam"] + [name for name in METHODS if name != "gradcam"] + list(PERTURBATION_METHODS)


def check_methods(methods: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first unknown method and listing the known ones."""
    known = method_names()
    for method in methods:
        if method not in known:
            raise ValueError(f"unknown CAM method {method!r}; available: {known}")


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
    from engine.explain.perturbation import PERTURBATION_METHODS

    check_methods([method])
    if method in PERTURBATION_METHODS:
        return perturb_items(
            network, inputs, target_layer, PERTURBATION_METHODS[method], classes, output_size, batch_size, progress,
            score,
        )
    return explain_items(network, inputs, target_layer, method, classes, output_size, batch_size, progress, score)
