"""DICOM series: grouping, ordering by position, geometry, warnings and the choice of series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from engine.bench.io import synthetic_slice, write_ct_series
from engine.errors import ImageReadError
from engine.imaging import read_image
from engine.imaging.dicom_series import MultipleSeriesError, list_series, read_series
from engine.progress import Cancelled

SIZE = 16


def _slice_pixels(k: int) -> np.ndarray:
    """Slice ``k`` carries its index in every pixel plus a marker in the first row and column."""
    pixels = np.full((SIZE, SIZE), 100 * (k + 1), dtype=np.uint16)
    pixels[0, :] += 7  # anterior-most row
    pixels[:, 0] += 3  # first column
    return pixels


def _write_series(folder: Path, positions, orientation=(1, 0, 0, 0, 1, 0), *, uid=None, names=None,
                  numbers=None, description="AX TEST", **kwargs) -> str:
    uid = uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    names = names or [f"f{n:03d}.dcm" for n in rng.permutation(len(positions))]
    for k, position in enumerate(positions):
        ds = synthetic_slice(_slice_pixels(k), series_uid=uid, position=position, orientation=orientation,
                             instance_number=(numbers[k] if numbers else len(positions) - k),
                             description=description, pixel_spacing=(0.8, 0.5), **kwargs)
        ds.save_as(folder / names[k], enforce_file_format=True)
    return uid


def _z_positions(n=8, step=2.5, start=-10.0):
    return [(-4.0, -4.0, start + step * k) for k in range(n)]


def test_axial_series_is_ordered_by_position_not_names_or_numbers(tmp_path):
    """Shuffled file names and reversed instance numbers: slices still run inferior to superior."""
    _write_series(tmp_path, _z_positions())
    volume = read_series(tmp_path)
    assert volume.shape == (8, SIZE, SIZE)
    assert volume.kind == "volume" and volume.modality == "CT"
    # slice k holds 100 * (k + 1) stored, minus 1024 after rescale
    assert [int(volume.array[0, k, 5, 5]) for k in range(8)] == [100 * (k + 1) - 1024 for k in range(8)]
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.5))
    assert volume.orientation == "SPL"
    np.testing.assert_allclose(volume.affine[:3, 3], (-4.0, -4.0, -10.0))
    np.testing.assert_allclose((volume.affine[2, 0], volume.affine[1, 1], volume.affine[0, 2]), (2.5, 0.8, 0.5))
    assert volume.window == (40.0, 400.0)
    assert volume.header["ordered_by"] == "position"
    assert volume.header["warnings"] == []
    assert read_image(tmp_path).content_hash == volume.content_hash


def test_flipped_axial_series_is_put_in_radiological_orientation(tmp_path):
    """Columns running to the patient's right and slices stored descending still display as SPL."""
    _write_series(tmp_path, _z_positions(), orientation=(-1, 0, 0, 0, 1, 0))
    volume = read_series(tmp_path)
    assert volume.orientation == "SPL"
    assert int(volume.array[0, 0, 5, 5]) < int(volume.array[0, -1, 5, 5])  # inferior first
    # the marker column (stored first, on the patient's left) is now the last column
    assert int(volume.array[0, 0, 5, -1]) - int(volume.array[0, 0, 5, 5]) == 3
    # index (0, 0, SIZE-1) must map to the stored first pixel of the lowest slice
    corner = volume.affine @ np.array([0, 0, SIZE - 1, 1.0])
    np.testing.assert_allclose(corner[:3], (-4.0, -4.0, -10.0))


def test_oblique_series_spacing_and_affine_follow_the_normal(tmp_path):
    """An oblique stack: spacing is the gap along the normal; affine maps every index exactly."""
    angle = np.deg2rad(20)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    col = np.array([0.0, 0.0, -1.0])  # rows run inferior: a coronal-oblique plane
    normal = np.cross(row, col)
    origin = np.array([10.0, -20.0, 30.0])
    positions = [tuple(origin + normal * 3.0 * k) for k in range(6)]
    _write_series(tmp_path, positions, orientation=tuple(row) + tuple(col))
    volume = read_series(tmp_path)
    assert volume.spacing[0] == pytest.approx(3.0)
    assert volume.orientation == "PIL"  # not axial: the acquisition plane is kept
    for k in range(6):
        np.testing.assert_allclose((volume.affine @ [k, 0, 0, 1])[:3], positions[k], atol=1e-6)
    np.testing.assert_allclose((volume.affine @ [0, 1, 0, 1])[:3], origin + col * 0.8, atol=1e-6)
    np.testing.assert_allclose((volume.affine @ [0, 0, 1, 1])[:3], origin + row * 0.5, atol=1e-6)


def test_missing_slice_and_duplicate_are_reported(tmp_path):
    positions = _z_positions(8)
    del positions[4]  # a gap between -2.5 and 2.5 mm
    positions.append(positions[2])  # a duplicate of the slice at -5.0 mm
    _write_series(tmp_path, positions)
    volume = read_series(tmp_path)
    warnings = " | ".join(volume.header["warnings"])
    assert volume.shape[0] == 7
    assert "gap of 5 mm" in warnings and "1 slice(s) missing" in warnings
    assert "duplicate slice positions at -5 mm (2 images)" in warnings
    assert volume.spacing[0] == pytest.approx(2.5)
    assert volume.extras["slice_positions_mm"] == [-10.0, -7.5, -5.0, -2.5, 2.5, 5.0, 7.5]


def test_positions_missing_falls_back_to_instance_number(tmp_path):
    uid = generate_uid()
    for k, number in enumerate([3, 1, 2]):
        ds = synthetic_slice(_slice_pixels(k), series_uid=uid, position=None, instance_number=number, thickness=4.0)
        ds.save_as(tmp_path / f"x{k}.dcm", enforce_file_format=True)
    volume = read_series(tmp_path)
    assert [int(volume.array[0, n, 5, 5]) + 1024 for n in range(3)] == [200, 300, 100]
    assert volume.header["ordered_by"] == "instance number"
    assert "ordered by Instance Number" in volume.header["warnings"][0]
    assert volume.spacing[0] == 4.0


def test_several_series_raise_with_the_list_and_a_uid_picks_one(tmp_path):
    first = _write_series(tmp_path / "a", _z_positions(8), description="AX SOFT")
    second = _write_series(tmp_path / "b" / "deeper", _z_positions(5), description="AX BONE")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "README").write_bytes(b"\x00" * 300)
    with pytest.raises(MultipleSeriesError) as caught:
        read_series(tmp_path)
    found = {info.uid: info for info in caught.value.series}
    assert set(found) == {first, second}
    assert found[first].n_files == 8 and found[first].shape == (8, SIZE, SIZE)
    assert found[second].description == "AX BONE" and found[second].modality == "CT"
    assert "2 series" in str(caught.value)
    assert {info.uid for info in list_series(tmp_path)} == {first, second}
    assert read_series(tmp_path, series_uid=second).shape == (5, SIZE, SIZE)
    with pytest.raises(ImageReadError, match="not in this folder"):
        read_series(tmp_path, series_uid="1.2.3")


def test_localizer_in_the_same_series_is_left_out(tmp_path):
    uid = _write_series(tmp_path, _z_positions(6))
    scout = synthetic_slice(np.zeros((8, 8), np.uint16), series_uid=uid, position=(0, 0, 0),
                            orientation=(0, 1, 0, 0, 0, -1))
    scout.save_as(tmp_path / "scout.dcm", enforce_file_format=True)
    volume = read_series(tmp_path)
    assert volume.shape == (6, SIZE, SIZE)
    assert any("1 image(s) of another size" in w for w in volume.header["warnings"])


def test_monochrome1_series_is_inverted_with_its_window(tmp_path):
    _write_series(tmp_path, _z_positions(3), photometric="MONOCHROME1", rescale=None, window=(1000.0, 500.0))
    volume = read_series(tmp_path)
    assert int(volume.array[0, 0, 5, 5]) == 4095 - 100
    assert volume.window == (4095 - 1000.0, 500.0)
    assert "inverted" in volume.header


def test_folder_of_non_dicom_files_is_refused_quickly(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(1000):
        (tmp_path / f"file{k}.bin").write_bytes(rng.bytes(200))
    with pytest.raises(ImageReadError, match=r"no DICOM images in this folder \(1000 files looked at\)"):
        read_series(tmp_path)
    assert list_series(tmp_path) == []


def test_progress_is_reported_and_cancel_stops(tmp_path):
    _write_series(tmp_path, _z_positions(4))

    class Recorder:
        def __init__(self, cancel: bool):
            self.fractions: list[float] = []
            self.cancel = cancel

        def report(self, fraction, message=""):
            self.fractions.append(fraction)

        def cancelled(self):
            return self.cancel

    recorder = Recorder(cancel=False)
    read_series(tmp_path, progress=recorder)
    assert recorder.fractions[-1] == pytest.approx(1.0)
    assert recorder.fractions == sorted(recorder.fractions)
    with pytest.raises(Cancelled):
        read_series(tmp_path, progress=Recorder(cancel=True))


def test_a_damaged_file_in_the_series_refuses_the_whole_read(tmp_path):
    _write_series(tmp_path, _z_positions(4))
    victim = sorted(tmp_path.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(ImageReadError) as caught:
        read_series(tmp_path)
    assert caught.value.path == str(victim)
    assert "truncated pixel data" in caught.value.reason


def test_compressed_series_equals_uncompressed(tmp_path):
    write_ct_series(tmp_path / "plain", 4, 32)
    write_ct_series(tmp_path / "rle", 4, 32, compress=True)
    plain, rle = read_series(tmp_path / "plain"), read_series(tmp_path / "rle")
    assert np.array_equal(plain.array, rle.array)
    assert rle.header["transfer_syntax"] == "RLE Lossless"
    np.testing.assert_allclose(plain.affine, rle.affine)
