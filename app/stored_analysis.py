"""A stored prediction and its maps, read back as the ``Analysis`` the window shows.

A reading keeps the id of the prediction its reader saw. Reopening the reading rebuilds that
analysis from the database (probabilities, classes, calibration, the model run) and the
content-addressed map files (hash-checked, never unpickled): the reader sees the maps they saw,
not a new run of a model that may have changed since, with the map checks made then and the
uncertainty measured then, in the words said then (or "not measured"). A clip's verdict is the mean of the stored
frame probabilities (the rule it was made with) and its key frames are the ones stored with each
map. A slide's stored rows are its tissue tiles: its verdict is called from them
(``engine.analysis.slide_verdict``: a finding present in enough tiles, the tile shares as its
probabilities; a note when the answer stored with it was another, as for slides stored before
that rule), shown as the slide's one row, and its maps are the stitched heatmaps stored on the
thumbnail's grid; its tile-probability heatmap is drawn again from the tile places
kept with the maps (maps stored before they were kept come back with the CAM only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app.store import load_map
from db import blobs
from db.models import Explanation, Prediction
from db.uncertainty import NUMBERS
from ui.backend import Analysis, Uncertainty, Verdict

if TYPE_CHECKING:
    from engine.analysis.result import CaseVerdict


def uncertainty_shown(record: dict | None, per_item: bool) -> Uncertainty | None:
    """What the window shows of a stored uncertainty record (``db.uncertainty``); None when not
    measured.

    Args:
        record: ``Prediction.uncertainty`` (or ``app.store.uncertainty_record`` of a fresh analysis).
        per_item: each row is an item the window shows (slices, frames, patches) with its own
            judgement; otherwise (a whole-volume model's answer, a slide's score) the case's
            judgement stands for every item.
    """
    if record is None:
        return None
    case, items = record["case"], record["items"]
    if per_item and "words" in items:
        words, flags = tuple(items["words"]), items["uncertain"]
        numbers = {k: items[k] for k in NUMBERS}
    else:
        words, flags = (case["words"],), [case["uncertain"]]
        numbers = {k: [case[k]] for k in NUMBERS}
    return Uncertainty(
        label=record["label"],
        words=case["words"],
        uncertain=bool(case["uncertain"]),
        case_answer=case["answer"],
        case={k: float(case[k]) for k in NUMBERS},
        item_words=words,
        item_uncertain=np.array(flags, dtype=bool),
        total=np.asarray(numbers["total_entropy"], dtype=np.float32),
        aleatoric=np.asarray(numbers["aleatoric_entropy"], dtype=np.float32),
        epistemic=np.asarray(numbers["epistemic_mutual_information"], dtype=np.float32),
        top_std=np.asarray(numbers["top_class_std"], dtype=np.float32),
        rule=record["rule"],
    )


def first_method(prediction: Prediction) -> str | None:
    """The CAM method first stored on a prediction (the one its analysis was made with; methods
    added by "Compare with..." come after it)."""
    explanations = sorted(prediction.explanations, key=lambda e: e.id)
    return explanations[0].method if explanations else None


def _earlier_rule(prediction: Prediction, called: "CaseVerdict") -> tuple[str, ...]:
    """A note when the stored answer differs from the verdict called again from the stored tiles
    (a slide stored before its verdict was a finding present in enough tiles): the reader sees
    that the answer they read then was another."""
    now = prediction.class_names[called.class_index]
    if prediction.predicted_class in (None, now):
        return ()
    return (f"Stored as {prediction.predicted_class} by an earlier rule; the verdict above is called again "
            "from the stored tiles.",)


def stored_analysis(prediction: Prediction, blob_store: blobs.BlobStore,
                    study_ranges: tuple[tuple[float, float], ...] | None = None,
                    method: str | None = None) -> Analysis | None:
    """The ``Analysis`` of a stored prediction with ``method``'s maps (default: ``first_method``).

    Classes without a stored map get an all-NaN map (drawn as no saliency). Returns None when the
    prediction has no maps.
    """
    method = method or first_method(prediction)
    if method is None:
        return None
    chosen: dict[int, Explanation] = {e.class_index: e for e in sorted(prediction.explanations, key=lambda e: e.id)
                                      if e.method == method}
    class_names = tuple(prediction.class_names)
    maps_by_class = {k: load_map(blob_store, e.map_path, e.map_sha256) for k, e in chosen.items()}
    shape = next(iter(maps_by_class.values())).shape
    maps = np.stack([maps_by_class.get(k, np.full(shape, np.nan, np.float32)) for k in range(len(class_names))])
    probabilities = np.asarray(prediction.probabilities, dtype=np.float32).reshape(-1, len(class_names))
    verdict, probability_maps = None, None
    tiles = prediction.item_axis == "tile"
    if tiles:  # the slide's verdict, as analyse_slide called it; the window shows it as the one row
        from engine.analysis.slide import tile_probability_maps
        from engine.analysis.slide_verdict import slide_verdict

        probability_maps = tile_probability_maps(next(iter(chosen.values())).params, probabilities, shape[-2:])
        called = slide_verdict(class_names, probabilities)
        verdict = Verdict(label=called.label, probabilities=np.asarray(called.probabilities, dtype=np.float32),
                          class_index=called.class_index, notes=called.details + _earlier_rule(prediction, called))
        probabilities = verdict.probabilities[None, :]
    elif prediction.item_axis == "frame":
        key_items = {int(k): tuple(int(i) for i in items)
                     for e in chosen.values() for k, items in e.params.get("key_frames", {}).items()}
        verdict = Verdict(label=f"Clip verdict: mean of {len(probabilities)} frames",
                          probabilities=probabilities.mean(axis=0), key_items=key_items)
    run = prediction.model_run
    # A slide's check names the tile it measured; the window keeps it under the slide's one item.
    checks = tuple((k, 0 if tiles else check.item_index, check.report) for k in sorted(chosen)
                   for check in sorted(chosen[k].checks, key=lambda c: c.id))
    return Analysis(
        bundle=f"{run.bundle_name} {run.version}",
        class_names=class_names,
        probabilities=probabilities,
        method=method,
        maps=maps.astype(np.float32, copy=False),
        prediction_id=prediction.id,
        explanation_ids=tuple(chosen[k].id for k in sorted(chosen)),
        verdict=verdict,
        probability_maps=probability_maps,
        study_ranges=study_ranges,
        calibrated=bool(prediction.calibrated),
        map_checks=checks,
        device=run.device,
        uncertainty=uncertainty_shown(prediction.uncertainty, prediction.item_axis != "volume"),
    )
