"""Every file of pydicom's and nibabel's test data opens with the right pixels or is refused in
one clear line; empty, truncated and random files are refused the same way."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.pixels import apply_color_lut, apply_modality_lut

from engine.errors import ImageReadError
from engine.imaging import read_image
from engine.imaging.dicom import read_dicom
from engine.imaging.dicom_series import MultipleSeriesError, list_series, read_series

# get_testdata_files() with its default pattern lists the files installed with pydicom only.
CORPUS = sorted(Path(f) for f in get_testdata_files() if Path(f).is_file())
KNOWN_REASON = re.compile(
    r"^(not a DICOM file|file is empty|no pixel data|incomplete image header|invalid|unsupported transfer syntax"
    r"|truncated pixel data|.+ pixel data could not be decoded|damaged|image too large|not a NIfTI image"
    r"|not a readable NIfTI file|corrupt NIfTI file|expected a 2-D, 3-D or 4-D image|no transfer syntax"
    r"|unsupported file type)"
)
EXPECTED_REFUSALS = {
    "MR_truncated.dcm": "truncated pixel data (8130 of 8192 bytes)",
    "JPEG-lossy.dcm": "JPEG Extended (Process 2 and 4) pixel data could not be decoded",
    "rtplan.dcm": "no pixel data: not an image (RT Plan Storage)",
    "README.txt": "not a DICOM file",
    "badVR.dcm": "invalid NumberOfFrames in the header",
    "nested_priv_SQ.dcm": "incomplete image header: missing Rows",
}


def _reference(path: Path) -> np.ndarray:
    """pydicom's own decode with the same LUT, rescale and MONOCHROME1 steps, as (C, N, H, W)."""
    ds = dcmread(path, force=True)
    array = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) == 1:
        array = array[None]
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    if array.ndim == 4:
        return np.moveaxis(array, -1, 0)
    values = apply_modality_lut(array, ds)
    if photometric == "MONOCHROME1":
        bits = int(ds.BitsStored)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        ends = sorted((lo * slope + intercept, hi * slope + intercept))
        values = ends[0] + ends[1] - values
    return values[None]


def _same_up_to_reorientation(ours: np.ndarray, reference: np.ndarray) -> bool:
    """Equal, allowing the flips/transposes/frame sorts the display orientation may apply."""
    candidates = [reference, np.swapaxes(reference, 2, 3)]
    for candidate in candidates:
        for flips in itertools.product((False, True), repeat=3):
            flipped = candidate
            for axis, flip in zip((1, 2, 3), flips):
                flipped = np.flip(flipped, axis) if flip else flipped
            if flipped.shape == ours.shape and np.allclose(ours, flipped, rtol=1e-6, atol=1e-6):
                return True
    return False


def _assert_one_clear_line(error: ImageReadError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message
    assert error.path == str(path) and message.startswith(str(path))
    assert KNOWN_REASON.match(error.reason), error.reason


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(CORPUS[0].parent)) for p in CORPUS])
def test_pydicom_corpus_opens_exactly_or_is_refused(path):
    try:
        volume = read_dicom(path)
    except ImageReadError as error:
        _assert_one_clear_line(error, path)
        if path.name in EXPECTED_REFUSALS:
            assert error.reason.startswith(EXPECTED_REFUSALS[path.name])
        return
    assert path.name not in EXPECTED_REFUSALS
    assert volume.array.dtype.isnative and np.all(np.isfinite(volume.array))
    assert _same_up_to_reorientation(volume.array, _reference(path)), "pixels differ from pydicom's decode"


def test_pydicom_series_folders():
    folder = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
    with pytest.raises(MultipleSeriesError) as caught:
        read_series(folder)
    assert len(caught.value.series) == len(list_series(folder)) >= 5
    ct = read_series(folder / "98892001" / "CT5N")
    assert ct.shape == (5, 16, 16) and ct.modality == "CT" and ct.orientation == "SPL"
    positions = ct.extras["slice_positions_mm"]
    assert positions == sorted(positions) and len(set(positions)) == 5
    radial = read_series(folder / "98892003" / "MR700")  # 7 projections, 7 orientations
    assert radial.shape == (1, 16, 16)
    assert "6 image(s) of another size or orientation" in radial.header["warnings"][0]


def _nibabel_files() -> list[Path]:
    from nibabel.testing import data_path

    return sorted(p for p in Path(data_path).rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _nibabel_files(), ids=lambda p: p.name)
def test_nibabel_test_data_opens_or_is_refused(path):
    import nibabel as nib

    try:
        volume = read_image(path)
    except ImageReadError as error:
        _assert_one_clear_line(error, path)
        return
    assert volume.array.dtype.isnative
    if not path.name.endswith((".nii", ".nii.gz")):  # nibabel ships a few DICOM files too
        assert _same_up_to_reorientation(volume.array, _reference(path))
        return
    data = np.asanyarray(nib.load(str(path)).dataobj)
    assert volume.array.size == data.size  # same values, whatever the display reorientation
    ours, theirs = np.sort(volume.array, axis=None), np.sort(data, axis=None).astype(volume.array.dtype)
    assert np.array_equal(ours, theirs, equal_nan=True)


def test_empty_random_and_truncated_files_are_refused(tmp_path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    random_bytes = tmp_path / "noise"
    random_bytes.write_bytes(np.random.default_rng(1).bytes(5000))
    preamble_only = tmp_path / "preamble.dcm"
    preamble_only.write_bytes(b"\x00" * 128 + b"DICM" + np.random.default_rng(2).bytes(300))
    cases = {empty: "file is empty", random_bytes: "not a DICOM file", preamble_only: ""}
    source = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    for fraction in (0.01, 0.05, 0.2, 0.5, 0.9):
        cut = tmp_path / f"cut{fraction}.dcm"
        cut.write_bytes(source[: int(len(source) * fraction)])
        cases[cut] = ""
    for path, reason in cases.items():
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        _assert_one_clear_line(caught.value, path)
        assert caught.value.reason.startswith(reason)
    # cut inside the trailing padding only: the pixels are whole, so the image opens exactly
    padding_cut = tmp_path / "padding_cut.dcm"
    padding_cut.write_bytes(source[:-10])
    assert np.array_equal(read_image(padding_cut).array, read_dicom(get_testdata_file("MR_small.dcm")).array)
