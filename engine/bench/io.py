"""``salience bench io``: our DICOM series reader against SimpleITK, side by side.

Synthesises a CT series (300 slices of 512 x 512 by default, ``--quick`` 60) twice into a
temporary folder, uncompressed and RLE Lossless, with shuffled file names, then times
``dicom_series.read_series`` and SimpleITK's ``ImageSeriesReader`` (file discovery and sorting
with ``GetGDCMSeriesFileNames`` included, as a user would call it) in interleaved repetitions,
and prints the medians and the ratio. The goal is a ratio of at most 1.5 on the uncompressed
series. The synthetic-slice writer is also what the tests build their series with.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

#: Ratio (ours / SimpleITK) the uncompressed series must stay under.
GOAL_RATIO = 1.5


def synthetic_slice(
    pixels: np.ndarray,
    *,
    series_uid: str,
    position: Sequence[float] | None,
    orientation: Sequence[float] | None = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    pixel_spacing: tuple[float, float] = (0.7, 0.7),
    thickness: float = 1.0,
    instance_number: int | None = 1,
    rescale: tuple[float, float] | None = (1.0, -1024.0),
    window: tuple[float, float] | None = (40.0, 400.0),
    modality: str = "CT",
    description: str = "SYNTHETIC CT",
    study_uid: str = "1.2.826.0.1.3680043.8.498.1",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
) -> Dataset:
    """One single-frame DICOM image (Explicit VR Little Endian) with the given geometry.

    Args:
        pixels: ``(rows, cols)`` stored values (uint16 or int16), or ``(rows, cols, 3)`` uint8 RGB.
        position, orientation: Image Position / Orientation (Patient); None leaves them out.
        rescale: (slope, intercept) or None to leave them out.
        window: (centre, width) or None.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.SeriesDescription = description
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYNTH-0001"
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if orientation is not None:
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
    ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds.SliceThickness = float(thickness)
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    if pixels.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored = 16, bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def phantom(n_slices: int, size: int, seed: int = 0) -> np.ndarray:
    """A ``(n, size, size)`` uint16 CT-like phantom: a body ellipse with noise, 12-bit values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.46 * size)) ** 2 < 1
    base = np.where(body, 1064, 24).astype(np.uint16)
    volume = np.empty((n_slices, size, size), dtype=np.uint16)
    for k in range(n_slices):
        volume[k] = base + rng.integers(0, 40, size=(size, size), dtype=np.uint16) + k % 100
    return volume


def write_ct_series(folder: Path, n_slices: int, size: int, *, compress: bool = False, seed: int = 0) -> list[Path]:
    """Write an axial CT series with shuffled file names; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    volume = phantom(n_slices, size, seed)
    order = np.random.default_rng(seed + 1).permutation(n_slices)
    paths = []
    for k in range(n_slices):
        ds = synthetic_slice(volume[k], series_uid=series_uid, position=(-180.0, -180.0, -150.0 + 1.25 * k),
                             instance_number=k + 1, thickness=1.25)
        if compress:
            ds.compress(RLELossless, volume[k], encoding_plugin="pylibjpeg")
        path = folder / f"img{order[k]:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _read_ours(folder: Path) -> np.ndarray:
    from engine.imaging.dicom_series import read_series

    return read_series(folder).array[0]


def _read_sitk(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def _time(read, folder: Path) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    array = read(folder)
    return time.perf_counter() - start, array


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints one line per series and returns 0 (1 if SimpleITK is missing)."""
    parser = argparse.ArgumentParser(prog="salience bench io", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 slices instead of 300")
    parser.add_argument("--slices", type=int, default=None, help="number of slices (overrides --quick)")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of each slice")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions per reader")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        print("SimpleITK is not installed (pip install -e .[dev]); nothing to compare with", file=sys.stderr)
        return 1
    n_slices = args.slices or (60 if args.quick else 300)
    with tempfile.TemporaryDirectory(prefix="salience-bench-io-") as tmp:
        series = {"uncompressed": Path(tmp) / "plain", "RLE Lossless": Path(tmp) / "rle"}
        start = time.perf_counter()
        for name, folder in series.items():
            write_ct_series(folder, n_slices, args.size, compress=name != "uncompressed")
        print(f"wrote 2 series of {n_slices} x {args.size} x {args.size} in {time.perf_counter() - start:.1f} s")
        timings: dict[tuple[str, str], list[float]] = {}
        for name, folder in series.items():  # warm the page cache and check both agree
            _, ours = _time(_read_ours, folder)
            _, theirs = _time(_read_sitk, folder)
            same = ours.shape == theirs.shape and np.array_equal(ours.astype(np.int32), theirs.astype(np.int32))
            print(f"{name}: ours {ours.shape} {ours.dtype}, SimpleITK {theirs.shape} {theirs.dtype}, "
                  f"identical values: {same}")
        for _ in range(args.repeats):
            for name, folder in series.items():
                for reader_name, read in (("ours", _read_ours), ("SimpleITK", _read_sitk)):
                    timings.setdefault((name, reader_name), []).append(_time(read, folder)[0])
        for name in series:
            ours = statistics.median(timings[(name, "ours")])
            theirs = statistics.median(timings[(name, "SimpleITK")])
            verdict = ""
            if name == "uncompressed":
                verdict = f"  goal <= {GOAL_RATIO}: {'met' if ours / theirs <= GOAL_RATIO else 'MISSED'}"
            print(f"{name:13s} median of {args.repeats}: ours {ours * 1000:7.1f} ms  SimpleITK "
                  f"{theirs * 1000:7.1f} ms  ratio {ours / theirs:.2f}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
