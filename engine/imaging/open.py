"""``read_image``: one entry point that picks the reader for a path.

Readers are chosen by what a file is (its magic bytes and suffix), not by trust in the name
alone. Every failure becomes an ``ImageReadError`` naming the path and the reason.
``find_images`` lists the cases below a folder, as ``read_image`` would open them.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ImageReadError, SalienceError
from engine.imaging import nifti
from engine.imaging.volume import ImageVolume
from engine.progress import Cancelled, NullProgress, Progress

CLIP_SUFFIXES = (".mp4", ".avi", ".mov", ".gif", ".mpeg", ".mpg", ".m4v", ".webm")
PATCH_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".mrxs", ".vms", ".bif")
#: Image formats Salience does not read; named so the user hears which, not "not a DICOM file".
UNSUPPORTED_SUFFIXES = (".mnc", ".par", ".rec", ".mha", ".mhd", ".nrrd", ".nhdr", ".mgz", ".v")
READABLE = "DICOM, NIfTI (.nii, .nii.gz), clips (mp4, avi, mov, gif, mpeg), patches (png, jpg, tif) or slides"


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image(path: str | Path, progress: Progress | None = None, series_uid: str | None = None) -> ImageVolume:
    """Read a file or folder into an ``ImageVolume``.

    Args:
        path: a NIfTI file or multi-sequence case folder, a DICOM file or series folder, an
            ultrasound clip, a histopathology patch or whole-slide image.
        progress: receives progress for slow reads (series, slides); may be None.
        series_uid: for a DICOM folder holding several series, the one to read (see
            ``dicom_series.list_series``); without it such a folder raises ``MultipleSeriesError``.

    Raises:
        ImageReadError: the path does not exist or cannot be read as an image.
    """
    path = Path(path)
    progress = progress or NullProgress()
    if not path.exists():
        raise ImageReadError(path, "no such file or folder")
    try:
        if path.is_dir():
            return _read_folder(path, progress, series_uid)
        return _read_file(path, progress)
    except (SalienceError, Cancelled):
        raise
    except MemoryError:
        raise ImageReadError(path, "image is too large to hold in memory") from None
    except Exception as exc:  # a reader bug must still reach the user as one line
        raise ImageReadError(path, f"could not be read ({type(exc).__name__}: {exc})") from exc


def _read_folder(path: Path, progress: Progress, series_uid: str | None = None) -> ImageVolume:
    if nifti.case_files(path) is not None:
        return nifti.read_nifti_case(path)
    from engine.imaging import dicom_series

    return dicom_series.read_series(path, series_uid=series_uid, progress=progress)


def _read_file(path: Path, progress: Progress) -> ImageVolume:
    name = path.name.lower()
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    if nifti.is_nifti(path):
        if nifti.case_files(path) is not None:
            return nifti.read_nifti_case(path)
        return nifti.read_nifti(path)
    if path.suffix.lower() in (".hdr", ".img"):  # a NIfTI-1 pair; nibabel refuses plain Analyze
        return nifti.read_nifti(path)
    if _is_dicom(path):
        from engine.imaging import dicom

        return dicom.read_dicom(path)
    if name.endswith(CLIP_SUFFIXES):
        from engine.imaging import video

        return video.read_clip(path, progress=progress)
    if name.endswith(TIFF_SUFFIXES):
        from engine.imaging import slide

        return slide.read_slide_or_patch(path, progress=progress)
    if name.endswith(PATCH_SUFFIXES):
        from engine.imaging import slide

        return slide.read_patch(path)
    if path.suffix.lower() in UNSUPPORTED_SUFFIXES:
        raise ImageReadError(path, f"unsupported file type {path.suffix}; Salience reads {READABLE}")
    # No telling suffix: DICOM files from archives often have none.
    from engine.imaging import dicom

    return dicom.read_dicom(path)


def find_images(folder: str | Path) -> list[Path]:
    """Every image below ``folder`` that ``read_image`` would open as one case, in path order.

    A folder holding a multi-sequence NIfTI case (``<case>_t1.nii.gz``, ``<case>_flair.nii.gz``, ...)
    or several DICOM files is one case (the folder); every other file whose name or first bytes
    say it is an image (NIfTI, DICOM, a clip, a patch, a slide, or a format Salience names as
    unsupported, so that the caller can say so) is one case. Hidden files and folders are skipped.
    The folder itself may be the one case.

    Raises:
        ImageReadError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(root, "not a folder")
    found: list[Path] = []
    for current, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        here = Path(current)
        paths = [here / name for name in sorted(files) if not name.startswith(".")]
        dicom = [p for p in paths if _is_dicom(p)]
        if nifti.case_files(here) is not None or len(dicom) > 1:
            found.append(here)
            paths = [p for p in paths if p not in dicom and not _in_case(p)]
        found.extend(p for p in paths if p in dicom or _has_image_name(p))
    return found


def _in_case(path: Path) -> bool:
    """A file of a multi-sequence NIfTI case (read with its folder)."""
    return nifti.is_nifti(path) and nifti.case_files(path) is not None


def looks_like_image(path: str | Path) -> bool:
    """Whether a file's name or first bytes say it is an image ``read_image`` opens (or names as
    unsupported); ``read_image`` decides whether it really reads."""
    path = Path(path)
    return path.is_file() and (_has_image_name(path) or _is_dicom(path))


def _has_image_name(path: Path) -> bool:
    name = path.name.lower()
    suffixes = nifti.NIFTI_SUFFIXES + CLIP_SUFFIXES + PATCH_SUFFIXES + TIFF_SUFFIXES + UNSUPPORTED_SUFFIXES
    return name.endswith(suffixes) or path.suffix.lower() == ".hdr"
