"""``salience explain`` for a clip: the clip verdict, raw frame maps (.npy) and an overlay video (.mp4).

``OUT.npy`` receives the raw signed maps over the full frame (``(T, H, W)`` for one class,
``(K, T, H, W)`` with ``--all-classes``) and, beside it, ``OUT.mp4`` the overlay video of the
shown class, so one command gives a reviewer both. ``OUT.mp4`` alone writes only the video. The
video blends the map (normalised over the whole clip, so colours compare across frames) on the
frames, at the clip's frame rate, with the window's look (``engine.imaging.render``).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import SalienceError
from engine.imaging import ImageVolume
from engine.models.bundle import Bundle
from engine.models.classes import class_index
from engine.analysis.clip import ClipAnalysis, analyse_clip
from engine.tasks.lung_ultrasound.preprocess import grey_frames
from engine.imaging.render import OverlaySpec, colormap, render_slice
from engine.explain.summary import map_range

MAPS_SUFFIX = ".npy"
VIDEO_SUFFIX = ".mp4"
#: The look of the overlay video: the viewer's default colour map and opacity.
VIDEO_COLORMAP = "inferno"
VIDEO_OPACITY = 0.6
VIDEO_CODEC = "libx264"
#: Frame rate used when a clip carries no timing.
FALLBACK_FPS = 25.0


def output_paths(output: Path) -> tuple[Path | None, Path]:
    """``(maps, video)`` paths for ``output``: ``OUT.npy`` gives both, ``OUT.mp4`` the video only.

    Raises:
        SalienceError: another suffix, or a folder that does not exist.
    """
    suffix = output.suffix.lower()
    if suffix not in (MAPS_SUFFIX, VIDEO_SUFFIX):
        raise SalienceError(f"{output}: a clip's maps are written to OUT.npy (with OUT.mp4 beside it) or OUT.mp4, not {output.suffix or 'no suffix'}")
    if not output.parent.is_dir():
        raise SalienceError(f"{output.parent}: output folder does not exist")
    if suffix == MAPS_SUFFIX:
        return output, output.with_suffix(VIDEO_SUFFIX)
    return None, output


def display_frames(volume: ImageVolume) -> np.ndarray:
    """``(T, H, W)`` grey or ``(T, H, W, 3)`` colour frames as stored, for the video."""
    if volume.is_rgb:
        return np.moveaxis(np.asarray(volume.array), 0, -1)
    return grey_frames(volume)


def frame_rate(volume: ImageVolume) -> Fraction:
    """The clip's mean frame rate as a fraction (``FALLBACK_FPS`` when it has no timing)."""
    fps = 1000.0 / volume.frame_time_ms if volume.frame_time_ms else FALLBACK_FPS
    return Fraction(fps).limit_denominator(1001)


def write_overlay_video(volume: ImageVolume, maps: np.ndarray, path: Path) -> dict:
    """Encode the frames with ``maps`` (``(T, H, W)`` raw, on the frame grid) blended on top.

    Odd frame sizes are padded by one edge row or column (H.264 in 4:2:0 needs even sizes).

    Returns:
        ``{"path", "frames", "fps", "size"}`` of what was written.
    """
    frames = display_frames(volume)
    if maps.shape != frames.shape[:3]:
        raise ValueError(f"maps {maps.shape} do not match frames {frames.shape[:3]}")
    centre, width = volume.default_window()
    value_range = map_range(maps, 0, "volume", show_negative=False)
    lut = colormap(VIDEO_COLORMAP)
    height, width_px = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    rate = frame_rate(volume)
    container = av.open(str(path), mode="w")
    try:
        stream = container.add_stream(VIDEO_CODEC, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width_px, height, "yuv420p"
        for t in range(frames.shape[0]):
            rgba = render_slice(frames[t], centre, width, OverlaySpec(maps[t], value_range, lut, VIDEO_OPACITY))
            rgb = np.pad(rgba[..., :3], ((0, height - rgba.shape[0]), (0, width_px - rgba.shape[1]), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return {"path": str(path), "frames": int(frames.shape[0]), "fps": float(rate), "size": [height, width_px]}


def _summary(analysis: ClipAnalysis) -> dict:
    probabilities = np.asarray(analysis.prediction.probabilities)
    top = probabilities.argmax(axis=1)
    names = analysis.class_names
    per_frame = {
        name: {
            "mean": float(probabilities[:, k].mean()),
            "min": float(probabilities[:, k].min()),
            "max": float(probabilities[:, k].max()),
            "at_frame": int(probabilities[:, k].argmax()),
            "frames_predicted": int((top == k).sum()),
        }
        for k, name in enumerate(names)
    }
    key_frames = {
        names[k]: [
            {
                "frame": int(i),
                "time_ms": round(float(analysis.frame_times_ms[i]), 3),
                "importance": round(float(explanation.importance[i]), 6),
                "probability": round(float(probabilities[i, k]), 6),
            }
            for i in explanation.key_frames
        ]
        for k, explanation in analysis.key_frames.items()
    }
    return {"per_frame_probability": per_frame, "key_frames": key_frames}


def explain(
    path: str | Path,
    volume: ImageVolume,
    bundle: Bundle,
    method: str,
    output: Path,
    class_name: str | None,
    all_classes: bool,
    with_quality: bool,
    score: str | None = None,
) -> dict:
    """Explain a clip's verdict; write the maps and the overlay video; return the JSON payload.

    Args:
        path: the clip file (for the payload).
        volume: the clip as read.
        bundle: the frame classifier.
        method: CAM method name.
        output: ``OUT.npy`` (maps, and the video beside it) or ``OUT.mp4`` (the video only).
        class_name: class to explain and show (name or index); None: the clip verdict's class.
        all_classes: write maps of every class to ``OUT.npy`` (the video shows the chosen class).
        with_quality: measure the chosen class's map on its most important key frame.

    Raises:
        SalienceError: bad output path, unknown class or method.
    """
    maps_path, video_path = output_paths(Path(output))
    try:
        analysis = analyse_clip(bundle, volume, method=method,
                                classes=None if all_classes else _chosen(bundle, volume, class_name), score=score)
    except ValueError as exc:
        raise SalienceError(str(exc)) from None
    k = analysis.verdict_class if class_name is None else class_index(bundle.class_names, class_name)
    shown = analysis.maps_of(k)
    written = analysis.maps if all_classes else shown
    if maps_path is not None:
        np.save(maps_path, written)
    video = write_overlay_video(volume, shown, video_path)
    payload = {
        "source": volume.source,
        "output": {"maps": None if maps_path is None else str(maps_path), "video": video},
        "bundle": {"name": bundle.name, "version": bundle.version},
        "method": method,
        "score": score or "method default",
        "layer": bundle.target_layer,
        "class": "all" if all_classes else bundle.class_names[k],
        "class_shown": bundle.class_names[k],
        "verdict": {name: float(p) for name, p in zip(bundle.class_names, analysis.verdict)},
        "verdict_class": bundle.class_names[analysis.verdict_class],
        "verdict_rule": "mean of the frame probabilities",
        "frames": volume.n_slices,
        "frame_time_ms": volume.frame_time_ms,
        "crop_box": None if analysis.crop_box is None else list(analysis.crop_box.bounds),
        **_summary(analysis),
        "shape": list(written.shape),
        "axes": ("class, " if all_classes else "") + "frame, row, col (full frame; zero outside the scan region)",
        "stats": {"min": float(written.min()), "max": float(written.max()), "mean": float(written.mean())},
        "raw": "signed, not normalised",
    }
    if with_quality:
        payload["quality"] = _quality(bundle, volume, analysis, k, method, score)
    return payload


def _chosen(bundle: Bundle, volume: ImageVolume, class_name: str | None) -> list[int]:
    """The one class to explain: the named one, or the clip verdict's (one extra forward pass over
    the frames, far cheaper than maps of every class on the full frame)."""
    if class_name is not None:
        return [class_index(bundle.class_names, class_name)]
    verdict = np.asarray(bundle.predict(volume).probabilities).mean(axis=0)
    return [int(np.argmax(verdict))]


def _quality(bundle: Bundle, volume: ImageVolume, analysis: ClipAnalysis, k: int, method: str,
             score: str | None = None) -> dict:
    """``quality_report`` on the class's most important key frame, with its map on the network's window."""
    from engine.analysis.quality import quality_report

    frame = analysis.key_frames[k].key_frames[0]
    cam = analysis.maps_of(k)[frame]
    window = cam if analysis.crop_box is None else analysis.crop_box.crop(cam)
    report = quality_report(bundle, volume, window, method=method, class_index=k, item=frame, score=score)
    report["key_frame_time_ms"] = float(analysis.frame_times_ms[frame])
    return report
