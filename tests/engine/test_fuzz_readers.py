"""Mutated bytes of real DICOM files: the readers return a volume or refuse in one line, nothing else."""

from __future__ import annotations

import tempfile
from unittest import mock
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from engine.bench.io import synthetic_slice
from engine.errors import ImageReadError
from engine.imaging import dicom
from engine.imaging.dicom import read_dicom
from engine.imaging.dicom_series import read_series
from engine.imaging.volume import ImageVolume

SOURCES = {
    name: Path(get_testdata_file(name)).read_bytes()
    for name in ("MR_small.dcm", "CT_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm")
}

mutation = st.tuples(st.integers(min_value=0, max_value=1 << 20), st.integers(min_value=0, max_value=255))


def _small_images_only():
    """A mutated Rows or Number of Frames may claim gigabytes: keep the fuzzing machine safe."""
    return mock.patch.object(dicom, "MAX_DECODED_BYTES", 16 * 1024 * 1024)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: float | None) -> bytes:
    buffer = bytearray(data)
    for offset, value in edits:
        buffer[offset % len(buffer)] = value
    if cut is not None:
        buffer = buffer[: int(len(buffer) * cut)]
    return bytes(buffer)


def _check(outcome: object, path: Path) -> None:
    if isinstance(outcome, ImageReadError):
        assert "\n" not in str(outcome) and outcome.path == str(path)
        return
    assert isinstance(outcome, ImageVolume)
    assert outcome.array.ndim == 4 and outcome.array.size > 0 and outcome.array.dtype.isnative


def _outcome(read, path: Path) -> object:
    try:
        return read(path)
    except ImageReadError as error:
        return error


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(SOURCES)), edits=st.lists(mutation, min_size=1, max_size=12),
       cut=st.none() | st.floats(min_value=0.0, max_value=1.0))
def test_mutated_single_files(source, edits, cut):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.dcm"
        path.write_bytes(_mutate(SOURCES[source], edits, cut))
        with _small_images_only():
            _check(_outcome(read_dicom, path), path)


def _series_bytes() -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        blobs = []
        for k in range(3):
            ds = synthetic_slice(np.full((8, 8), k, np.uint16), series_uid="1.2.826.0.1.3680043.8.498.77",
                                 position=(0, 0, 2.0 * k))
            path = Path(folder) / f"{k}.dcm"
            ds.save_as(path, enforce_file_format=True)
            blobs.append(path.read_bytes())
        return blobs


SERIES = _series_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(victim=st.integers(min_value=0, max_value=2), edits=st.lists(mutation, min_size=1, max_size=8),
       cut=st.none() | st.floats(min_value=0.0, max_value=1.0))
def test_mutated_file_in_a_series(victim, edits, cut):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for k, blob in enumerate(SERIES):
            (folder / f"{k}.dcm").write_bytes(_mutate(blob, edits, cut) if k == victim else blob)
        with _small_images_only():
            outcome = _outcome(read_series, folder)
        if isinstance(outcome, ImageReadError):
            assert "\n" not in str(outcome)
            assert outcome.path in (str(folder), str(folder / f"{victim}.dcm"))
        else:
            _check(outcome, folder)
