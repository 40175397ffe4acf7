"""DICOM series: a folder of single-frame files (possibly several series and stray files).

Two passes, both on a thread pool. The grouping pass reads headers only (``stop_before_pixels``)
of every file that starts like DICOM, groups images by Series Instance UID and orders each
series by slice position (``dicom_geometry.order_stack``). The pixel pass fills one preallocated
volume: uncompressed little-endian slices are read straight from the end of the file into the
volume (verified against the Pixel Data element header, so it is pydicom's decode bit for bit),
and every other file goes through pydicom's decoders. Axial series are put in the radiological
display orientation; other planes keep theirs. Any file that fails stops the whole read: a
volume is never half loaded.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from engine.errors import ImageReadError
from engine.imaging import dicom, phi
from engine.imaging.dicom_geometry import order_stack, plane_affine, to_radiological
from engine.imaging.volume import ImageVolume
from engine.progress import Cancelled, NullProgress, Progress

#: Threads for header and pixel reads: file I/O and numpy release the GIL.
WORKERS = 4
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
_NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder, enough for a user to choose it.

    Attributes:
        uid: pass this as ``read_series(..., series_uid=uid)`` (the Series Instance UID, or the
            SOP Instance UID of a multi-frame object, which is read on its own).
        description: the series description when it is plainly technical, else None.
        modality: DICOM modality code.
        n_files: image files in the series.
        shape: ``(slices or frames, rows, cols)``.
        series_number: Series Number, if any.
    """

    uid: str
    description: str | None
    modality: str
    n_files: int
    shape: tuple[int, int, int]
    series_number: int | None = None


class MultipleSeriesError(ImageReadError):
    """The folder holds several series; ``series`` lists them so the user can pick one."""

    def __init__(self, path: str | Path, series: list[SeriesInfo]):
        super().__init__(path, f"{len(series)} series in this folder: choose one to open")
        self.series = series


@dataclass
class _Header:
    path: Path
    ds: Dataset


@dataclass
class _Group:
    info: SeriesInfo
    headers: list[_Header]
    left_out: int


def _candidate_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(files) if not name.startswith(".")]
    return found


def _read_header(path: Path) -> _Header | None:
    try:
        ds = dicom.load_dataset(path, stop_before_pixels=True)
    except ImageReadError:
        return None
    try:
        if not dicom.header_int(ds, "Rows", 0, path) or not dicom.header_int(ds, "Columns", 0, path):
            return None  # reports, structure sets, DICOMDIR: not images
        _plane_key(ds), _text(ds, "SeriesInstanceUID")  # values grouping needs must parse
    except Exception:  # damaged header: not part of any series
        return None
    return _Header(path, ds)


def _run_parallel(jobs: list, work, progress: Progress, start: float, span: float, message: str) -> list:
    """``work(job)`` for every job on the pool, in job order; progress and cancel as they finish."""
    results: list = [None] * len(jobs)
    if not jobs:
        return results
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        pending = {pool.submit(work, job): k for k, job in enumerate(jobs)}
        done_count = 0
        try:
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    results[pending.pop(future)] = future.result()
                    done_count += 1
                progress.report(start + span * done_count / len(jobs), message)
                if progress.cancelled():
                    raise Cancelled()
        finally:
            for future in pending:
                future.cancel()
    return results


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword) or "").strip()
    except Exception:  # damaged value
        return ""


def _plane_key(ds: Dataset) -> tuple:
    orientation = dicom.header_floats(ds, "ImageOrientationPatient", 6)
    rounded = tuple(round(v, 3) for v in orientation) if orientation else None
    return (_text(ds, "Rows"), _text(ds, "Columns"), _text(ds, "SamplesPerPixel"), rounded)


def _frames(header: _Header) -> int:
    try:
        return int(header.ds.get("NumberOfFrames") or 1)
    except (ValueError, TypeError):
        return 1


def _group(headers: list[_Header]) -> list[_Group]:
    by_key: dict[str, list[_Header]] = {}
    for header in headers:
        frames = _frames(header)
        key = _text(header.ds, "SeriesInstanceUID") or "(no series UID)"
        if frames > 1:  # a multi-frame object is a series of its own
            key = _text(header.ds, "SOPInstanceUID") or str(header.path)
        by_key.setdefault(key, []).append(header)
    groups = []
    for uid, members in by_key.items():
        planes = Counter(_plane_key(h.ds) for h in members)
        main = planes.most_common(1)[0][0]
        kept = [h for h in members if _plane_key(h.ds) == main]
        first = kept[0].ds
        rows, cols = dicom.header_int(first, "Rows", 0, kept[0].path), dicom.header_int(first, "Columns", 0, kept[0].path)
        number = _text(first, "SeriesNumber")
        info = SeriesInfo(
            uid=uid,
            description=phi.safe_description(_text(first, "SeriesDescription"), first),
            modality=_text(first, "Modality") or "OT",
            n_files=len(kept),
            shape=(max(len(kept), _frames(kept[0])), rows, cols),
            series_number=int(number) if number.lstrip("-").isdigit() else None,
        )
        groups.append(_Group(info, kept, len(members) - len(kept)))
    return sorted(groups, key=lambda g: (g.info.series_number is None, g.info.series_number or 0, g.info.uid))


def _scan(folder: Path, progress: Progress) -> tuple[list[_Group], int]:
    files = _candidate_files(folder)
    headers = _run_parallel(files, _read_header, progress, 0.0, 0.3, "reading DICOM headers")
    return _group([h for h in headers if h is not None]), len(files)


def list_series(folder: str | Path, progress: Progress | None = None) -> list[SeriesInfo]:
    """The image series in a folder (searched recursively), in Series Number order."""
    groups, _ = _scan(Path(folder), progress or NullProgress())
    return [g.info for g in groups]


def read_series(folder: str | Path, series_uid: str | None = None, progress: Progress | None = None) -> ImageVolume:
    """Read one series of a folder into a volume.

    Args:
        folder: the folder (searched recursively; non-DICOM files are ignored).
        series_uid: which series (a ``SeriesInfo.uid``); may be None when there is one.
        progress: receives progress; cancelling raises ``Cancelled``.

    Raises:
        MultipleSeriesError: several series and no ``series_uid``; carries the list.
        ImageReadError: no DICOM images, an unknown uid, or a file of the series is unreadable.
        Cancelled: the user cancelled.
    """
    folder = Path(folder)
    progress = progress or NullProgress()
    groups, looked_at = _scan(folder, progress)
    if not groups:
        raise ImageReadError(folder, f"no DICOM images in this folder ({looked_at} files looked at)")
    if series_uid is not None:
        groups = [g for g in groups if g.info.uid == series_uid]
        if not groups:
            raise ImageReadError(folder, "the chosen series is not in this folder")
    if len(groups) > 1:
        raise MultipleSeriesError(folder, [g.info for g in groups])
    group = groups[0]
    if len(group.headers) == 1:
        volume = dicom.read_dicom(group.headers[0].path)
        progress.report(1.0, "done")
        if group.left_out:
            header = dict(volume.header)
            header["warnings"] = header.get("warnings", []) + [_left_out_warning(group.left_out)]
            volume = volume.with_(header=header)
        return volume
    try:
        return _read_stack(folder, group, progress)
    except (ImageReadError, Cancelled):
        raise
    except MemoryError:
        raise ImageReadError(folder, "image too large to hold in memory") from None
    except Exception as exc:  # a damaged header that passed the grouping pass: one line, no values (PHI)
        raise ImageReadError(folder, f"damaged DICOM header in this series ({type(exc).__name__})") from None


def _left_out_warning(count: int) -> str:
    return f"{count} image(s) of another size or orientation in this series left out"


def _read_stack(folder: Path, group: _Group, progress: Progress) -> ImageVolume:
    headers = group.headers
    first = headers[0].ds
    orientation = dicom.header_floats(first, "ImageOrientationPatient", 6)
    positions = [dicom.header_floats(h.ds, "ImagePositionPatient", 3) for h in headers]
    numbers = [dicom.header_int(h.ds, "InstanceNumber", None, h.path) if _text(h.ds, "InstanceNumber").lstrip("-").isdigit() else None for h in headers]
    fallback = next((v[0] for k in ("SpacingBetweenSlices", "SliceThickness")
                     if (v := dicom.header_floats(first, k, 1)) and v[0] > 0), 1.0)
    stack = order_stack(positions, orientation, numbers, fallback)
    ordered = [headers[k] for k in stack.order]
    base = ordered[0].ds
    rows, cols = group.info.shape[1], group.info.shape[2]
    reader = _SliceReader(ordered, rows, cols)
    _run_parallel(list(range(len(ordered))), reader.read, progress, 0.3, 0.7, "reading DICOM pixels")
    array = reader.volume()
    spacing_yx = dicom.header_floats(base, "PixelSpacing", 2) or dicom.header_floats(base, "ImagerPixelSpacing", 2) or [1.0, 1.0]
    affine = plane_affine(orientation, stack.origin, (spacing_yx[0], spacing_yx[1]), stack.slice_step)
    array, affine = to_radiological(array, affine)
    warnings = list(stack.warnings)
    if group.left_out:
        warnings.append(_left_out_warning(group.left_out))
    if len(stack.order) < len(headers):
        warnings.append(f"{len(headers) - len(stack.order)} duplicate image(s) not shown")
    header = phi.header_summary(base)
    header.update(reader.notes)
    header.update({"files": len(headers), "ordered_by": "position" if "slice positions are missing" not in " ".join(warnings) else "instance number"})
    header["warnings"] = warnings
    return ImageVolume(
        array=array,
        spacing=(float(stack.spacing), float(spacing_yx[0]), float(spacing_yx[1])),
        affine=affine,
        modality=group.info.modality,
        kind="volume" if array.shape[1] > 1 else "image",
        source=str(folder),
        channel_names=reader.channel_names,
        window=dicom.file_window(base, reader.invert_sum) if reader.channel_names == ("intensity",) else None,
        header=header,
        extras={"slice_positions_mm": stack.positions_mm},
    )


class _SliceReader:
    """Fills one ``(N, H, W)`` (or ``(N, H, W, 3)``) array from the ordered files of a series."""

    def __init__(self, headers: list[_Header], rows: int, cols: int):
        self.headers, self.rows, self.cols = headers, rows, cols
        base = headers[0].ds
        self.color = dicom.header_int(base, "SamplesPerPixel", 1, headers[0].path) == 3 or \
            _text(base, "PhotometricInterpretation") == "PALETTE COLOR"
        self.rescales = [dicom.rescale_pairs(h.ds, 1)[0] for h in headers]
        self.invert_sum = None if self.color else dicom.invert_sum_of(base, self.rescales)
        self.notes: dict = {}
        self._color_lock = threading.Lock()
        if self.invert_sum is not None:
            self.notes["inverted"] = "MONOCHROME1 shown inverted: bright = dense"
        self.channel_names = ("R", "G", "B") if self.color else ("intensity",)
        self.raw_dtype = self._native_dtype(base)
        if self.color:
            self.out = None  # allocated from the first decoded slice (its dtype after the LUT)
        else:
            dtype = dicom.output_dtype(base, self.rescales, self.invert_sum)
            self.out = np.empty((len(headers), rows, cols), dtype=dtype)

    def _native_dtype(self, ds: Dataset) -> np.dtype | None:
        """Stored-value dtype when slices can be read straight from the file, else None."""
        meta = getattr(ds, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        bits = ds.get("BitsAllocated")
        if (syntax not in _NATIVE or self.color or bits not in (8, 16, 32) or ds.get("ModalityLUTSequence")
                or _text(ds, "PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2")):
            return None
        stored = int(ds.get("BitsStored") or bits)
        if int(ds.get("HighBit") if ds.get("HighBit") is not None else stored - 1) != stored - 1:
            return None
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")

    def read(self, k: int) -> None:
        header = self.headers[k]
        raw = self._read_native(header) if self.raw_dtype is not None else None
        if raw is None:
            full = dicom.load_dataset(header.path)
            raw = dicom.decode_stored(full, header.path)
            if raw.shape[1:3] != (self.rows, self.cols) or raw.shape[0] != 1:
                raise ImageReadError(header.path, f"image size {raw.shape[1:3]} differs from the rest of the series")
            if self.color:
                channels, _, notes = dicom.to_channels(full, raw, header.path)
                self._put_color(k, channels, notes)
                return
            header = _Header(header.path, full)
        dicom.map_values(raw, header.ds, [self.rescales[k]], self.out.dtype, self.invert_sum, out=self.out[k:k + 1])

    def _put_color(self, k: int, channels: np.ndarray, notes: dict) -> None:
        with self._color_lock:
            if self.out is None:
                self.out = np.empty((len(self.headers), self.rows, self.cols, 3), dtype=channels.dtype)
                self.notes.update(notes)
        self.out[k] = np.moveaxis(channels[:, 0], 0, -1)

    def _read_native(self, header: _Header) -> np.ndarray | None:
        """Stored values read from the end of the file, or None when the layout is not the
        plain one (pixel data last, exactly sized): the caller then decodes with pydicom."""
        dtype = self.raw_dtype
        length = self.rows * self.cols * dtype.itemsize
        with header.path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            for value_length in (length, length + 1):
                tag_at = size - value_length - 12
                if tag_at < 0:
                    continue
                handle.seek(tag_at)
                element = handle.read(12)
                explicit = element[:4] == _PIXEL_TAG and element[4:6] in (b"OW", b"OB") and \
                    struct.unpack("<I", element[8:12])[0] == value_length
                implicit = element[4:8] == _PIXEL_TAG and struct.unpack("<I", element[8:12])[0] == value_length
                if explicit or implicit:
                    raw = np.empty((1, self.rows, self.cols), dtype=dtype)
                    if handle.readinto(memoryview(raw).cast("B")) != length:
                        return None
                    return self._fix_unused_bits(raw, header.ds)
        return None

    @staticmethod
    def _fix_unused_bits(raw: np.ndarray, ds: Dataset) -> np.ndarray:
        """Mask (unsigned) or sign-extend (signed) values whose Bits Stored < Bits Allocated."""
        bits = raw.dtype.itemsize * 8
        stored = int(ds.get("BitsStored") or bits)
        if stored >= bits:
            return raw
        if raw.dtype.kind == "u":
            raw &= raw.dtype.type((1 << stored) - 1)
        else:
            shift = raw.dtype.type(bits - stored)
            raw <<= shift
            raw >>= shift
        return raw

    def volume(self) -> np.ndarray:
        if self.color:
            return np.ascontiguousarray(np.moveaxis(self.out, -1, 0))
        return self.out[None]
