"""What ``salience predict`` and ``salience explain`` write and print, from a ``CaseAnalysis``.

The analysis itself is ``engine.analysis.analyse_case``'s; here it becomes files a reviewer can
open elsewhere and the JSON payload the command prints:

* a volume (or a still image) -> ``OUT.nii.gz``/``OUT.nii`` on the input's voxel grid, or ``OUT.npy``;
  a single RGB patch may instead be written as ``OUT.png``, a colour overlay on the patch;
* a clip -> ``OUT.npy`` with the raw frame maps and ``OUT.mp4`` beside it, an overlay video at the
  clip's frame rate (``OUT.mp4`` alone writes only the video);
* a whole slide -> ``OUT.npy`` (the stitched raw map on the thumbnail grid) or ``OUT.png`` (an
  overlay on the thumbnail).

Maps in the JSON are summarised with ``engine.explain.summary.map_summary``: the same keys the
database stores.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from engine.errors import SalienceError
from engine.explain.summary import map_range, map_summary
from engine.imaging import ImageVolume, nifti
from engine.imaging.render import OverlaySpec, blend_overlay, colormap, render_slice

#: What a slide's ``slide_score(s)`` are: a second figure beside its verdict (``verdict_payload``).
MEAN_TILE_RULE = "mean tile probability over tissue tiles"

if TYPE_CHECKING:
    from engine.analysis.result import CaseAnalysis

#: ``write(analysis, volume, class_index) -> payload``.
Writer = Callable[["CaseAnalysis", ImageVolume, int], dict]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npy")
MAPS_SUFFIX = ".npy"
VIDEO_SUFFIX = ".mp4"
SLIDE_SUFFIXES = (".npy", ".png")
#: The look of the overlay video: the viewer's default colour map and opacity.
VIDEO_COLORMAP = "inferno"
VIDEO_OPACITY = 0.6
VIDEO_CODEC = "libx264"
#: Frame rate used when a clip carries no timing.
FALLBACK_FPS = 25.0
#: PNG overlays: opacity at the map's strongest positive evidence, scaled by this percentile.
PNG_OPACITY = 0.6
PNG_PERCENTILE = 99.0
TOP_TILES = 5


def writer_for(volume: ImageVolume, output: Path, all_classes: bool, with_quality: bool) -> Writer:
    """The writer of ``output`` for this image, checked before any model runs.

    Raises:
        SalienceError: an output name or option that does not suit the image, in one line.
    """
    name = output.name.lower()
    if volume.kind == "clip":
        maps_path, video_path = output_paths(output)
        return lambda analysis, vol, k: _write_clip(analysis, vol, k, maps_path, video_path, all_classes)
    if volume.kind == "slide":
        if output.suffix.lower() not in SLIDE_SUFFIXES:
            raise SalienceError(f"{output}: a slide or patch map is written as .npy (raw) or .png (overlay)")
        if all_classes and not name.endswith(".npy"):
            raise SalienceError(f"{output}: --all-classes writes (classes, rows, cols) and needs .npy")
        if with_quality:
            raise SalienceError(f"{volume.source}: --quality measures one patch or slice; it is not available for whole slides")
        return lambda analysis, vol, k: _write_slide(analysis, vol, k, output, all_classes)
    if name.endswith(".png") and volume.kind == "image" and not (all_classes or with_quality):
        if volume.n_slices != 1 or not volume.is_rgb:
            raise SalienceError(f"{volume.source}: a PNG overlay needs one RGB patch")
        return lambda analysis, vol, k: _write_patch_png(analysis, vol, k, output)
    if not name.endswith(VOLUME_SUFFIXES):
        also = ", or .png for a single image without --all-classes or --quality" if volume.kind == "image" else ""
        raise SalienceError(f"{output}: output must end in .nii.gz, .nii or .npy{also}")
    if all_classes and not name.endswith(".npy"):
        raise SalienceError(f"{output}: --all-classes writes (classes, slices, rows, cols) and needs .npy")
    return lambda analysis, vol, k: _write_volume(analysis, vol, k, output, all_classes)


def _head(analysis, volume: ImageVolume, output, k: int | None) -> dict:
    """The keys every ``salience explain`` payload starts with."""
    method = analysis.methods[0]
    return {
        "source": volume.source,
        "output": output,
        "bundle": {"name": analysis.bundle_name, "version": analysis.bundle_version},
        "method": method,
        "score": analysis.score or "method default",
        "layer": analysis.target_layer,
        "class": "all" if k is None else analysis.class_names[k],
    }


def _write_volume(analysis: "CaseAnalysis", volume: ImageVolume, k: int, output: Path, all_classes: bool) -> dict:
    map_set = analysis.maps[analysis.methods[0]]
    written = map_set.maps if all_classes else map_set.of(k)
    if output.name.lower().endswith(".npy"):
        np.save(output, written)
    else:
        try:
            nifti.write_on_grid(written, volume, output)
        except ValueError as exc:
            raise SalienceError(f"{output}: {exc}") from None
    return {
        **_head(analysis, volume, str(output), None if all_classes else k),
        **verdict_payload(analysis),
        **({"notes": list(analysis.notes)} if analysis.notes else {}),
        "shape": list(written.shape),
        "axes": ("class, " if all_classes else "") + "slice, row, col (same grid as the input)",
        "stats": map_summary(written).to_dict(),
        "raw": "signed, not normalised",
    }


# -- clips ---------------------------------------------------------------------------------------


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
    from engine.imaging.video import grey_frames

    if volume.is_rgb:
        return np.moveaxis(np.asarray(volume.array), 0, -1)
    return grey_frames(volume)


def frame_rate(volume: ImageVolume) -> Fraction:
    """The clip's mean frame rate as a fraction (``FALLBACK_FPS`` when it has no timing)."""
    fps = 1000.0 / volume.frame_time_ms if volume.frame_time_ms else FALLBACK_FPS
    return Fraction(fps).limit_denominator(1001)


def write_overlay_video(volume: ImageVolume, maps: np.ndarray, path: Path) -> dict:
    """Encode the frames with ``maps`` (``(T, H, W)`` raw, on the frame grid) blended on top.

    The map is normalised over the whole clip (so colours compare across frames), with the
    window's look (``engine.imaging.render``). Odd frame sizes are padded by one edge row or
    column (H.264 in 4:2:0 needs even sizes).

    Returns:
        ``{"path", "frames", "fps", "size"}`` of what was written.
    """
    import av

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


def _clip_summary(analysis: "CaseAnalysis") -> dict:
    """Per-class frame probability summary and each explained class's key frames."""
    probabilities = np.asarray(analysis.probabilities)
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
        for k, explanation in analysis.maps[analysis.methods[0]].key_frames.items()
    }
    return {"per_frame_probability": per_frame, "key_frames": key_frames}


def _write_clip(analysis: "CaseAnalysis", volume: ImageVolume, k: int, maps_path: Path | None, video_path: Path,
                all_classes: bool) -> dict:
    map_set = analysis.maps[analysis.methods[0]]
    shown = map_set.of(k)
    written = map_set.maps if all_classes else shown
    if maps_path is not None:
        np.save(maps_path, written)
    video = write_overlay_video(volume, shown, video_path)
    box = analysis.crop_box
    return {
        **_head(analysis, volume, {"maps": None if maps_path is None else str(maps_path), "video": video},
                None if all_classes else k),
        "class_shown": analysis.class_names[k],
        **verdict_payload(analysis),
        "frames": volume.n_slices,
        "frame_time_ms": volume.frame_time_ms,
        "crop_box": None if box is None else list(box.bounds),
        **_clip_summary(analysis),
        "notes": list(analysis.notes),
        "shape": list(written.shape),
        "axes": ("class, " if all_classes else "") + "frame, row, col (full frame; zero outside the scan region)",
        "stats": map_summary(written).to_dict(),
        "raw": "signed, not normalised",
    }


# -- slides and patches --------------------------------------------------------------------------


def overlay_rgb(rgb: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The map's positive evidence in the 'jet' colours over an RGB image.

    Args:
        rgb: ``(H, W, 3)`` uint8 image (thumbnail or patch).
        cam: ``(H, W)`` raw signed map on the same grid; NaN (no tile) and negative values are
            drawn as no evidence.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    positive = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float64), nan=0.0), 0.0, None)
    scale = float(np.percentile(positive[positive > 0], PNG_PERCENTILE)) if (positive > 0).any() else 1.0
    normalised = np.clip(positive / scale, 0.0, 1.0).astype(np.float32)
    return blend_overlay(rgb, normalised, colormap("jet"), PNG_OPACITY)[..., :3]


def write_overlay_png(rgb: np.ndarray, cam: np.ndarray, output: Path) -> None:
    """Write ``overlay_rgb(rgb, cam)`` as a PNG."""
    from PIL import Image

    Image.fromarray(overlay_rgb(rgb, cam)).save(output, format="PNG")


def _thumbnail_rgb(volume: ImageVolume) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(np.asarray(volume.array[:, 0]), 0, 2)).astype(np.uint8)


def _write_slide(analysis: "CaseAnalysis", volume: ImageVolume, k: int, output: Path, all_classes: bool) -> dict:
    map_set = analysis.maps[analysis.methods[0]]
    details = analysis.slide
    grid = details.grid_shape
    npy = output.suffix.lower() == ".npy"
    written = map_set.maps[:, 0] if all_classes else map_set.of(k)[0]
    if npy:
        np.save(output, written.astype(np.float32))
    else:
        write_overlay_png(_thumbnail_rgb(volume), map_set.of(k)[0], output)
    return {
        **_head(analysis, volume, str(output), None if all_classes else k),
        **verdict_payload(analysis),
        "slide_score": {name: float(s) for name, s in zip(analysis.class_names, analysis.probabilities.mean(axis=0))},
        "slide_score_rule": MEAN_TILE_RULE,
        "tiles": len(details.tiles),
        "tile_level": details.level,
        "tile_size_level0": details.tile_size0,
        "tile_mpp": details.tile_mpp,
        "notes": list(analysis.notes),
        "top_tiles": analysis.top_tiles(k, TOP_TILES),
        "shape": list(written.shape) if npy else [grid[0], grid[1], 3],
        "axes": ("class, " if all_classes else "") + "row, col (thumbnail grid)" if npy else "row, col, RGB",
        "grid_downsample": details.grid_downsample,
        "stats": map_summary(map_set.of(k)[0]).to_dict(),
        "raw": "signed, not normalised; NaN off tissue" if npy else "positive part drawn, scaled to its 99th percentile",
    }


def _write_patch_png(analysis: "CaseAnalysis", volume: ImageVolume, k: int, output: Path) -> dict:
    cam = analysis.maps[analysis.methods[0]].of(k)[0]
    write_overlay_png(_thumbnail_rgb(volume), cam, output)
    return {
        **_head(analysis, volume, str(output), k),
        "probabilities": {name: float(p) for name, p in zip(analysis.class_names, analysis.probabilities[0])},
        "shape": [int(volume.shape[1]), int(volume.shape[2]), 3],
        "stats": map_summary(cam).to_dict(),
        "raw": "positive part drawn, scaled to its 99th percentile",
    }


# -- predictions ---------------------------------------------------------------------------------


def verdict_payload(analysis: "CaseAnalysis") -> dict:
    """A clip's or a slide's pooled answer: per-class probability (a slide's: share of its tissue
    tiles called each class), the verdict's class, its label and rule, and for a slide the tile
    counts it was called from (empty for item-wise images)."""
    verdict = analysis.verdict
    if verdict is None:
        return {}
    payload = {
        "verdict": {name: float(p) for name, p in zip(analysis.class_names, verdict.probabilities)},
        "verdict_class": analysis.class_names[verdict.class_index],
        "verdict_label": verdict.label,
        "verdict_rule": verdict.rule,
    }
    if analysis.slide is not None:
        from engine.analysis.slide_verdict import call_slide

        call = call_slide(analysis.class_names, analysis.probabilities)
        payload["verdict_tiles"] = {
            "tissue_tiles": call.tiles, "minimum_for_a_finding": call.minimum, "finding_present": call.finding,
            "called": {name: int(c) for name, c in zip(analysis.class_names, call.tile_counts)},
        }
    return payload


def uncertainty_payload(analysis: "CaseAnalysis", per_item: bool) -> dict:
    """The case's answer (a clip's or a slide's verdict, else the item most likely to show the
    shown class) with its probability and uncertainty in numbers and words, and each item's
    numbers when ``per_item`` (empty when no uncertainty was asked for)."""
    from engine.analysis.uncertainty import RULE

    found = analysis.uncertainty
    if found is None:
        return {}
    if found.case_item is None:
        shown = np.asarray(analysis.verdict.probabilities, dtype=np.float64)
        k = analysis.verdict.class_index
    else:
        shown = np.asarray(analysis.probabilities[found.case_item], dtype=np.float64)
        k = int(np.argmax(shown))
    payload = {
        "method": found.method,
        "label": found.label,
        "samples": found.samples,
        "augmentations": list(found.augmentations),
        "entropy_unit": "nats",
        "rule": RULE,
        "case": {
            "answer": found.case_from,
            "class": analysis.class_names[k],
            "probability": float(shown[k]),
            **found.case.row(0),
            "uncertain": found.judgement.uncertain,
            "words": found.judgement.words,
        },
    }
    if per_item:
        judgements = found.item_judgements(analysis.probabilities, analysis.class_names)
        items = found.items
        payload["items"] = {
            "total_entropy": np.round(items.total, 6).tolist(),
            "aleatoric_entropy": np.round(items.aleatoric, 6).tolist(),
            "epistemic_mutual_information": np.round(items.epistemic, 6).tolist(),
            "top_class_std": np.round(items.top_std, 6).tolist(),
            "uncertain": [j.uncertain for j in judgements],
        }
    return {"uncertainty": payload}


def prediction_payload(analysis: "CaseAnalysis", volume: ImageVolume, per_item: bool) -> dict:
    """``salience predict``'s JSON: per-item probabilities, a per-class summary, a clip's verdict
    or a slide's verdict with its mean tile probability and tiling beside them, and the uncertainty when it was asked for."""
    names = analysis.class_names
    probabilities = np.asarray(analysis.probabilities).reshape(-1, len(names))
    top = probabilities.argmax(axis=1)
    summary = {
        name: {
            "max_probability": float(probabilities[:, k].max()),
            "at_item": int(probabilities[:, k].argmax()),
            "items_predicted": int((top == k).sum()),
        }
        for k, name in enumerate(names)
    } if len(probabilities) else {}
    payload = {
        "source": volume.source,
        "bundle": {"name": analysis.bundle_name, "version": analysis.bundle_version,
                   "weights_sha256": analysis.weights_sha256},
        "classes": list(names),
        "item_axis": analysis.item_axis,
        "n_items": int(probabilities.shape[0]),
        "summary": summary,
        **verdict_payload(analysis),
        **uncertainty_payload(analysis, per_item),
    }
    if per_item:
        payload["probabilities"] = np.round(probabilities, 6).tolist()
    details = analysis.slide
    if details is not None:
        mean = probabilities.mean(axis=0) if len(probabilities) else None  # the second figure beside the verdict
        payload["slide_scores"] = None if mean is None else {n: float(p) for n, p in zip(names, mean)}
        payload["slide_scores_rule"] = MEAN_TILE_RULE
        payload["tiling"] = {"level": details.level, "tile_mpp": details.tile_mpp,
                             "tile_size_level0": details.tile_size0, "notes": list(analysis.notes)}
        if per_item:
            payload["tile_boxes_level0"] = details.tile_boxes.tolist()  # (row, col, rows, cols) per tile
    return payload
