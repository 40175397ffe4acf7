"""``ImageVolume``: the one in-memory image type every reader returns.

Axis convention (all readers follow it, so the viewer, the models and the CAM engine never care
where an image came from):

* ``array`` is always 4-D: ``(channels, slices_or_frames, rows, cols)``. A 2-D image has one
  slice; a clip has one slice per frame; an RGB image has three channels.
* ``affine`` maps a voxel index ``(slice, row, col, 1)`` to patient coordinates in millimetres,
  in DICOM's LPS convention (x to the patient's left, y to posterior, z to superior).
* Readers of oriented data (DICOM series, NIfTI) put axial volumes in the radiological display
  orientation: columns run from the patient's right to left, rows from anterior to posterior,
  slices from inferior to superior. ``orientation`` names the direction of each index axis
  (e.g. ``"SPL"``: slice to Superior, row to Posterior, col to Left).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

VolumeKind = Literal["volume", "image", "clip", "slide"]


@dataclass(frozen=True, eq=False)
class ImageVolume:
    """Pixels plus the geometry and a PHI-free header summary.

    Attributes:
        array: ``(C, N, H, W)`` pixel data, rescaled to real-world values where the format says
            how (DICOM rescale slope/intercept); integer types are kept where no rescale applies.
        spacing: millimetres between slices, rows and columns ``(dz, dy, dx)``; for clips the
            first entry is 1.0 and ``frame_time_ms`` gives the timing.
        affine: 4 x 4 index-to-patient (LPS, mm) matrix, see the module docstring.
        modality: DICOM modality code ("MR", "CT", "US", "SM" for slide microscopy, "OT").
        kind: "volume", "image" (one 2-D image), "clip" (frames in time) or "slide".
        source: the path the image came from (file or folder).
        channel_names: one name per channel ("flair", "t1", "R", ...).
        frame_time_ms: milliseconds between frames of a clip, else None.
        window: default display window ``(centre, width)`` in array units, or None to derive one.
        labels: optional label layer ``(N, H, W)`` aligned with ``array`` (e.g. a segmentation).
        label_names: names of the label values, e.g. ``{1: "FLAIR abnormality"}``.
        header: PHI-free summary of the source header (no names, ids, dates of birth).
        extras: reader-specific data that is not pixels (e.g. a slide's pyramid handle).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str
    kind: VolumeKind
    source: str
    channel_names: tuple[str, ...] = ("intensity",)
    frame_time_ms: float | None = None
    window: tuple[float, float] | None = None
    labels: np.ndarray | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 4:
            raise ValueError(f"ImageVolume array must be (C, N, H, W), got shape {self.array.shape}")
        if len(self.channel_names) != self.array.shape[0]:
            raise ValueError(
                f"{len(self.channel_names)} channel names for {self.array.shape[0]} channels"
            )
        if self.labels is not None and self.labels.shape != self.array.shape[1:]:
            raise ValueError(f"labels {self.labels.shape} do not match image {self.array.shape[1:]}")
        if self.affine.shape != (4, 4):
            raise ValueError("affine must be 4 x 4")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices_or_frames, rows, cols)``."""
        return tuple(self.array.shape[1:])  # type: ignore[return-value]

    @property
    def n_slices(self) -> int:
        return self.array.shape[1]

    @property
    def orientation(self) -> str:
        """Direction each index axis points to, e.g. ``"SPL"``; ``"???"`` when unknown."""
        return axis_codes(self.affine)

    @property
    def patient_oriented(self) -> bool:
        """True when the affine places the image in the patient (orientation letters mean something).

        Clips, patches and slides read without patient geometry carry ``plain_affine`` (index axes
        scaled by spacing); for those the viewer must not print anatomical direction letters.
        """
        if self.kind == "volume":
            return True
        return not np.allclose(self.affine[:3, :3], plain_affine(self.spacing)[:3, :3])

    @property
    def is_rgb(self) -> bool:
        """Three channels named R, G, B: shown as colour, not as three grey channels."""
        return self.channel_names == ("R", "G", "B")

    @property
    def content_hash(self) -> str:
        """SHA-256 of the pixels and geometry: the identity of a case in the database."""
        return content_hash(self.array, self.spacing, self.affine)

    def channel(self, name: str) -> np.ndarray:
        """The ``(N, H, W)`` array of one named channel."""
        try:
            return self.array[self.channel_names.index(name)]
        except ValueError:
            raise KeyError(f"no channel {name!r}; channels are {self.channel_names}") from None

    def with_(self, **changes: Any) -> "ImageVolume":
        """A copy with some fields replaced (the volume itself is immutable)."""
        return replace(self, **changes)

    def default_window(self) -> tuple[float, float]:
        """The file's window, or one spanning the 0.5th to 99.5th percentile of the pixels."""
        if self.window is not None:
            return self.window
        sample = self.array[:, :: max(1, self.n_slices // 16)]
        lo, hi = np.percentile(sample, (0.5, 99.5))
        if hi <= lo:
            lo, hi = float(sample.min()), float(sample.max()) + 1.0
        return (float(lo + hi) / 2.0, float(hi - lo))


def content_hash(array: np.ndarray, spacing: tuple[float, ...], affine: np.ndarray) -> str:
    """Hash of pixel bytes, dtype, shape and geometry (rounded so float noise does not matter)."""
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.round(np.asarray(spacing, dtype=np.float64), 4).tobytes())
    h.update(np.round(np.asarray(affine, dtype=np.float64), 4).tobytes())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


_AXIS_CODES = (("R", "L"), ("A", "P"), ("I", "S"))  # negative, positive direction in LPS


def axis_codes(affine: np.ndarray) -> str:
    """Direction of each index axis of an LPS affine, as letters ("SPL" for axial radiological)."""
    codes = []
    for k in range(3):
        column = np.asarray(affine[:3, k], dtype=float)
        norm = np.linalg.norm(column)
        if norm == 0:
            codes.append("?")
            continue
        axis = int(np.argmax(np.abs(column)))
        codes.append(_AXIS_CODES[axis][1] if column[axis] > 0 else _AXIS_CODES[axis][0])
    return "".join(codes)


def plain_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Affine for an image with no patient orientation: index axes scaled by spacing.

    Index ``(slice, row, col)`` maps to ``(x=col*dx, y=row*dy, z=slice*dz)``, which reads as
    "SPL"-like for display purposes without claiming a real patient orientation.
    """
    dz, dy, dx = spacing
    affine = np.zeros((4, 4))
    affine[0, 2] = dx
    affine[1, 1] = dy
    affine[2, 0] = dz
    affine[3, 3] = 1.0
    return affine
