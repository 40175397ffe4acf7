"""Single DICOM files: value pipeline (rescale, MONOCHROME1, colour), window, clips, geometry."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from engine.bench.io import synthetic_slice
from engine.imaging import read_image
from engine.imaging.dicom import read_dicom


def _save(ds: Dataset, path):
    ds.save_as(path, enforce_file_format=True)
    return path


def _pixels(shape=(6, 5), dtype=np.uint16, scale=10):
    return (np.arange(np.prod(shape)).reshape(shape) * scale).astype(dtype)


def test_rescale_and_window_from_the_file(tmp_path):
    ds = synthetic_slice(_pixels(), series_uid=generate_uid(), position=(0, 0, 0), rescale=(0.5, -100.0))
    ds.WindowCenter, ds.WindowWidth = [50.0, 300.0], [350.0, 1500.0]  # multi-valued: first wins
    volume = read_dicom(_save(ds, tmp_path / "a.dcm"))
    assert volume.kind == "image" and volume.shape == (1, 6, 5)
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array[0, 0], _pixels() * 0.5 - 100.0)
    assert volume.window == (50.0, 350.0)
    assert volume.spacing == pytest.approx((1.0, 0.7, 0.7))
    assert volume.header["rescale_slope"] == 0.5


def test_integral_rescale_keeps_integers(tmp_path):
    ds = synthetic_slice(_pixels(), series_uid=generate_uid(), position=(0, 0, 0), rescale=(1.0, -1024.0))
    volume = read_dicom(_save(ds, tmp_path / "a.dcm"))
    assert volume.array.dtype == np.int16
    assert np.array_equal(volume.array[0, 0], _pixels().astype(np.int32) - 1024)


def test_monochrome1_is_inverted_and_recorded(tmp_path):
    ds = synthetic_slice(_pixels(), series_uid=generate_uid(), position=None, orientation=None,
                         photometric="MONOCHROME1", rescale=None, window=(1000.0, 400.0), modality="CR")
    volume = read_dicom(_save(ds, tmp_path / "cr.dcm"))
    assert np.array_equal(volume.array[0, 0], 4095 - _pixels())
    assert volume.window == (3095.0, 400.0)
    assert "MONOCHROME1" in volume.header["inverted"]
    assert volume.modality == "CR"


def test_ybr_full_is_converted_to_rgb(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[1, :, 1], rgb[:, 2, 2] = 200, 120, 250
    ds = synthetic_slice(rgb, series_uid=generate_uid(), position=None, orientation=None, rescale=None, window=None)
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    ds.PhotometricInterpretation = "YBR_FULL"
    volume = read_dicom(_save(ds, tmp_path / "ybr.dcm"))
    assert volume.channel_names == ("R", "G", "B")
    assert np.abs(volume.array[:, 0].astype(int) - np.moveaxis(rgb, -1, 0)).max() <= 2
    assert volume.header["color"] == "YBR_FULL converted to RGB"
    assert volume.window is None


def test_ybr_full_422_jpeg_from_pydicom_corpus():
    path = get_testdata_file("SC_rgb_dcmtk_+eb+cy+np.dcm")
    volume = read_dicom(path)
    reference = dcmread(path).pixel_array  # pydicom converts YBR to RGB by default
    assert np.array_equal(volume.array[:, 0], np.moveaxis(reference, -1, 0))
    assert volume.array[:, 0, 0, 0].tolist() == [254, 0, 0]  # red, not the YBR triplet


def test_palette_color_is_applied():
    path = get_testdata_file("examples_palette.dcm")
    ds = dcmread(path)
    volume = read_dicom(path)
    assert volume.channel_names == ("R", "G", "B")
    assert np.array_equal(volume.array[:, 0], np.moveaxis(apply_color_lut(ds.pixel_array, ds), -1, 0))


def test_multiframe_ultrasound_with_frame_time_is_a_clip(tmp_path):
    frames = np.stack([np.full((8, 10), 20 * k, np.uint8) for k in range(5)])
    ds = synthetic_slice(frames[0].astype(np.uint16), series_uid=generate_uid(), position=None, orientation=None,
                         rescale=None, window=None, modality="US")
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.NumberOfFrames, ds.FrameTime = 5, 40.0
    ds.PixelData = frames.tobytes()
    volume = read_image(_save(ds, tmp_path / "clip.dcm"))
    assert volume.kind == "clip" and volume.frame_time_ms == 40.0
    assert volume.shape == (5, 8, 10)
    assert [int(volume.array[0, k, 0, 0]) for k in range(5)] == [0, 20, 40, 60, 80]
    del ds.FrameTime
    ds.FrameTimeVector = [0.0, 33.0, 33.0, 34.0, 33.0]
    assert read_dicom(_save(ds, tmp_path / "clip2.dcm")).frame_time_ms == 33.0


def test_corpus_ultrasound_clip_is_rgb_clip():
    volume = read_dicom(get_testdata_file("examples_ybr_color.dcm"))
    assert volume.kind == "clip" and volume.channel_names == ("R", "G", "B")
    assert volume.shape == (30, 240, 320) and volume.frame_time_ms == pytest.approx(33.333, abs=1e-3)


def _enhanced(tmp_path, order):
    """An enhanced multi-frame: 4 axial frames stored in ``order``, per-frame rescale on one."""
    frames = np.stack([np.full((4, 4), 10 * (z + 1), np.uint16) for z in order])
    ds = synthetic_slice(frames[0], series_uid=generate_uid(), position=None, orientation=None,
                         rescale=None, window=None, modality="MR")
    del ds.PixelSpacing, ds.SliceThickness
    ds.NumberOfFrames = len(order)
    ds.PixelData = frames.tobytes()
    shared = Dataset()
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing, measures.SliceThickness = [0.9, 0.9], 3.0
    transform.RescaleSlope, transform.RescaleIntercept = 1, 0
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for z in order:
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 3.0 * z]
        item.PlanePositionSequence = Sequence([position])
        if z == 2:
            special = Dataset()
            special.RescaleSlope, special.RescaleIntercept = 2, 5
            item.PixelValueTransformationSequence = Sequence([special])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    return _save(ds, tmp_path / "enhanced.dcm")


def test_enhanced_multiframe_uses_per_frame_functional_groups(tmp_path):
    volume = read_dicom(_enhanced(tmp_path, [2, 0, 3, 1]))
    assert volume.kind == "volume" and volume.orientation == "SPL"
    assert volume.spacing == pytest.approx((3.0, 0.9, 0.9))
    # sorted by position; frame at z=2 rescaled by its own slope/intercept: 30 * 2 + 5
    assert [int(volume.array[0, k, 1, 1]) for k in range(4)] == [10, 20, 65, 40]
    np.testing.assert_allclose(volume.affine[:3, 0], (0, 0, 3.0))


def test_single_axial_ct_from_corpus_has_geometry_and_hu():
    path = get_testdata_file("CT_small.dcm")
    ds = dcmread(path)
    volume = read_dicom(path)
    assert volume.kind == "image" and volume.modality == "CT"
    assert np.array_equal(volume.array[0, 0], ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept))
    np.testing.assert_allclose(volume.affine[:3, 3], [float(v) for v in ds.ImagePositionPatient])
    assert volume.spacing[1:] == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert volume.orientation == "SPL"


def test_big_endian_is_native_and_equal():
    little = read_dicom(get_testdata_file("MR_small.dcm"))
    big = read_dicom(get_testdata_file("MR_small_bigendian.dcm"))
    assert big.array.dtype.isnative
    assert np.array_equal(little.array, big.array)
