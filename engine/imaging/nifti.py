"""NIfTI reader (nibabel): single files, 4-D series, and multi-sequence cases.

A multi-sequence case is a folder (or any file in it) holding ``<case>_<sequence>.nii.gz`` files,
as in ``glioma-lgg/<case>/<case>_{t1,flair,t1ce,seg}.nii.gz``: the sequences become channels of
one volume and the segmentation becomes its label layer.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from engine.errors import ImageReadError
from engine.imaging import quirks
from engine.imaging.volume import ImageVolume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Sequences in the order they become channels; anything else follows alphabetically.
SEQUENCE_ORDER = ("t1", "flair", "t1ce", "t2")
#: File-name suffixes that mark a label layer rather than an image sequence.
LABEL_SUFFIXES = ("seg", "mask", "label", "labels")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_CASE_FILE = re.compile(r"^(?P<case>.+)_(?P<seq>[A-Za-z0-9]+)\.nii(\.gz)?$")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _load(path: Path) -> nib.Nifti1Image:
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(path, "file is empty")
        image = nib.load(str(path))
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair, nib.Nifti2Pair)):
            raise ImageReadError(path, f"not a NIfTI image ({type(image).__name__})")
        data = np.asanyarray(image.dataobj)
        if data.dtype.byteorder == ">":  # torch and most consumers need native byte order
            data = data.astype(data.dtype.newbyteorder("="))
    except ImageReadError:
        raise
    except (EOFError, OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise ImageReadError(path, f"not a readable NIfTI file ({_short(exc)})") from None
    except Exception as exc:  # nibabel/zlib raise a wide variety on corrupt input
        raise ImageReadError(path, f"corrupt NIfTI file ({_short(exc)})") from None
    if data.ndim not in (2, 3, 4):
        raise ImageReadError(path, f"expected a 2-D, 3-D or 4-D image, found {data.ndim}-D")
    if data.size == 0:
        raise ImageReadError(path, "image has no voxels")
    affine, note = _corrected(path, image.header, image.affine)
    return nib.Nifti1Image(data, affine, image.header, extra={"geometry_note": note} if note else None)


def _corrected(path: Path, header, affine: np.ndarray) -> tuple[np.ndarray, str | None]:
    """The file's affine with known header faults fixed (``engine.imaging.quirks``), and the note."""
    qform_code = int(header["qform_code"]) if "qform_code" in header else 0
    return quirks.corrected_affine(path, affine, qform_code)


def file_affine(path: str | Path) -> np.ndarray:
    """The RAS affine of a NIfTI file's voxel grid as Salience reads it (known header faults fixed).

    Writers use it to put a map back into the source file's own voxel order.
    """
    path = Path(path)
    header = nib.load(str(path)).header
    return _corrected(path, header, header.get_best_affine())[0]


def write_on_grid(array: np.ndarray, volume: ImageVolume, output: str | Path, dtype=np.float32, description: str = "") -> None:
    """Write an ``(N, H, W)`` array on ``volume``'s grid (e.g. a CAM) as NIfTI (float32 by
    default; an integer ``dtype`` for label maps, ``description`` for the header's descrip field).

    The inverse of the reader's display reorientation: the file lies in the input's world space
    and, when the volume came from NIfTI, in the source file's own voxel order, so it overlays the
    input voxel for voxel in any viewer.

    Raises:
        ValueError: the array does not have the volume's ``(N, H, W)`` shape.
    """
    if array.shape != volume.shape:
        raise ValueError(f"array {array.shape} does not match the image grid {volume.shape}")
    data = np.transpose(array, (2, 1, 0)).astype(dtype)  # (col, row, slice): NIfTI's i, j, k
    affine = _RAS_TO_LPS @ volume.affine[:, [2, 1, 0, 3]]  # the same flip maps LPS back to RAS
    image = nib.Nifti1Image(data, affine)
    reference = _source_file(volume)
    if reference is not None:
        source_axes = io_orientation(file_affine(reference))
        image = image.as_reoriented(ornt_transform(io_orientation(affine), source_axes))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    if description:
        image.header["descrip"] = description.encode("ascii", "replace")[:79]
    nib.save(image, str(output))


def _source_file(volume: ImageVolume) -> Path | None:
    """The NIfTI file whose grid the volume was read from, if it came from NIfTI."""
    if not str(volume.header.get("format", "")).startswith("NIfTI"):
        return None
    source = Path(volume.source)
    candidate = source / volume.header["file"] if source.is_dir() else source
    return candidate if candidate.is_file() else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _to_display(image: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """Reorient to (slice->S, row->P, col->L) and return ``(C, N, H, W)`` array and LPS affine."""
    data = np.asanyarray(image.dataobj)
    if data.ndim == 2:
        data = data[:, :, None]
    frames = data.shape[3] if data.ndim == 4 else 1
    affine = image.affine
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(("L", "P", "S")))
    spatial = data.reshape(data.shape[:3] + (frames,))
    reoriented = apply_orientation(spatial, transform)  # (L, P, S, frames)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, spatial.shape[:3])
    array = np.ascontiguousarray(np.transpose(reoriented, (3, 2, 1, 0)))  # (frames, S, P, L)
    lps = _RAS_TO_LPS @ new_affine
    index_affine = lps[:, [2, 1, 0, 3]]  # voxel index order (slice, row, col)
    return array, index_affine


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    # NIfTI stores float32: round away its noise (0.699999988 mm is 0.7 mm).
    return tuple(round(float(np.linalg.norm(affine[:3, k])), 6) for k in range(3))  # type: ignore[return-value]


def _summary(image: nib.Nifti1Image, path: Path) -> dict:
    header = image.header
    return {
        "format": "NIfTI-1" if isinstance(header, nib.Nifti1Header) else type(header).__name__,
        "file": path.name,
        "dtype": str(header.get_data_dtype()),
        "dim": [int(x) for x in header.get_data_shape()],
        "zooms": [round(float(z), 4) for z in header.get_zooms()],
        "qform_code": int(header["qform_code"]) if "qform_code" in header else None,
        "sform_code": int(header["sform_code"]) if "sform_code" in header else None,
        **({"geometry_note": image.extra["geometry_note"]} if image.extra.get("geometry_note") else {}),
    }


def read_nifti(path: str | Path) -> ImageVolume:
    """Read one NIfTI file. A 4-D file becomes channels (one per volume in the 4th dimension)."""
    path = Path(path)
    image = _load(path)
    array, affine = _to_display(image)
    names = ("intensity",) if array.shape[0] == 1 else tuple(f"t{k}" for k in range(array.shape[0]))
    return ImageVolume(
        array=array,
        spacing=_spacing(affine),
        affine=affine,
        modality="MR",
        kind="volume" if array.shape[1] > 1 else "image",
        source=str(path),
        channel_names=names,
        header=_summary(image, path),
    )


def case_files(path: str | Path) -> tuple[str, dict[str, Path], Path | None] | None:
    """Find a multi-sequence case: ``(case id, {sequence: file}, label file)`` or None."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    groups: dict[str, dict[str, Path]] = {}
    for entry in sorted(folder.iterdir()):
        match = _CASE_FILE.match(entry.name)
        if match and entry.is_file():
            groups.setdefault(match["case"], {})[match["seq"].lower()] = entry
    if path.is_file():
        match = _CASE_FILE.match(path.name)
        if not match:
            return None
        groups = {match["case"]: groups.get(match["case"], {})}
    cases = [(case, files) for case, files in groups.items() if len(files) >= 2]
    if len(cases) != 1:
        return None
    case, files = cases[0]
    label = next((files.pop(s) for s in LABEL_SUFFIXES if s in files), None)
    if not files:
        return None
    return case, files, label


def read_nifti_case(path: str | Path) -> ImageVolume:
    """Read a multi-sequence case into one multi-channel volume with its label layer.

    Raises:
        ImageReadError: when the sequences do not share one grid, or any file is unreadable.
    """
    path = Path(path)
    found = case_files(path)
    if found is None:
        raise ImageReadError(path, "no multi-sequence NIfTI case (<case>_<sequence>.nii.gz) here")
    case, files, label_file = found
    order = [s for s in SEQUENCE_ORDER if s in files] + sorted(s for s in files if s not in SEQUENCE_ORDER)
    channels, reference = [], None
    for sequence in order:
        image = _load(files[sequence])
        array, affine = _to_display(image)
        if reference is None:
            reference = (array.shape[1:], affine, image, files[sequence])
        elif array.shape[1:] != reference[0] or not np.allclose(affine, reference[1], atol=1e-3):
            raise ImageReadError(
                files[sequence],
                f"grid {array.shape[1:]} does not match {reference[3].name} {reference[0]}",
            )
        channels.append(array[0])
    assert reference is not None
    labels = None
    if label_file is not None:
        label_array, label_affine = _to_display(_load(label_file))
        if label_array.shape[1:] != reference[0]:
            raise ImageReadError(label_file, f"mask grid {label_array.shape[1:]} does not match the images {reference[0]}")
        labels = np.ascontiguousarray(label_array[0]).astype(np.uint8)
    header = _summary(reference[2], reference[3])
    header.update({"case": case, "sequences": order, "mask": label_file.name if label_file else None})
    return ImageVolume(
        array=np.stack(channels),
        spacing=_spacing(reference[1]),
        affine=reference[1],
        modality="MR",
        kind="volume",
        source=str(path if path.is_dir() else path.parent),
        channel_names=tuple(order),
        labels=labels,
        label_names={1: "FLAIR abnormality"} if labels is not None else {},
        header=header,
    )
