"""The dispatcher hands every failure to the user as one line, but a cancel stays a cancel."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ImageReadError
from engine.imaging import open as open_module
from engine.imaging import read_image
from engine.progress import Cancelled


def test_a_cancelled_read_is_not_reported_as_a_bad_file(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00" * 64)

    def cancelled_read(p, progress):
        raise Cancelled()

    monkeypatch.setattr(open_module, "_read_file", cancelled_read)
    with pytest.raises(Cancelled):
        read_image(path)


def test_a_reader_bug_still_reaches_the_user_as_one_line(tmp_path, monkeypatch):
    path = tmp_path / "scan.nii"
    path.write_bytes(b"\x00" * 64)

    def broken_read(p, progress):
        return np.zeros(3)[5]  # IndexError inside a reader

    monkeypatch.setattr(open_module, "_read_file", broken_read)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value) and "IndexError" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".mnc", ".mha", ".nrrd"])
def test_a_known_unsupported_format_is_named(tmp_path, suffix):
    path = tmp_path / f"brain{suffix}"
    path.write_bytes(b"\x01" * 512)
    with pytest.raises(ImageReadError, match=f"unsupported file type {suffix}"):
        read_image(path)


def test_a_nifti_pair_opens_from_either_file(tmp_path):
    import nibabel as nib

    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    nib.save(nib.Nifti1Pair(data, np.diag([1.0, 2.0, 3.0, 1.0])), str(tmp_path / "brain.hdr"))
    for name in ("brain.hdr", "brain.img"):
        volume = read_image(tmp_path / name)
        assert volume.shape == (5, 4, 3) and volume.spacing == (3.0, 2.0, 1.0)
        assert sorted(volume.array.ravel().tolist()) == list(range(60))
    (tmp_path / "brain.img").unlink()
    with pytest.raises(ImageReadError, match="brain.img"):
        read_image(tmp_path / "brain.hdr")


def test_only_images_placed_in_the_patient_claim_an_orientation(tmp_path):
    from engine.imaging.volume import ImageVolume, plain_affine

    pixels = np.zeros((3, 1, 4, 4), dtype=np.uint8)
    patch = ImageVolume(pixels, (1.0, 0.5, 0.5), plain_affine((1.0, 0.5, 0.5)), "SM", "image", "p.png", ("R", "G", "B"))
    assert not patch.patient_oriented and patch.is_rgb
    oblique = np.eye(4)
    oblique[:3, :3] = [[0, 0.5, 0.1], [0, 0.1, -0.5], [1, 0, 0]]
    placed = patch.with_(affine=oblique, channel_names=("intensity", "b", "c"))
    assert placed.patient_oriented and not placed.is_rgb
