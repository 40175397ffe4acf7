"""Preprocessing of H&E patches and whole-slide tiles into network inputs.

One deterministic path for training, patch inference and slide tiles: RGB scaled to [0, 1],
resized to the network's input size (bilinear, antialiased), then each channel shifted and scaled
by a FIXED mean and standard deviation (measured once on LC25000 lung patches and written into
the bundle), so a pale or a dark slide is not silently re-normalised to look like the training
data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.imaging.volume import ImageVolume

#: Channel means and standard deviations of RGB in [0, 1] over LC25000 lung patches (rounded).
DEFAULT_PARAMS: dict[str, float] = {
    "mean_r": 0.673,
    "mean_g": 0.539,
    "mean_b": 0.852,
    "std_r": 0.161,
    "std_g": 0.188,
    "std_b": 0.108,
}

#: The task registry's view of this module (see ``engine.models.task_registry``).
PARAMETERS: tuple[str, ...] = tuple(DEFAULT_PARAMS)
ITEM_AXIS = "patch"
#: The channel names ``engine.imaging.slide.read_patch`` gives an RGB patch, in network order.
RGB_CHANNELS = ("R", "G", "B")


def normalise_rgb(
    images: torch.Tensor,
    input_size: Sequence[int],
    mean_r: float = DEFAULT_PARAMS["mean_r"],
    mean_g: float = DEFAULT_PARAMS["mean_g"],
    mean_b: float = DEFAULT_PARAMS["mean_b"],
    std_r: float = DEFAULT_PARAMS["std_r"],
    std_g: float = DEFAULT_PARAMS["std_g"],
    std_b: float = DEFAULT_PARAMS["std_b"],
) -> torch.Tensor:
    """Resize ``(n, 3, h, w)`` RGB in [0, 1] to ``input_size`` and apply the fixed normalisation.

    Args:
        images: float tensor ``(n, 3, h, w)``, values in [0, 1].
        input_size: the network's ``(h, w)``.
        mean_r, mean_g, mean_b, std_r, std_g, std_b: per-channel shift and scale.

    Returns:
        float32 ``(n, 3, input_size[0], input_size[1])``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (n, 3, h, w) RGB, got shape {tuple(images.shape)}")
    size = (int(input_size[0]), int(input_size[1]))
    images = images.float()
    if tuple(images.shape[2:]) != size and images.shape[0]:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([mean_r, mean_g, mean_b], dtype=torch.float32).reshape(1, 3, 1, 1)
    std = torch.tensor([std_r, std_g, std_b], dtype=torch.float32).reshape(1, 3, 1, 1)
    return ((images - mean) / std).contiguous()


def prepare_tiles(tiles: np.ndarray, input_size: Sequence[int], **parameters: float) -> torch.Tensor:
    """Network inputs for RGB tiles read from a slide (or patches read as arrays).

    Args:
        tiles: uint8 ``(n, h, w, 3)`` RGB.
        input_size: the network's ``(h, w)``.
        **parameters: normalisation parameters (``PARAMETERS``).

    Returns:
        float32 ``(n, 3, h', w')``.
    """
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[-1] != 3:
        raise ValueError(f"expected (n, h, w, 3) RGB tiles, got shape {tiles.shape}")
    scaled = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 255.0
    return normalise_rgb(scaled, input_size, **parameters)


def prepare(
    volume: ImageVolume, input_channels: Sequence[str], input_size: Sequence[int], **parameters: float
) -> torch.Tensor:
    """The task registry's entry point: every patch (item) of an RGB volume as network input.

    Args:
        volume: an RGB ``ImageVolume`` (``read_patch`` names its channels R, G, B; 0-255).
        input_channels: the bundle's channel names, in network order (R, G, B).
        input_size: the network's ``(h, w)``.
        **parameters: normalisation parameters (``PARAMETERS``).

    Returns:
        float32 ``(N, 3, h, w)``, one row per item of the volume.
    """
    if len(input_channels) != 3:
        raise ValueError(f"histopathology models take 3 RGB channels, bundle names {list(input_channels)}")
    rgb = np.stack([np.asarray(volume.channel(name), dtype=np.float32) for name in input_channels], axis=1)
    return normalise_rgb(torch.from_numpy(rgb) / 255.0, input_size, **parameters)
