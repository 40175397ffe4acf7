"""Where engine results enter the database: one case, one Prediction per analysis, one Explanation
per class and method, the maps themselves in the content-addressed blob store.

The window (``app.workstation``) and ``salience analyse-cohort`` (``app.cohort``) store through these
functions, so a map frozen for a study and a map stored while reviewing are the same rows and
files. Each takes the caller's session; the caller owns the transaction
(``with factory.begin() as session:``), so a case is stored whole or not at all.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from app.outputs import uncertainty_payload
from db import blobs, cases, runs
from engine.explain.summary import map_summary
from engine.imaging.volume import ImageVolume

if TYPE_CHECKING:
    from engine.analysis import CaseAnalysis

#: Longest side of the stored maps: a 300-frame clip's maps for 3 classes at 256 px take 240 MB
#: in float32; at the frame's own size they could take gigabytes. The viewer stretches them.
MAP_SIDE = 256


def store_case(session: Session, volume: ImageVolume, source: str, task: str) -> int:
    """The id of the Case row of ``volume`` (by its content hash), registered first if it is new."""
    case = cases.get_or_create_case(
        session,
        content_hash=volume.content_hash,
        source=str(source),
        modality=volume.modality,
        kind=volume.kind,
        shape=list(volume.array.shape),
        task=task,
        header=volume.header,
    )
    return case.id


def uncertainty_record(analysis: "CaseAnalysis") -> dict[str, Any] | None:
    """The analysis's uncertainty as a Prediction keeps it (``db.uncertainty``), None when it was
    not measured: ``salience predict``'s uncertainty (``app.outputs.uncertainty_payload``, every
    row's numbers) with the rule's thresholds and, except for a slide's tiles, each row's
    judgement in words, so that a reopened analysis says exactly what was said when it was made."""
    from engine.analysis import uncertainty

    found = analysis.uncertainty
    if found is None:
        return None
    record = uncertainty_payload(analysis, per_item=True)["uncertainty"]
    record["thresholds"] = {"margin": uncertainty.MARGIN, "aleatoric_share": uncertainty.ALEATORIC_SHARE,
                            "epistemic_share": uncertainty.EPISTEMIC_SHARE, "std_limit": uncertainty.STD_LIMIT}
    if analysis.slide is None:
        judgements = found.item_judgements(analysis.probabilities, analysis.class_names)
        record["items"]["words"] = [j.words for j in judgements]
    return record


def store_prediction(session: Session, analysis: "CaseAnalysis", case_id: int, device: str) -> int:
    """Store the analysis's probabilities, and its uncertainty when measured
    (``uncertainty_record``), as one Prediction of its model run on ``device``.

    Args:
        session: the caller's session.
        analysis: from ``engine.analysis.analyse_case``, with at least one item.
        case_id: the analysed case's row.
        device: where the model ran ("cpu", "cuda:0"), recorded on the ModelRun row.

    Returns:
        The Prediction's id.
    """
    model_run = runs.get_or_create_model_run(
        session, bundle_name=analysis.bundle_name, version=analysis.bundle_version,
        weights_sha256=analysis.weights_sha256, device=device,
    )
    row = runs.add_prediction(
        session,
        case_id=case_id,
        model_run_id=model_run.id,
        probabilities=analysis.probabilities.tolist(),
        class_names=list(analysis.class_names),
        item_axis=analysis.item_axis,
        calibrated=analysis.calibrated,
        # a pooled verdict names the case's answer (a slide's finding may hold a minority of tiles)
        predicted_class=None if analysis.verdict is None else analysis.class_names[analysis.verdict.class_index],
        uncertainty=uncertainty_record(analysis),
    )
    return row.id


def store_map(
    session: Session,
    blob_store: blobs.BlobStore,
    *,
    prediction_id: int,
    method: str,
    target_layer: str,
    class_index: int,
    array: np.ndarray,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Store one class's ``(N, h, w)`` map of a prediction (a .npy blob and its Explanation row
    with the one map summary); returns the Explanation's id."""
    path, sha = blob_store.put(npy_bytes(array), ".npy")
    return runs.add_explanation(
        session, prediction_id=prediction_id, method=method, target_layer=target_layer, class_index=class_index,
        params=dict(params or {}), map_path=path, map_sha256=sha, map_stats=map_summary(array).to_dict(),
    ).id


def store_maps(
    session: Session, blob_store: blobs.BlobStore, analysis: "CaseAnalysis", method: str, prediction_id: int
) -> tuple[int, ...]:
    """Store ``method``'s map of every explained class (``store_map`` each).

    Returns:
        The Explanation ids, in the order of the method's explained classes.
    """
    maps = analysis.maps[method]
    return tuple(
        store_map(session, blob_store, prediction_id=prediction_id, method=method, target_layer=analysis.target_layer,
                  class_index=k, array=map_of_class, params=maps.params)
        for k, map_of_class in zip(maps.classes, maps.maps)
    )


def store_analysis(
    session: Session, blob_store: blobs.BlobStore, analysis: "CaseAnalysis", case_id: int, device: str,
    methods: Sequence[str] | None = None,
) -> tuple[int, dict[str, tuple[int, ...]]]:
    """One Prediction and the maps of ``methods`` (None: every method of the analysis).

    Returns:
        ``(prediction id, {method: explanation ids})``.
    """
    prediction_id = store_prediction(session, analysis, case_id, device)
    chosen = list(analysis.maps) if methods is None else list(methods)
    return prediction_id, {m: store_maps(session, blob_store, analysis, m, prediction_id) for m in chosen}


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a .npy file (no pickling)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def load_map(blob_store: blobs.BlobStore, path: str, sha256: str) -> np.ndarray:
    """Read a stored map back, verifying its hash (never unpickling)."""
    return np.load(io.BytesIO(blob_store.get(path, sha256)), allow_pickle=False)
