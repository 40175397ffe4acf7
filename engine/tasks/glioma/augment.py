"""Random augmentation of glioma training slices, drawn from the run's generator only.

A batch is ``(B, C, h, w)``: the first ``IMAGE_CHANNELS`` are the MRI sequences; any further
channel is a lesion mask that travels with its slice (moved by the spatial part, untouched by the
intensity part), so a map-guided loss sees the mask where the augmented lesion lies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: T1, FLAIR and T1ce; channels after these are masks.
IMAGE_CHANNELS = 3


def _uniform(shape: tuple[int, ...], half_width: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform draws in ``[-half_width, half_width)``."""
    return (torch.rand(shape, generator=generator) - 0.5) * 2 * half_width


def flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each slice left-right with probability 1/2 (a lesion is as likely on either side)."""
    mirrored = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(mirrored[:, None, None, None], x.flip(-1), x)


def jitter_intensity(x: torch.Tensor, generator: torch.Generator, scale: float, shift: float, gamma: float = 0.0) -> torch.Tensor:
    """Per slice and sequence: ``(x ** g) * s + t`` on the foreground, the black background kept black.

    Args:
        x: ``(B, C, h, w)`` with ``IMAGE_CHANNELS`` image channels first.
        generator: the run's generator.
        scale: ``s`` is drawn from ``1 +- scale``.
        shift: ``t`` is drawn from ``+- shift`` and added where the image is non-zero.
        gamma: ``log g`` is drawn from ``+- gamma`` (0: no gamma change, and no draw).
    """
    b = x.shape[0]
    image = x[:, :IMAGE_CHANNELS]
    if gamma > 0:
        image = image.clamp(min=0) ** torch.exp(_uniform((b, IMAGE_CHANNELS, 1, 1), gamma, generator))
    s = 1.0 + _uniform((b, IMAGE_CHANNELS, 1, 1), scale, generator)
    t = _uniform((b, IMAGE_CHANNELS, 1, 1), shift, generator)
    image = image * s + t * (x[:, :IMAGE_CHANNELS] > 0)
    return torch.cat([image, x[:, IMAGE_CHANNELS:]], dim=1)


def random_affine(x: torch.Tensor, generator: torch.Generator, degrees: float, zoom: float, translate: float) -> torch.Tensor:
    """Rotate, zoom and shift each slice (bilinear, zero outside); mask channels stay binary.

    Args:
        x: ``(B, C, h, w)``.
        generator: the run's generator.
        degrees: rotation drawn from ``+- degrees``.
        zoom: scale drawn from ``1 +- zoom``.
        translate: shift drawn from ``+- translate`` of the slice's half-width, per axis.
    """
    b = x.shape[0]
    angle = _uniform((b,), math.radians(degrees), generator)
    scale = 1.0 + _uniform((b,), zoom, generator)
    shift = _uniform((b, 2), translate, generator)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if x.shape[1] > IMAGE_CHANNELS:
        moved[:, IMAGE_CHANNELS:] = (moved[:, IMAGE_CHANNELS:] > 0.5).to(x.dtype)
    return moved


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light augmentation (glioma 1.x): left-right flip, per-sequence intensity scale (+-10%) and
    foreground shift (+-0.05)."""
    return jitter_intensity(flip(x, generator), generator, scale=0.1, shift=0.05)


def augment_strong(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Left-right flip, rotation (+-15 degrees), zoom (+-10%), shift (+-8% of the half-width), then
    per-sequence gamma (log +-0.3), scale (+-15%) and foreground shift (+-0.1)."""
    moved = random_affine(flip(x, generator), generator, degrees=15.0, zoom=0.1, translate=0.08)
    return jitter_intensity(moved, generator, scale=0.15, shift=0.1, gamma=0.3)


#: The recipe's ``--augment`` choices, with the card's words for each.
AUGMENTATIONS = {
    "light": (augment, "random left-right flip, per-sequence intensity scale +-10% and foreground shift +-0.05"),
    "strong": (
        augment_strong,
        "random left-right flip, rotation +-15 degrees, zoom +-10%, shift +-8%, per-sequence gamma "
        "(log +-0.3), intensity scale +-15% and foreground shift +-0.1",
    ),
}
