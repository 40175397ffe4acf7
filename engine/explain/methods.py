"""CAM methods: short pure functions of captured activations and gradients.

Every function takes ``activations`` ``(B, C, *spatial)`` and ``gradients`` ``(B, C, *spatial)``
for one target and returns a raw, signed map ``(B, *spatial)`` at the layer's resolution. No
ReLU and no min-max scaling are applied here: where a paper rectifies, ``rectify`` does it
explicitly, so negative evidence stays available and maps stay comparable across images.
Reductions are over ``range(2, ndim)``, so every method works for 2-D, 3-D and 2-D+time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _spatial_dims(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.ndim))


def grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM before its ReLU: channel weights are spatially averaged gradients.

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017.
    """
    weights = gradients.mean(dim=_spatial_dims(gradients), keepdim=True)
    return (weights * activations).sum(dim=1)


def rectify(cam: torch.Tensor) -> torch.Tensor:
    """The ReLU the Grad-CAM family applies: keep evidence for the target only."""
    return torch.clamp(cam, min=0)


def upsample(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resize ``(B, *spatial)`` maps to the input's spatial ``size`` (linear/bilinear/trilinear)."""
    if tuple(cam.shape[1:]) == tuple(size):
        return cam
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(cam.unsqueeze(1), size=size, mode=mode, align_corners=False).squeeze(1)


#: Methods computed from one capture, by the name users pick in the CLI and the viewer.
GRADIENT_METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradcam": grad_cam,
}
