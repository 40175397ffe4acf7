"""What the headless subcommands do: read, run a bundle, write a map. Returns JSON-ready dicts."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from engine.errors import SalienceError
from engine.imaging import ImageVolume, nifti, read_image
from engine.models.classes import class_index


#: Image kinds explained as a whole (a clip verdict over frames, a slide score over tiles), by the
#: module whose ``explain(path, volume, bundle, method, output, class_name, all_classes,
#: with_quality, score) -> dict`` writes the maps and returns the JSON payload. Other kinds are explained
#: item by item below.
KIND_EXPLAINERS: dict[str, str] = {"clip": "app.explain_clip", "slide": "app.explain_slide"}


def describe(volume: ImageVolume) -> dict:
    """A JSON-ready description of what was read (no pixels, no PHI)."""
    return {
        "source": volume.source,
        "kind": volume.kind,
        "modality": volume.modality,
        "shape": {"channels": volume.array.shape[0], "slices": volume.shape[0], "rows": volume.shape[1], "cols": volume.shape[2]},
        "channels": list(volume.channel_names),
        "dtype": str(volume.array.dtype),
        "spacing_mm": {"slice": volume.spacing[0], "row": volume.spacing[1], "col": volume.spacing[2]},
        "orientation": volume.orientation,
        "affine_lps": np.round(volume.affine, 6).tolist(),
        "frame_time_ms": volume.frame_time_ms,
        "window": {"centre": volume.default_window()[0], "width": volume.default_window()[1]},
        "labels": None if volume.labels is None else {"values": sorted(int(v) for v in np.unique(volume.labels)), "names": volume.label_names},
        "content_hash": volume.content_hash,
        "header": volume.header,
    }


def inspect(path: str | Path) -> dict:
    return describe(read_image(path))


def predict(path: str | Path, bundle_name: str, per_item: bool = True) -> dict:
    from engine.models.bundle import load_bundle

    volume = read_image(path)
    bundle = load_bundle(bundle_name)
    if volume.kind == "slide":
        return _predict_slide(path, volume, bundle, per_item)
    result = bundle.predict(volume)
    return _prediction_payload(volume, bundle, result.class_names, result.item_axis, result.probabilities, per_item)


def _predict_slide(path: str | Path, volume: ImageVolume, bundle, per_item: bool) -> dict:
    """A slide is classified tile by tile over its tissue at the model's magnification (the
    opened volume is only its thumbnail); the slide score is the mean tile probability."""
    from engine.analysis.slide import analyse_slide

    analysis = analyse_slide(bundle, path, classes=[])
    payload = _prediction_payload(volume, bundle, analysis.class_names, "tile", analysis.tile_probabilities, per_item)
    payload["slide_scores"] = {name: float(p) for name, p in zip(analysis.class_names, analysis.slide_scores)}
    payload["tiling"] = {"level": analysis.level, "tile_mpp": analysis.tile_mpp, "tile_size_level0": analysis.tile_size0,
                         "notes": analysis.notes}
    if per_item:
        payload["tile_boxes_level0"] = analysis.tile_boxes.tolist()  # (row, col, rows, cols) per tile
    return payload


def _prediction_payload(volume: ImageVolume, bundle, class_names, item_axis: str, probabilities: np.ndarray,
                        per_item: bool) -> dict:
    probabilities = np.asarray(probabilities).reshape(-1, len(class_names))
    top = probabilities.argmax(axis=1)
    summary = {
        name: {
            "max_probability": float(probabilities[:, k].max()),
            "at_item": int(probabilities[:, k].argmax()),
            "items_predicted": int((top == k).sum()),
        }
        for k, name in enumerate(class_names)
    } if len(probabilities) else {}
    payload = {
        "source": volume.source,
        "bundle": {"name": bundle.name, "version": bundle.version, "weights_sha256": bundle.weights_sha256},
        "classes": list(class_names),
        "item_axis": item_axis,
        "n_items": int(probabilities.shape[0]),
        "summary": summary,
    }
    if per_item:
        payload["probabilities"] = np.round(probabilities, 6).tolist()
    return payload


def explain(
    path: str | Path,
    bundle_name: str,
    method: str,
    output: Path,
    class_name: str | None = None,
    all_classes: bool = False,
    with_quality: bool = False,
    score: str | None = None,
) -> dict:
    from engine.models.bundle import load_bundle

    name = output.name.lower()
    if not output.parent.exists():
        raise SalienceError(f"{output.parent}: output folder does not exist")
    volume = read_image(path)
    bundle = load_bundle(bundle_name)
    if volume.kind in KIND_EXPLAINERS:  # clips and slides: a verdict over frames or tiles; they check `output`
        module = importlib.import_module(KIND_EXPLAINERS[volume.kind])
        return module.explain(path, volume, bundle, method, output, class_name, all_classes, with_quality, score)
    if name.endswith(".png") and volume.kind == "image" and not (all_classes or with_quality):
        from app.explain_slide import explain_patch_png

        return explain_patch_png(volume, bundle, method, output, class_name, score)
    if not name.endswith((".nii", ".nii.gz", ".npy")):
        also = ", or .png for a single image without --all-classes or --quality" if volume.kind == "image" else ""
        raise SalienceError(f"{output}: output must end in .nii.gz, .nii or .npy{also}")
    if all_classes and not name.endswith(".npy"):
        raise SalienceError(f"{output}: --all-classes writes (classes, slices, rows, cols) and needs .npy")
    prediction = bundle.predict(volume)
    probabilities = np.asarray(prediction.probabilities)
    k = class_index(prediction.class_names, class_name, probabilities)
    classes = None if all_classes else [k]
    try:
        maps = np.asarray(bundle.explain(volume, method=method, classes=classes, score=score), dtype=np.float32)
    except ValueError as exc:  # unknown method or class: the user's input, said in one line
        raise SalienceError(str(exc)) from None
    written = maps if all_classes else maps[0]
    if name.endswith(".npy"):
        np.save(output, written)
    else:
        try:
            nifti.write_on_grid(written, volume, output)
        except ValueError as exc:
            raise SalienceError(f"{output}: {exc}") from None
    payload = {
        "source": volume.source,
        "output": str(output),
        "bundle": {"name": bundle.name, "version": bundle.version},
        "method": method,
        "score": score or "method default",
        "layer": bundle.target_layer,
        "class": "all" if all_classes else prediction.class_names[k],
        "shape": list(written.shape),
        "axes": ("class, " if all_classes else "") + "slice, row, col (same grid as the input)",
        "stats": {"min": float(written.min()), "max": float(written.max()), "mean": float(written.mean())},
        "raw": "signed, not normalised",
    }
    if with_quality:
        from engine.analysis.quality import quality_report

        item = int(np.argmax(probabilities[:, k]))  # the slice where the model is surest of the class
        cam = maps[k if all_classes else 0, item]
        payload["quality"] = quality_report(bundle, volume, cam, method=method, class_index=k, item=item, score=score)
    return payload
