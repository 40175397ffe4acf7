"""Test-time augmentation (TTA): the copies of a network input whose predictions are compared.

A task declares which transforms keep an image's meaning (``TaskSpec.test_time_augmentations``;
the generic default, ``DEFAULT_AUGMENTATIONS``, is a left-right flip and a small intensity
jitter). ``augmentation_plan`` turns those names into ``samples`` transforms, the first always
the identity; ``apply`` runs one on a batch. Every transform keeps the input's shape, so a 2-D
``(B, C, h, w)`` and a 3-D ``(B, C, d, h, w)`` batch are treated alike (flips and rotations act
on the last two axes).

Wang et al., "Aleatoric uncertainty estimation with test-time augmentation for medical image
segmentation with convolutional neural networks", Neurocomputing 2019, read the spread of
predictions over such transforms as the uncertainty the image itself leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: The transforms a task may declare.
#:
#: * ``hflip``: mirror left-right (last axis);
#: * ``vflip``: mirror top-bottom (second-to-last axis);
#: * ``rot90``: rotate by a multiple of 90 degrees in the last two axes (180 only when not square);
#: * ``intensity``: multiply by a gain in ``1 +- INTENSITY_GAIN`` and add an offset of
#:   ``+- INTENSITY_OFFSET`` times the item's standard deviation.
AUGMENTATIONS = ("hflip", "vflip", "rot90", "intensity")

#: What a task gets when it declares nothing: mirror images and scanners' gain differences are
#: plausible for brain MRI slices and ultrasound frames alike.
DEFAULT_AUGMENTATIONS = ("hflip", "intensity")

INTENSITY_GAIN = 0.05
INTENSITY_OFFSET = 0.05


@dataclass(frozen=True)
class Augmentation:
    """One test-time transform.

    Attributes:
        hflip: mirror the last axis.
        vflip: mirror the second-to-last axis.
        quarter_turns: rotations by 90 degrees in the last two axes (0 to 3).
        gain: intensity factor (1.0: none).
        offset: added intensity, in units of the item's standard deviation (0.0: none).
    """

    hflip: bool = False
    vflip: bool = False
    quarter_turns: int = 0
    gain: float = 1.0
    offset: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self == Augmentation()

    def describe(self) -> str:
        """A short name, e.g. "hflip+rot180+gain 1.03 offset -0.02"."""
        parts = [name for name, on in (("hflip", self.hflip), ("vflip", self.vflip)) if on]
        if self.quarter_turns:
            parts.append(f"rot{90 * self.quarter_turns}")
        if self.gain != 1.0 or self.offset != 0.0:
            parts.append(f"gain {self.gain:.3f} offset {self.offset:+.3f}")
        return "+".join(parts) or "identity"


def check_augmentations(names: Sequence[str]) -> tuple[str, ...]:
    """The names, checked.

    Raises:
        ValueError: a name not in ``AUGMENTATIONS``.
    """
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown test-time augmentations {unknown}; known: {list(AUGMENTATIONS)}")
    return tuple(dict.fromkeys(names))


def augmentation_plan(names: Sequence[str], samples: int, square: bool, seed: int = 0) -> list[Augmentation]:
    """``samples`` transforms built from the declared ``names``: the identity first, then the
    geometric group the names generate (flips, rotations) in turn, each with its own random
    intensity jitter when ``intensity`` is declared.

    Args:
        names: from ``AUGMENTATIONS``.
        samples: how many transforms (at least 1).
        square: whether the last two axes are equal (otherwise rotations are by 180 degrees only).
        seed: seeds the intensity jitter, so that the same case gives the same numbers.

    Raises:
        ValueError: an unknown name or fewer than one sample.
    """
    names = check_augmentations(names)
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    turns = ((0, 1, 2, 3) if square else (0, 2)) if "rot90" in names else (0,)
    candidates = [
        Augmentation(hflip=h, vflip=v, quarter_turns=t)
        for t in turns
        for v in ((False, True) if "vflip" in names else (False,))
        for h in ((False, True) if "hflip" in names else (False,))
    ]
    # Different names can make the same transform (both flips are a half turn): keep each once,
    # told apart by what they do to a probe with no symmetry.
    probe = torch.arange(9.0 if square else 6.0).reshape((1, 1, 3, 3) if square else (1, 1, 2, 3))
    geometric: dict[tuple[float, ...], Augmentation] = {}
    for candidate in candidates:
        geometric.setdefault(tuple(apply(candidate, probe).flatten().tolist()), candidate)
    group = list(geometric.values())
    generator = torch.Generator().manual_seed(seed)
    plan = [Augmentation()]
    for index in range(1, samples):
        shape = group[index % len(group)]
        gain, offset = 1.0, 0.0
        if "intensity" in names:
            u = torch.rand(2, generator=generator, dtype=torch.float64) * 2 - 1
            gain, offset = 1.0 + INTENSITY_GAIN * float(u[0]), INTENSITY_OFFSET * float(u[1])
        plan.append(Augmentation(shape.hflip, shape.vflip, shape.quarter_turns, gain, offset))
    return plan


def apply(augmentation: Augmentation, batch: torch.Tensor) -> torch.Tensor:
    """The transformed copy of a ``(B, C, *spatial)`` batch (at least two spatial axes)."""
    out = batch
    if augmentation.hflip:
        out = torch.flip(out, dims=(-1,))
    if augmentation.vflip:
        out = torch.flip(out, dims=(-2,))
    if augmentation.quarter_turns:
        out = torch.rot90(out, k=augmentation.quarter_turns, dims=(-2, -1))
    if augmentation.gain != 1.0 or augmentation.offset != 0.0:
        spread = out.flatten(1).std(dim=1).reshape((-1,) + (1,) * (out.ndim - 1))
        out = out * augmentation.gain + augmentation.offset * spread
    return out
