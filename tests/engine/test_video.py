"""Clip reader: real POCUS clips of every container/codec, true timing, bounds, damage."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.progress import RecordingProgress
from PIL import Image

from engine.errors import ImageReadError
from engine.imaging.video import luma, read_clip
from engine.progress import Cancelled

POCUS = Path("lung-ultrasound") / "pocus_videos"


def _clip(shared_data: Path, name: str) -> Path:
    for folder in ("convex", "linear"):
        path = shared_data / POCUS / folder / name
        if path.is_file():
            return path
    pytest.skip(f"{name} is missing from the shared data")


def _metadata(shared_data: Path) -> dict[str, dict[str, str]]:
    table = shared_data / "lung-ultrasound" / "dataset_metadata.csv"
    with table.open(encoding="utf-8", errors="replace") as handle:
        return {row["Filename"]: row for row in csv.DictReader(handle)}


def _write_clip(path: Path, frames: list[np.ndarray], pts_ms: list[int]) -> Path:
    """Encode RGB frames losslessly enough (FFV1, 4:4:4) with explicit millisecond timestamps."""
    container = av.open(str(path), "w")
    stream = container.add_stream("ffv1", rate=25)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv444p"
    stream.time_base = Fraction(1, 1000)
    for rgb, pts in zip(frames, pts_ms):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.mark.needs_data
@pytest.mark.parametrize(
    "name",
    [
        "Cov-Atlas+(45).gif",  # GIF, 100 ms frame delays
        "Pneu_liftl_pneu_case3_clip5.mp4",  # H.264 4:2:0
        "Pneu_northumbria_0409_set2_vid4.avi",  # MPEG-4 part 2 in AVI
        "Pneu_Avi_Video_004.mp4",  # H.264 4:4:4, 31 frames
    ],
)
def test_real_clips_match_the_published_frame_rate_and_size(shared_data, name):
    """Frame count, size and rate agree with the dataset's own metadata table."""
    path = _clip(shared_data, name)
    row = _metadata(shared_data)[path.stem]
    volume = read_clip(path)
    width, height = (int(v) for v in row["Resolution"].split("x"))
    assert volume.kind == "clip" and volume.modality == "US"
    assert volume.array.dtype == np.uint8
    assert volume.array.shape == (1, int(row["Length (frames)"]), height, width)
    assert volume.channel_names == ("intensity",)
    assert 1000.0 / volume.frame_time_ms == pytest.approx(float(row["Framerate"]), abs=1.0)
    assert volume.array.std() > 10  # real ultrasound texture, not a blank decode


@pytest.mark.needs_data
def test_gif_pixels_equal_pillow_decoding(shared_data):
    path = _clip(shared_data, "Cov-Atlas+(45).gif")
    volume = read_clip(path)
    with Image.open(path) as gif:
        gif.seek(7)
        expected = luma(np.asarray(gif.convert("RGB")))
    np.testing.assert_array_equal(volume.array[0, 7], expected)
    assert volume.extras["frame_times_ms"][:3].tolist() == [0.0, 100.0, 200.0]


@pytest.mark.needs_data
def test_mpeg_program_stream_and_pixel_aspect(shared_data):
    mpeg = read_clip(_clip(shared_data, "Reg_pat1Image_133043.mpeg"), max_frames=10)
    assert mpeg.array.shape == (1, 10, 370, 370)
    assert mpeg.frame_time_ms == pytest.approx(40.0)  # 25 fps, timed from 0 though pts start at 0.54 s
    assert mpeg.extras["frame_times_ms"][0] == 0.0
    wide = read_clip(_clip(shared_data, "Cov_combatting_Image1.mp4"), max_frames=2)
    assert wide.spacing == (1.0, 1.0, 1.125)  # 9:8 sample aspect ratio


@pytest.mark.needs_data
def test_stride_max_frames_and_memory_bound(shared_data):
    path = _clip(shared_data, "Pneu_liftl_pneu_case3_clip5.mp4")
    full = read_clip(path)
    strided = read_clip(path, stride=3, max_frames=5)
    np.testing.assert_array_equal(strided.array, full.array[:, 0:15:3])
    assert strided.frame_time_ms == pytest.approx(3 * full.frame_time_ms)
    assert strided.header["complete"] is False and full.header["complete"] is True
    _, _, height, width = full.array.shape
    bounded = read_clip(path, max_bytes=4 * height * width * 3)
    assert bounded.n_slices == 4


def test_variable_frame_rate_uses_timestamps(tmp_path):
    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(5)]
    path = _write_clip(tmp_path / "vfr.mkv", frames, [0, 40, 80, 200, 240])
    volume = read_clip(path)
    assert volume.extras["frame_times_ms"].tolist() == [0.0, 40.0, 80.0, 200.0, 240.0]
    assert volume.frame_time_ms == pytest.approx(60.0)
    assert volume.header["variable_frame_rate"] is True
    assert volume.array[0, :, 16, 24].tolist() == pytest.approx([0, 40, 80, 120, 160], abs=2)


def test_colour_doppler_is_rgb_and_a_tint_is_grey(tmp_path):
    grey = np.tile(np.linspace(0, 250, 48, dtype=np.uint8), (32, 1))
    tinted = np.stack([grey * 0.9, grey * 0.95, grey], axis=-1).astype(np.uint8)  # blue preset
    doppler = np.repeat(grey[..., None], 3, axis=-1)
    doppler[8:20, 10:30] = (230, 20, 20)  # a red flow box
    colour = read_clip(_write_clip(tmp_path / "doppler.mkv", [doppler] * 3, [0, 40, 80]))
    assert colour.channel_names == ("R", "G", "B")
    assert colour.array[:, 1, 12, 20].tolist() == pytest.approx([230, 20, 20], abs=3)
    tint = read_clip(_write_clip(tmp_path / "tint.mkv", [tinted] * 3, [0, 40, 80]))
    assert tint.channel_names == ("intensity",)
    assert tint.array.shape[0] == 1


def test_gif_frame_durations(tmp_path):
    path = tmp_path / "delays.gif"
    images = [Image.fromarray(np.full((20, 30), v, np.uint8)) for v in (10, 100, 200)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=[100, 250, 50], loop=0)
    volume = read_clip(path)
    assert volume.extras["frame_times_ms"].tolist() == [0.0, 100.0, 350.0]
    assert volume.array[0, :, 5, 5].tolist() == [10, 100, 200]


@pytest.mark.needs_data
def test_progress_reaches_one_and_cancel_stops(shared_data):
    path = _clip(shared_data, "Pneu_liftl_pneu_case3_clip5.mp4")
    recorder = RecordingProgress()
    read_clip(path, progress=recorder)
    assert recorder.fractions[-1] == 1.0 and recorder.fractions == sorted(recorder.fractions)
    with pytest.raises(Cancelled):
        read_clip(path, progress=RecordingProgress(cancel_after=5))


@pytest.mark.needs_data
@pytest.mark.parametrize(
    ("name", "keep"),
    [
        ("Pneu_liftl_pneu_case3_clip5.mp4", 0.9),  # index (moov) at the end: cut off
        ("Pneu_northumbria_0409_set2_vid4.avi", 0.5),  # header declares more frames than held
        ("Reg_pat1Image_133043.mpeg", 0.9),  # last packet cut in half
        ("Cov-Atlas+(45).gif", 0.97),  # no GIF trailer
    ],
)
def test_truncated_real_clips_raise(shared_data, tmp_path, name, keep):
    source = _clip(shared_data, name)
    data = source.read_bytes()
    cut = tmp_path / source.name
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError) as error:
        read_clip(cut)
    assert error.value.path == str(cut)
    assert "\n" not in str(error.value)
    assert any(word in error.value.reason for word in ("truncated", "corrupt", "not a readable"))


def test_empty_and_random_files_raise(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_clip(empty)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="noise.mp4: not a readable video"):
        read_clip(noise)
