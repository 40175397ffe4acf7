"""The glioma slice data set: patients, the split by patient, and preprocessed slices.

Each patient folder of ``glioma-lgg`` holds ``<case>_{t1,flair,t1ce,seg}.nii.gz``. A slice is
positive when any voxel of the FLAIR abnormality mask lies on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import SalienceError
from engine.imaging import read_image
from engine.imaging.volume import ImageVolume
from engine.tasks.glioma.preprocess import brain_region, glioma_slices
from engine.training.evaluate import HeldBackCase

CHANNELS = ("t1", "flair", "t1ce")
#: The rim peeled off the head to find the brain whose area a lesion mask's share is taken of.
EVALUATION_BRAIN_MARGIN = 6


@dataclass(frozen=True)
class PatientSplit:
    """Patient ids of each part; no patient is in two parts."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class SliceSet:
    """Preprocessed slices of some patients.

    Attributes:
        inputs: ``(N, C, h, w)`` float32.
        labels: ``(N,)`` int64, 1 where the slice shows FLAIR abnormality.
        patients: ``(N,)`` patient id of each slice.
        masks: ``(N, h, w)`` bool FLAIR abnormality masks on the network's grid.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    patients: tuple[str, ...]
    masks: torch.Tensor


def list_patients(data_dir: str | Path) -> list[str]:
    """Sorted ids of the patient folders in ``data_dir``.

    Raises:
        SalienceError: ``data_dir`` is not a folder or holds no patient folders.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise SalienceError(f"{root}: glioma data folder not found")
    patients = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*_seg.nii*")))
    if not patients:
        raise SalienceError(f"{root}: no patient folders with a *_seg.nii.gz mask")
    return patients


def split_patients(patients: list[str], counts: tuple[int, int, int], seed: int) -> PatientSplit:
    """Shuffle patients with ``seed`` and cut them into train, validation and test parts.

    Args:
        patients: all patient ids.
        counts: how many patients go to train, validation and test.
        seed: seed of the shuffle (same seed and ids give the same split).

    Raises:
        SalienceError: asking for more patients than there are.
    """
    if sum(counts) > len(patients) or min(counts) < 1:
        raise SalienceError(f"split {counts} needs {sum(counts)} patients, each part at least 1; found {len(patients)}")
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [sorted(patients)[i] for i in order]
    a, b, c = counts
    return PatientSplit(
        train=tuple(sorted(shuffled[:a])),
        val=tuple(sorted(shuffled[a : a + b])),
        test=tuple(sorted(shuffled[a + b : a + b + c])),
    )


def slice_labels(mask: np.ndarray) -> np.ndarray:
    """1 for each slice of an ``(N, H, W)`` mask that has any non-zero voxel, else 0."""
    return (mask.reshape(mask.shape[0], -1) > 0).any(axis=1).astype(np.int64)


def read_patient(data_dir: str | Path, patient: str) -> tuple[ImageVolume, np.ndarray]:
    """One patient's volume and its ``(C, N, H, W)`` sequences in ``CHANNELS`` order.

    Raises:
        SalienceError: the case cannot be read, lacks a sequence, or has no mask.
    """
    volume = read_image(Path(data_dir) / patient)
    if volume.labels is None:
        raise SalienceError(f"{volume.source}: no *_seg mask, cannot label slices")
    missing = [c for c in CHANNELS if c not in volume.channel_names]
    if missing:
        raise SalienceError(f"{volume.source}: missing sequences {missing}")
    return volume, np.stack([volume.channel(c) for c in CHANNELS])


def load_slices(
    data_dir: str | Path, patients: tuple[str, ...], input_size: tuple[int, int], preprocessing: dict
) -> SliceSet:
    """Read and preprocess every slice of ``patients`` with the bundle's preprocessing.

    Raises:
        SalienceError: a case cannot be read, lacks a channel, or has no mask.
    """
    inputs, labels, masks, owners = [], [], [], []
    for patient in patients:
        volume, array = read_patient(data_dir, patient)
        inputs.append(glioma_slices(array, input_size, **preprocessing))
        labels.append(torch.from_numpy(slice_labels(volume.labels)))
        masks.append(lesion_masks(volume.labels, input_size))
        owners.extend([patient] * volume.n_slices)
    return SliceSet(torch.cat(inputs), torch.cat(labels), tuple(owners), torch.cat(masks))


def lesion_masks(labels: np.ndarray, input_size: tuple[int, int]) -> torch.Tensor:
    """``(N, h, w)`` bool FLAIR abnormality masks on the network's grid (nearest neighbour)."""
    masks = torch.from_numpy(np.asarray(labels) > 0)
    if tuple(masks.shape[1:]) != tuple(input_size):
        masks = F.interpolate(masks[:, None].float(), size=tuple(input_size), mode="nearest")[:, 0] > 0.5
    return masks


def read_case(data_dir: Path, patient: str) -> HeldBackCase:
    """A held-back patient for ``salience evaluate``: slice labels, FLAIR masks and the brain.

    The brain (``brain_region`` with ``EVALUATION_BRAIN_MARGIN``, whatever the bundle's own
    preprocessing) is what a mask's area share is taken of, so bundles are compared alike.

    Raises:
        SalienceError: the case cannot be read, lacks a sequence, or has no mask.
    """
    volume, array = read_patient(data_dir, patient)
    scaled = glioma_slices(array, volume.shape[1:]).numpy()
    return HeldBackCase(
        name=patient,
        volume=volume,
        labels=slice_labels(volume.labels),
        masks=np.asarray(volume.labels) > 0,
        region=brain_region(scaled, EVALUATION_BRAIN_MARGIN),
    )
