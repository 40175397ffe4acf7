"""Every CAM method for every class from one capture: one forward pass, one partial backward.

``compute_maps`` turns a ``Capture`` into maps; ``explain_all`` runs the capture and does it.
The maps are raw and signed, shaped ``(T, B, *spatial)`` (one row per target score, e.g. per
class), upsampled to the input unless asked not to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from engine.explain.capture import CamCapture, Capture
from engine.explain.cluster_filter import cf_cam, channel_clusters
from engine.explain.methods import METHODS, final_linear_weight, upsample
from engine.explain.targets import Target

#: Methods whose inputs one plain capture provides (Smooth Grad-CAM++ needs noisy copies).
SINGLE_CAPTURE_METHODS = tuple(name for name, m in METHODS.items() if m.needs != "noisy_gradients")


def _choose_methods(methods: Sequence[str] | None, cam_possible: bool) -> tuple[str, ...]:
    if methods is None:
        return tuple(n for n in SINGLE_CAPTURE_METHODS if n != "cam" or cam_possible)
    unknown = [n for n in methods if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown CAM methods {unknown}; known: {sorted(METHODS)}")
    if "cam" in methods and not cam_possible:
        raise ValueError(
            "CAM needs the final linear layer's weights for the explained classes: the layer's channels do "
            "not match the last nn.Linear, or a target row has no single class; pass fc_weight or drop 'cam'"
        )
    return tuple(methods)


def _cam_rows(fc_weight: torch.Tensor | None, classes: tuple[int | None, ...], channels: int) -> torch.Tensor | None:
    """``(T, C)`` the linear weight row of each target row's class, or None if CAM is undefined."""
    if fc_weight is None or fc_weight.ndim != 2 or fc_weight.shape[1] != channels:
        return None
    if any(k is None or not 0 <= k < fc_weight.shape[0] for k in classes):
        return None
    return fc_weight[list(classes)] if classes else fc_weight[:0]


def compute_maps(
    capture: Capture,
    layer: str,
    methods: Sequence[str] | None = None,
    fc_weight: torch.Tensor | None = None,
    size: tuple[int, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Maps of the chosen methods for every target row of ``capture``.

    Args:
        capture: from ``CamCapture.run``.
        layer: which captured layer to explain.
        methods: names from ``METHODS``; None means every method one plain capture supports
            (CAM only when ``fc_weight`` fits the layer and every row is one class).
        fc_weight: ``(K, C)`` final linear weight for CAM (``final_linear_weight(model, C)``).
        size: spatial size to upsample to; None keeps the layer's resolution.

    Returns:
        ``{method: (T, B, *spatial)}`` raw signed maps. Class-agnostic methods (Eigen-CAM) give
        the same map in every row (an expanded view: copy before writing in place).

    Raises:
        ValueError: an unknown method, CAM asked for where it is undefined, or Smooth Grad-CAM++
            asked for on a capture without noisy gradients.
    """
    activations, gradients = capture.activations[layer], capture.gradients[layer]
    rows, items = gradients.shape[:2]
    spatial = tuple(activations.shape[2:])
    cam_rows = _cam_rows(fc_weight, capture.classes, activations.shape[1])
    chosen = _choose_methods(methods, cam_rows is not None)
    # Methods see one (B*T)-batch: each item's activations once per row, with that row's gradients.
    tiled = activations.unsqueeze(0).expand((rows,) + tuple(activations.shape)).reshape((rows * items,) + tuple(activations.shape[1:]))
    flat_gradients = gradients.reshape((rows * items,) + tuple(gradients.shape[2:]))
    clusters = channel_clusters(activations).repeat(rows, 1) if "cfcam" in chosen else None
    maps: dict[str, torch.Tensor] = {}
    for name in chosen:
        method = METHODS[name]
        if not method.class_specific:
            raw = method.compute(activations, gradients[0] if rows else torch.zeros_like(activations))
            raw = raw.unsqueeze(0).expand((rows,) + tuple(raw.shape))
        elif method.needs == "fc_weight":
            weights = cam_rows.unsqueeze(1).expand(rows, items, -1).reshape(rows * items, -1)
            raw = method.compute(tiled, weights).reshape((rows, items) + spatial)
        elif method.needs == "noisy_gradients":
            if layer not in capture.noisy_gradients:
                raise ValueError(f"{name} needs a capture run with noise_samples > 0")
            noisy = capture.noisy_gradients[layer]  # (T, N, B, C, *spatial) -> (N, T*B, C, *spatial)
            noisy = noisy.transpose(0, 1).reshape((noisy.shape[1], rows * items) + tuple(noisy.shape[3:]))
            raw = method.compute(tiled, noisy).reshape((rows, items) + spatial)
        elif name == "cfcam":
            raw = cf_cam(tiled, flat_gradients, clusters=clusters).reshape((rows, items) + spatial)
        else:
            raw = method.compute(tiled, flat_gradients).reshape((rows, items) + spatial)
        maps[name] = raw if size is None else _resize(raw, tuple(size))
    return maps


def _resize(raw: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    rows, items = raw.shape[:2]
    if rows and raw.stride(0) == 0:  # a class-agnostic map repeated over rows: resize it once
        once = upsample(raw[0], size)
        return once.unsqueeze(0).expand((rows,) + tuple(once.shape))
    resized = upsample(raw.reshape((rows * items,) + tuple(raw.shape[2:])), size)
    return resized.reshape((rows, items) + size)


def explain_all(
    model: nn.Module,
    x: torch.Tensor,
    target_layer: str,
    classes: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    *,
    target: Target | None = None,
    fc_weight: torch.Tensor | None = None,
    upsample_to_input: bool = True,
    noise_samples: int = 8,
    noise_level: float = 0.15,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Every chosen CAM method for every class, from ONE capture of ``model`` on ``x``.

    One forward pass and one partial backward (the head only) serve all methods and classes.
    Smooth Grad-CAM++ is left out unless named in ``methods``: it needs ``noise_samples`` noisy
    copies of ``x``, which ride in the same single batched pass but multiply its cost.

    Args:
        model: classifier returning ``(B, K)`` logits.
        x: ``(B, C_in, *spatial)`` input.
        target_layer: dotted path of the layer to explain (e.g. ``"class_layers.relu"``).
        classes: class indices (rows of the result); None means every class.
        methods: method names (see ``METHODS``); None means all single-capture methods.
        target: instead of ``classes``, a target from ``engine.explain.targets``.
        fc_weight: final linear weight for CAM; found with ``final_linear_weight`` if None.
        upsample_to_input: resize maps to the input's spatial size (else layer resolution).
        noise_samples, noise_level, seed: noisy copies for Smooth Grad-CAM++ only.

    Returns:
        ``{method: (T, B, *spatial)}`` raw signed maps, T = number of classes (or target rows).
    """
    wants_noise = methods is not None and "smoothgradcampp" in methods
    with CamCapture(model, [target_layer]) as cam:
        capture = cam.run(
            x, classes, target=target, noise_samples=noise_samples if wants_noise else 0,
            noise_level=noise_level, seed=seed,
        )
    if fc_weight is None:
        fc_weight = final_linear_weight(model, capture.activations[target_layer].shape[1])
    size = capture.input_shape if upsample_to_input else None
    return compute_maps(capture, target_layer, methods, fc_weight, size)
