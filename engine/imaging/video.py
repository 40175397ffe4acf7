"""Ultrasound clip reader (PyAV/FFmpeg): mp4, avi, mov, mpeg, gif and friends.

A clip becomes one ``ImageVolume`` of kind ``"clip"`` whose array is ``(C, T, H, W)`` uint8:

* one channel (``"intensity"``) when the colour channels are (near) equal - B-mode ultrasound,
  also when a viewer tinted it (sepia or blue presets) - computed as BT.601 luma;
* three channels ``("R", "G", "B")`` when real colour is present (colour Doppler boxes).

Timing comes from each decoded frame's presentation timestamp, not from a nominal rate, so
variable-frame-rate clips (phones, screen recorders) and GIF frame delays are honoured:
``frame_time_ms`` is the mean interval between the kept frames and
``extras["frame_times_ms"]`` holds every kept frame's time from the first one.

Long clips are bounded by ``max_frames``, ``stride`` and ``max_bytes``; the header records when
a clip was cut short. Corrupt and truncated files raise ``ImageReadError`` (FFmpeg flags the
damaged packet, an AVI header declares more frames than the file holds, a GIF lacks its trailer).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import ImageReadError
from engine.imaging.volume import ImageVolume, plain_affine
from engine.progress import NullProgress, Progress, check_cancelled

#: Upper bound on the decoded pixels of one clip (RGB during decoding), 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30
#: A pixel counts as coloured when a channel departs from the pixel's mean by more than this
#: (0-255 scale). Tinted B-mode presets stay below ~20; Doppler colour is far above.
COLOUR_DEVIATION = 32
#: A frame is colour when more than this fraction of its pixels are coloured (a one-pixel
#: coloured border line from a screen grab stays below it).
COLOUR_FRACTION = 0.01
#: A container that declares N frames but yields fewer than this fraction of them is truncated.
MIN_DECLARED_FRACTION = 0.8


@dataclass(frozen=True)
class _Decoded:
    frames: list[np.ndarray]  # (H, W, 3) uint8 each
    times_s: list[float | None]
    frames_seen: int
    complete: bool
    colour: bool


def read_clip(
    path: str | Path,
    progress: Progress | None = None,
    *,
    max_frames: int | None = None,
    stride: int = 1,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImageVolume:
    """Decode a video clip or animated GIF into a ``(C, T, H, W)`` clip volume.

    Args:
        path: the clip file.
        progress: receives the decoded fraction; its ``cancelled()`` stops decoding.
        max_frames: keep at most this many frames (after ``stride``); None keeps all.
        stride: keep every ``stride``-th decoded frame (1 keeps all).
        max_bytes: keep no more frames than fit in this many bytes of RGB pixels.

    Returns:
        An ``ImageVolume`` with ``kind="clip"``, ``modality="US"``, uint8 pixels, the mean
        frame interval in ``frame_time_ms`` and per-frame times in ``extras["frame_times_ms"]``.

    Raises:
        ImageReadError: empty, unreadable, corrupt or truncated file, or no video stream.
        engine.progress.Cancelled: the progress object asked to stop.
    """
    path = Path(path)
    progress = progress or NullProgress()
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    if path.suffix.lower() == ".gif":
        _check_gif_trailer(path)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise ImageReadError(path, f"not a readable video ({_ffmpeg_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise ImageReadError(path, "file holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        header = _stream_summary(container, stream)
        decoded = _decode(path, container, stream, progress, max_frames, stride, max_bytes)
    except av.error.FFmpegError as exc:
        raise ImageReadError(path, f"corrupt or truncated video ({_ffmpeg_reason(exc)})") from None
    finally:
        container.close()
    return _to_volume(path, decoded, header, stride)


def _check_gif_trailer(path: Path) -> None:
    """A GIF ends with the trailer byte 0x3B; FFmpeg silently returns a cut-off GIF's frames."""
    with path.open("rb") as handle:
        if handle.read(6)[:3] != b"GIF":
            raise ImageReadError(path, "not a GIF file (no GIF signature)")
        handle.seek(-1, 2)
        if handle.read(1) != b";":
            raise ImageReadError(path, "truncated GIF: the file ends before its trailer")


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    return (getattr(exc, "strerror", None) or str(exc)).strip().splitlines()[0][:160]


def _stream_summary(container: av.container.InputContainer, stream: av.video.VideoStream) -> dict:
    rate = stream.average_rate or stream.guessed_rate
    sar = stream.sample_aspect_ratio
    return {
        "format": container.format.name,
        "codec": stream.codec_context.name,
        "width": stream.codec_context.width,
        "height": stream.codec_context.height,
        "declared_frames": int(stream.frames or 0),
        "nominal_fps": float(rate) if rate else None,
        "pixel_aspect": float(sar) if sar else 1.0,
        "duration_s": float(container.duration / av.time_base) if container.duration else None,
    }


def _decode(
    path: Path,
    container: av.container.InputContainer,
    stream: av.video.VideoStream,
    progress: Progress,
    max_frames: int | None,
    stride: int,
    max_bytes: int,
) -> _Decoded:
    width, height = stream.codec_context.width, stream.codec_context.height
    expected = _expected_frames(container, stream)
    keep_limit = max(1, max_bytes // max(1, width * height * 3))
    if max_frames is not None:
        keep_limit = min(keep_limit, max_frames)
    frames: list[np.ndarray] = []
    times: list[float | None] = []
    seen = 0
    colour = False
    progress.report(0.0, f"Decoding {path.name}")
    for packet in container.demux(stream):
        if packet.size and packet.is_corrupt:
            raise ImageReadError(path, f"corrupt or truncated video data after frame {seen}")
        for frame in stream.decode(packet):
            check_cancelled(progress)
            if seen % stride == 0:
                if frames and (frame.width, frame.height) != (width, height):
                    frame = frame.reformat(width=width, height=height)
                rgb = frame.to_ndarray(format="rgb24")
                width, height = rgb.shape[1], rgb.shape[0]
                colour = colour or is_colour(rgb)
                frames.append(rgb)
                times.append(float(frame.time) if frame.pts is not None else None)
            seen += 1
            if expected:
                progress.report(min(1.0, seen / expected), f"Decoded frame {seen} of ~{expected}")
            if len(frames) >= keep_limit:
                return _Decoded(frames, times, seen, complete=False, colour=colour)
    if not frames:
        raise ImageReadError(path, "video stream holds no decodable frames")
    declared = int(stream.frames or 0)
    if declared and seen < MIN_DECLARED_FRACTION * declared:
        raise ImageReadError(path, f"truncated video: {seen} of {declared} declared frames present")
    progress.report(1.0, f"Decoded {seen} frames")
    return _Decoded(frames, times, seen, complete=True, colour=colour)


def _expected_frames(container: av.container.InputContainer, stream: av.video.VideoStream) -> int:
    if stream.frames:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if rate and container.duration:
        return max(1, round(float(rate) * container.duration / av.time_base))
    return 0


def is_colour(rgb: np.ndarray) -> bool:
    """True when an ``(H, W, 3)`` frame holds real colour rather than grey or a uniform tint.

    Every second pixel in each direction is tested, which is plenty for Doppler boxes.
    """
    sample = rgb[::2, ::2].astype(np.int16)
    deviation = np.abs(sample - sample.mean(axis=2, keepdims=True)).max(axis=2)
    return bool(np.mean(deviation > COLOUR_DEVIATION) > COLOUR_FRACTION)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of ``(..., 3)`` uint8 RGB, rounded to uint8 (grey stays exact)."""
    weighted = rgb[..., 0] * np.uint32(299) + rgb[..., 1] * np.uint32(587) + rgb[..., 2] * np.uint32(114)
    return ((weighted + 500) // 1000).astype(np.uint8)


def grey_frames(volume: ImageVolume) -> np.ndarray:
    """``(T, H, W)`` grey levels: the grey channel, or BT.601 luma of an RGB clip.

    Raises:
        ValueError: the volume is neither grey (one channel) nor RGB.
    """
    if volume.is_rgb:
        return luma(np.moveaxis(np.asarray(volume.array), 0, -1))
    if volume.array.shape[0] == 1:
        return np.asarray(volume.array[0])
    raise ValueError(f"{volume.source}: expected a grey or RGB clip, got channels {list(volume.channel_names)}")


def _frame_times_ms(times_s: list[float | None], nominal_fps: float | None, stride: int) -> np.ndarray:
    """Kept frames' times from the first, from timestamps; nominal rate when they are unusable."""
    if all(t is not None for t in times_s):
        times = np.asarray(times_s, dtype=np.float64)
        if len(times) < 2 or np.all(np.diff(times) > 0):
            return (times - times[0]) * 1000.0
    step_ms = 1000.0 * stride / nominal_fps if nominal_fps else 0.0
    return np.arange(len(times_s), dtype=np.float64) * step_ms


def _to_volume(path: Path, decoded: _Decoded, header: dict, stride: int) -> ImageVolume:
    frames = decoded.frames
    count, height, width = len(frames), frames[0].shape[0], frames[0].shape[1]
    channels = 3 if decoded.colour else 1
    array = np.empty((channels, count, height, width), dtype=np.uint8)
    for index in range(count):
        rgb = frames[index]
        if decoded.colour:
            array[:, index] = np.moveaxis(rgb, 2, 0)
        else:
            array[0, index] = luma(rgb)
        frames[index] = None  # type: ignore[call-overload]  # free decoded RGB as we go
    times_ms = _frame_times_ms(decoded.times_s, header["nominal_fps"], stride)
    if count > 1 and times_ms[-1] > 0:
        frame_time_ms: float | None = float(times_ms[-1] / (count - 1))
    elif header["nominal_fps"]:
        frame_time_ms = 1000.0 * stride / header["nominal_fps"]
    else:
        frame_time_ms = None
    intervals = np.diff(times_ms)
    header = dict(
        header,
        frames_decoded=decoded.frames_seen,
        frames_kept=count,
        stride=stride,
        complete=decoded.complete,
        variable_frame_rate=bool(count > 2 and np.ptp(intervals) > 0.1 * max(np.median(intervals), 1e-6)),
        colour=decoded.colour,
        spacing_is_physical=False,
    )
    spacing = (1.0, 1.0, float(Fraction(header["pixel_aspect"]).limit_denominator(1000)))
    return ImageVolume(
        array=array,
        spacing=spacing,
        affine=plain_affine(spacing),
        modality="US",
        kind="clip",
        source=str(path),
        channel_names=("R", "G", "B") if decoded.colour else ("intensity",),
        frame_time_ms=frame_time_ms,
        window=(127.5, 255.0),
        header=header,
        extras={"frame_times_ms": times_ms},
    )
