"""Preprocessing of a multi-sequence brain MRI volume into the one input of a 3-D network.

One plain, deterministic function used by training, inference and the tests alike: each sequence
is scaled by a robust maximum of its own voxels (as the slice model does), the head's bounding box
is cut out (the box a ``VolumeBox`` records, so maps go back onto the voxels they came from) and
resampled to the network's ``(d, h, w)``. No reorientation: the volume arrives in the display
orientation ``engine.imaging`` gives every axial volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.imaging.volume import ImageVolume
from engine.models.volume_box import VolumeBox
from engine.tasks.glioma.preprocess import channel_scale

#: Default parameters; a bundle's ``metadata.json`` ``preprocessing`` overrides them.
DEFAULT_PARAMS: dict[str, float] = {
    "upper_percentile": 99.5,
    "clip_max": 2.0,
    "head_threshold": 0.1,
    "box_margin": 2,
}

#: The task registry's view of this module (see ``engine.models.task_registry``).
PARAMETERS: tuple[str, ...] = tuple(DEFAULT_PARAMS)
ITEM_AXIS = "volume"

#: A row, column or slice belongs to the head's box when it holds at least this share of the
#: head voxels of the fullest one (so a few noisy background voxels do not widen the box).
PROFILE_SHARE = 0.02


def scaled_channels(array: np.ndarray, upper_percentile: float, clip_max: float) -> np.ndarray:
    """Each channel of ``(C, N, H, W)`` divided by its ``channel_scale`` and clipped to ``[0, clip_max]``."""
    if array.ndim != 4:
        raise ValueError(f"expected a (C, N, H, W) array, got shape {array.shape}")
    scaled = np.empty(array.shape, dtype=np.float32)
    for c in range(array.shape[0]):
        channel = np.asarray(array[c], dtype=np.float32)
        np.clip(channel / channel_scale(channel, upper_percentile), 0.0, clip_max, out=scaled[c])
    return scaled


def head_box(scaled: np.ndarray, head_threshold: float, box_margin: int) -> VolumeBox:
    """The bounding box of the head in scaled ``(C, N, H, W)`` channels.

    A voxel is head when the mean of its scaled channels exceeds ``head_threshold``; along each
    axis the box spans the slices, rows or columns holding at least ``PROFILE_SHARE`` of the head
    voxels of the fullest one, widened by ``box_margin`` voxels in-plane (not across slices).

    Returns:
        The box; the whole volume when no voxel is head.
    """
    shape = tuple(int(s) for s in scaled.shape[1:])
    head = scaled.mean(axis=0) > head_threshold
    if not head.any():
        return VolumeBox.whole(shape)  # type: ignore[arg-type]
    starts, sizes = [], []
    for axis in range(3):
        profile = head.sum(axis=tuple(a for a in range(3) if a != axis))
        kept = np.flatnonzero(profile >= max(1.0, PROFILE_SHARE * profile.max()))
        margin = int(box_margin) if axis else 0
        first, last = max(0, int(kept[0]) - margin), min(shape[axis], int(kept[-1]) + 1 + margin)
        starts.append(first)
        sizes.append(last - first)
    return VolumeBox(tuple(starts), tuple(sizes), shape)  # type: ignore[arg-type]


def grade_input(
    array: np.ndarray,
    input_size: Sequence[int],
    upper_percentile: float = DEFAULT_PARAMS["upper_percentile"],
    clip_max: float = DEFAULT_PARAMS["clip_max"],
    head_threshold: float = DEFAULT_PARAMS["head_threshold"],
    box_margin: float = DEFAULT_PARAMS["box_margin"],
) -> tuple[torch.Tensor, VolumeBox]:
    """Turn a ``(C, N, H, W)`` volume into the network's one input ``(1, C, d, h, w)``.

    Args:
        array: pixel data ``(C, N, H, W)``, channels already in the order the network expects.
        input_size: the network's ``(d, h, w)``.
        upper_percentile: see ``engine.tasks.glioma.preprocess.channel_scale``.
        clip_max: upper clip after scaling.
        head_threshold: see ``head_box``.
        box_margin: see ``head_box``.

    Returns:
        ``(input, box)``: float32 ``(1, C, d, h, w)``, the head's box resampled (trilinear,
        ``align_corners=False``), and that box.
    """
    if len(input_size) != 3:
        raise ValueError(f"a 3-D input size needs three numbers, got {list(input_size)}")
    scaled = scaled_channels(array, upper_percentile, clip_max)
    box = head_box(scaled, head_threshold, int(box_margin))
    cropped = torch.from_numpy(np.ascontiguousarray(box.crop(scaled)))[None]
    size = tuple(int(n) for n in input_size)
    if tuple(cropped.shape[2:]) != size:
        cropped = F.interpolate(cropped, size=size, mode="trilinear", align_corners=False)
    return cropped.contiguous(), box


def _array(volume: ImageVolume, input_channels: Sequence[str]) -> np.ndarray:
    return np.stack([volume.channel(name) for name in input_channels])


def prepare(
    volume: ImageVolume, input_channels: Sequence[str], input_size: Sequence[int], **parameters: float
) -> torch.Tensor:
    """The task registry's entry point: the named sequences of ``volume`` through ``grade_input``."""
    return grade_input(_array(volume, input_channels), input_size, **parameters)[0]


def volume_box(volume: ImageVolume, input_channels: Sequence[str], **parameters: float) -> VolumeBox:
    """The task registry's ``volume_box``: the head's box ``prepare`` cuts out of ``volume``."""
    p = {**DEFAULT_PARAMS, **parameters}
    scaled = scaled_channels(_array(volume, input_channels), p["upper_percentile"], p["clip_max"])
    return head_box(scaled, p["head_threshold"], int(p["box_margin"]))
