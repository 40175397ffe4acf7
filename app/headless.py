"""What the headless subcommands do: read, run a bundle through ``engine.analysis``, write a map.

Returns JSON-ready dicts. How each kind of image is analysed is ``engine.analysis``'s business;
what is written for it (NIfTI, .npy, an overlay PNG or video) is ``app.outputs``'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import SalienceError
from engine.imaging import ImageVolume, read_image
from engine.models.classes import class_index


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


def predict(
    path: str | Path, bundle_name: str, per_item: bool = True, uncertainty: str | None = "auto", samples: int = 16
) -> dict:
    """``salience predict``: probabilities per item (slice, frame, tile), with a clip's verdict or
    a slide's score (a slide is classified tile by tile over its tissue at the model's
    magnification; the opened volume is only its thumbnail), and the case's answer with its
    uncertainty (``engine.analysis.uncertainty``).

    Args:
        path: the image (file or folder).
        bundle_name: a bundle's name (shipped or added) or a bundle folder.
        per_item: include every item's probabilities and uncertainty.
        uncertainty: "auto" (MC dropout when the network has dropout, else test-time
            augmentation), "tta", "mc-dropout", or None (none).
        samples: draws per item for the uncertainty.

    Raises:
        SalienceError: MC dropout asked of a network without dropout, or too few samples.
    """
    from app import outputs
    from engine.analysis import analyse_case
    from engine.models.bundle import load_bundle

    volume = read_image(path)
    bundle = load_bundle(bundle_name)
    try:
        analysis = analyse_case(volume, bundle, methods=(), keep_capture=False, uncertainty=uncertainty,
                                uncertainty_samples=samples)
    except ValueError as exc:  # the user's options, said in one line
        raise SalienceError(f"{bundle.name}: {exc}") from None
    return outputs.prediction_payload(analysis, volume, per_item)


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
    """``salience explain``: analyse the image, write the map(s) and return the JSON payload.

    Args:
        path: the image (file or folder).
        bundle_name: a shipped bundle's name or a bundle folder.
        method: CAM method name.
        output: where the maps go; its suffix says how (``app.outputs.writer_for``).
        class_name: class to explain and show (name or index); None: the one a reviewer looks at
            first (a clip's verdict class, else the most likely finding).
        all_classes: write the maps of every class (.npy).
        with_quality: also measure the shown class's map (``engine.analysis.check_map``) on the
            item that matters most.
        score: "logit", "probability" or None (the method's default).

    Raises:
        SalienceError: bad output path, unknown class or method, or nothing to classify.
    """
    from app import outputs
    from engine.analysis import SHOWN, analyse_case, check_map
    from engine.models.bundle import load_bundle

    output = Path(output)
    if not output.parent.exists():
        raise SalienceError(f"{output.parent}: output folder does not exist")
    volume = read_image(path)
    write = outputs.writer_for(volume, output, all_classes, with_quality)
    bundle = load_bundle(bundle_name)
    wanted = None if class_name is None else class_index(bundle.class_names, class_name)
    classes = None if all_classes else ([wanted] if wanted is not None else SHOWN)
    try:
        analysis = analyse_case(volume, bundle, method, classes=classes, score=score, keep_capture=False)
        if not len(analysis.probabilities):
            raise SalienceError(f"{path}: {'; '.join(analysis.notes) or 'no items'}; nothing to explain")
        k = wanted if wanted is not None else analysis.class_to_show()
        quality = check_map(analysis, volume, bundle, method, k).report if with_quality else None
    except ValueError as exc:  # unknown method or class: the user's input, said in one line
        raise SalienceError(str(exc)) from None
    payload = write(analysis, volume, k)
    if quality is not None:
        payload["quality"] = quality
    return payload
