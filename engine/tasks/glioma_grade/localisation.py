"""Where the grade model's 3-D class-activation map points, against the FLAIR abnormality mask.

The grade says nothing about where the tumour is, but a map that explains a grade should rest on
the tumour, not on the skull or the ventricles. For each held-back patient the 3-D map (one
capture of the whole volume, resampled onto every slice) is compared with the expert FLAIR mask
over the head: the share of the map's positive energy inside the mask against the mask's share of
the head (the energy-based pointing game of Wang et al., "Score-CAM", CVPR Workshops 2020), and
whether the map's peak voxel lies inside the mask (the pointing game of Zhang et al., "Top-down
Neural Attention by Excitation Backprop", ECCV 2016).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.imaging import read_image
from engine.imaging.volume import ImageVolume
from engine.models.bundle import Bundle
from engine.tasks.glioma_grade.preprocess import DEFAULT_PARAMS, scaled_channels
from engine.training.evaluation import mask_energy

#: The class whose map is also checked for every patient: grade III, what the model looks for.
GRADE_III = 1


def head_mask(volume: ImageVolume, bundle: Bundle) -> np.ndarray:
    """``(N, H, W)`` bool: voxels whose scaled channels' mean exceeds the bundle's head threshold
    (the voxels ``head_box`` counts as head)."""
    p = {**DEFAULT_PARAMS, **{k: v for k, v in bundle.metadata["preprocessing"].items() if k in DEFAULT_PARAMS}}
    array = np.stack([volume.channel(c) for c in bundle.input_channels])
    return scaled_channels(array, p["upper_percentile"], p["clip_max"]).mean(axis=0) > p["head_threshold"]


def map_against_mask(cam: np.ndarray, mask: np.ndarray, head: np.ndarray) -> dict[str, float | bool]:
    """One volume's map against its mask.

    Args:
        cam: ``(N, H, W)`` raw signed map on the volume's grid.
        mask: ``(N, H, W)`` FLAIR abnormality mask.
        head: ``(N, H, W)`` head voxels.

    Returns:
        ``energy_inside_mask`` (NaN for a map with no positive part), ``mask_share_of_head``,
        their ratio ``energy_to_share``, and ``peak_inside_mask``.
    """
    inside = mask > 0
    energy, _ = mask_energy(cam, inside)
    share = float(inside.sum()) / max(1, int((head | inside).sum()))
    return {
        "energy_inside_mask": energy,
        "mask_share_of_head": share,
        "energy_to_share": energy / share if share > 0 else float("nan"),
        "peak_inside_mask": bool(inside.flat[int(np.argmax(cam))]),
    }


def _summary(rows: list[dict]) -> dict[str, float | int]:
    energy = np.array([r["energy_inside_mask"] for r in rows], dtype=np.float64)
    share = np.array([r["mask_share_of_head"] for r in rows], dtype=np.float64)
    valid = ~np.isnan(energy)
    return {
        "patients": len(rows),
        "patients_with_positive_map": int(valid.sum()),
        "mean_energy_inside_mask": float(np.mean(energy[valid])) if valid.any() else float("nan"),
        "mean_mask_share_of_head": float(np.mean(share)) if rows else float("nan"),
        "mean_energy_to_share": float(np.mean(energy[valid] / share[valid])) if valid.any() else float("nan"),
        "peaks_inside_mask": int(sum(r["peak_inside_mask"] for r in rows)),
        "share_peak_inside_mask": float(np.mean([r["peak_inside_mask"] for r in rows])) if rows else float("nan"),
    }


def cam_localisation(
    bundle: Bundle, data_dir: Path, patients: Sequence[str], method: str = "gradcam"
) -> dict:
    """The map of the class each patient is predicted, and the grade III map, against the mask.

    Args:
        bundle: the grade model (a 3-D bundle).
        data_dir: the ``glioma-lgg`` folder.
        patients: patient folders (the held-back test patients).
        method: the CAM method.

    Returns:
        ``method``, per-patient rows (``patients``) and the summaries ``predicted_class`` and
        ``grade_iii`` (``_summary``: mean energy inside the mask, the mask's mean share of the head,
        the mean ratio of the two, and peaks inside the mask).
    """
    rows = []
    for patient in patients:
        volume = read_image(Path(data_dir) / patient)
        if volume.labels is None or not volume.labels.any():
            continue  # no mask to check against
        predicted = int(np.argmax(bundle.predict(volume).probabilities[0]))
        classes = sorted({predicted, GRADE_III})
        maps = bundle.explain(volume, method=method, classes=classes)
        head = head_mask(volume, bundle)
        rows.append({
            "patient": patient,
            "predicted": bundle.class_names[predicted],
            "predicted_class": map_against_mask(maps[classes.index(predicted)], volume.labels, head),
            "grade_iii": map_against_mask(maps[classes.index(GRADE_III)], volume.labels, head),
        })
    return {
        "method": method,
        "predicted_class": _summary([r["predicted_class"] for r in rows]),
        "grade_iii": _summary([r["grade_iii"] for r in rows]),
        "patients": rows,
    }
