"""Run-length encoding of one boolean mask on one slice (a label painted with the brush).

The mask is read in row-major (C) order, row 0 first; ``counts`` are the lengths of alternating
runs starting with a run of False (which is 0 long when pixel ``(0, 0)`` is set), so the counts
sum to ``rows * cols``. It is the uncompressed RLE of the COCO mask API (which reads columns
first; here rows are, as the image is stored). The stored JSON is
``{"encoding": "rle-rows", "shape": [rows, cols], "counts": [...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The ``encoding`` named in the stored JSON.
RLE_ENCODING = "rle-rows"


@dataclass(frozen=True)
class MaskRLE:
    """A boolean ``(rows, cols)`` mask as alternating False/True run lengths, False first.

    Attributes:
        shape: ``(rows, cols)`` of the slice.
        counts: the run lengths; they sum to ``rows * cols``.
    """

    shape: tuple[int, int]
    counts: tuple[int, ...]

    @property
    def area(self) -> int:
        """How many pixels are set."""
        return int(sum(self.counts[1::2]))

    def decode(self) -> np.ndarray:
        """The mask as a boolean ``(rows, cols)`` array."""
        runs = np.asarray(self.counts, dtype=np.int64)
        values = np.arange(runs.size) % 2 == 1
        return np.repeat(values, runs).reshape(self.shape)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (the ``geometry`` of a stored mask annotation)."""
        return {"encoding": RLE_ENCODING, "shape": list(self.shape), "counts": list(self.counts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "mask") -> MaskRLE:
        """Read :meth:`to_json`'s output back, checking it.

        Raises:
            ValueError: another encoding, a shape that is not two positive integers, or counts
                that are negative, not integers, or do not add up to the shape.
        """
        if not isinstance(data, Mapping) or data.get("encoding", RLE_ENCODING) != RLE_ENCODING:
            raise ValueError(f"{what}: not a {RLE_ENCODING!r} run-length encoding")
        shape = tuple(data.get("shape", ()))
        if len(shape) != 2 or not all(_whole(n) and n > 0 for n in shape):
            raise ValueError(f"{what}: shape {list(shape)} is not two positive whole numbers")
        counts = tuple(data.get("counts", ()))
        if not all(_whole(n) and n >= 0 for n in counts):
            raise ValueError(f"{what}: run lengths must be whole numbers >= 0")
        if sum(counts) != shape[0] * shape[1]:
            raise ValueError(f"{what}: run lengths add up to {sum(counts)}, not {shape[0]} x {shape[1]}")
        return cls((int(shape[0]), int(shape[1])), tuple(int(n) for n in counts))


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def encode_mask(mask: np.ndarray) -> MaskRLE:
    """Run-length encode a 2-D boolean mask (row-major, False first).

    Raises:
        ValueError: the mask is not 2-D or has no pixels.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"a mask to encode is a non-empty 2-D array, not shape {mask.shape}")
    flat = mask.ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return MaskRLE((int(mask.shape[0]), int(mask.shape[1])), tuple(int(n) for n in runs))
