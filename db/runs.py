"""Model runs, their predictions on cases, and the explanations (CAMs) of those predictions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db._checks import plain, require_finite, require_sha256, require_text
from db._rows import fetch, insert_or_fetch
from db.errors import InvalidInput
from db.models import Case, Explanation, MapCheck, ModelRun, Prediction
from db.uncertainty import check_uncertainty

ITEM_AXES = ("slice", "frame", "patch", "tile", "image", "volume")
PROBABILITY_TOLERANCE = 1e-6


def get_or_create_model_run(
    session: Session, *, bundle_name: str, version: str, weights_sha256: str, device: str
) -> ModelRun:
    """The model run of these weights on this device, registered first if it is new.

    Args:
        session: the caller's session.
        bundle_name: the bundle's name, e.g. "glioma".
        version: the bundle's version, e.g. "1.0.0".
        weights_sha256: sha256 of the weights file that was loaded.
        device: where it ran, e.g. "cpu" or "cuda:0".

    Raises:
        InvalidInput: empty names or a malformed hash.
    """
    key = {
        "bundle_name": require_text(bundle_name, "bundle_name", 128),
        "version": require_text(version, "bundle version", 64),
        "weights_sha256": require_sha256(weights_sha256, f"weights of {bundle_name}"),
        "device": require_text(device, "device", 32),
    }
    query = sa.select(ModelRun).filter_by(**key)
    existing = session.scalar(query)
    if existing is not None:
        return existing
    return insert_or_fetch(session, ModelRun(**key), query)


def _probability_rows(probabilities: Any, class_names: Sequence[str]) -> list[list[float]]:
    rows = plain(probabilities)
    if not isinstance(rows, list) or not rows or not all(isinstance(row, list) for row in rows):
        raise InvalidInput("prediction probabilities: expected a non-empty (N, K) list of rows")
    for index, row in enumerate(rows):
        if len(row) != len(class_names):
            raise InvalidInput(
                f"prediction probabilities: row {index} has {len(row)} values for {len(class_names)} classes"
            )
        values = [require_finite(p, f"prediction probability [{index}]") for p in row]
        if any(p < -PROBABILITY_TOLERANCE or p > 1 + PROBABILITY_TOLERANCE for p in values):
            raise InvalidInput(f"prediction probabilities: row {index} {values} leaves [0, 1]")
        rows[index] = values
    return rows


def _mean_argmax(rows: list[list[float]], class_names: Sequence[str]) -> str:
    totals = [sum(column) for column in zip(*rows)]
    return class_names[max(range(len(totals)), key=totals.__getitem__)]


def add_prediction(
    session: Session,
    *,
    case_id: int,
    model_run_id: int,
    probabilities: Any,
    class_names: Sequence[str],
    item_axis: str,
    calibrated: bool = False,
    predicted_class: str | None = None,
    uncertainty: Mapping[str, Any] | None = None,
) -> Prediction:
    """Store a model's class probabilities on a case.

    Args:
        session: the caller's session.
        case_id: the case that was read.
        model_run_id: the run that read it.
        probabilities: ``(N, K)`` nested lists or an array (anything with ``tolist``), one row
            per item along ``item_axis``, each value in [0, 1].
        class_names: K class names in output order.
        item_axis: one of ``ITEM_AXES``.
        calibrated: whether the probabilities were calibrated.
        predicted_class: the case-level answer; by default the class with the highest mean
            probability over the items.
        uncertainty: how much the answers moved when the model was asked again, as
            ``db.uncertainty.check_uncertainty`` checks it (one ``items`` entry per row); None:
            not measured.

    Returns:
        The prediction, with an id.

    Raises:
        NotFound: no such case or model run.
        InvalidInput: ragged or out-of-range probabilities, unknown class or axis.
    """
    names = [require_text(name, "class name", 128) for name in class_names]
    if not names or len(set(names)) != len(names):
        raise InvalidInput(f"prediction class_names {names}: must be distinct and non-empty")
    if item_axis not in ITEM_AXES:
        raise InvalidInput(f"prediction item_axis {item_axis!r} is not one of {ITEM_AXES}")
    rows = _probability_rows(probabilities, names)
    answer = predicted_class if predicted_class is not None else _mean_argmax(rows, names)
    if answer not in names:
        raise InvalidInput(f"predicted_class {answer!r} is not one of {names}")
    measured = check_uncertainty(None if uncertainty is None else dict(uncertainty), len(rows))
    fetch(session, Case, case_id, "case")
    fetch(session, ModelRun, model_run_id, "model run")
    prediction = Prediction(
        case_id=case_id,
        model_run_id=model_run_id,
        probabilities=rows,
        class_names=names,
        item_axis=item_axis,
        calibrated=bool(calibrated),
        predicted_class=answer,
        uncertainty=measured,
    )
    session.add(prediction)
    session.flush()
    return prediction


def add_explanation(
    session: Session,
    *,
    prediction_id: int,
    method: str,
    target_layer: str,
    class_index: int,
    map_path: str,
    map_sha256: str,
    map_stats: Mapping[str, float],
    params: Mapping[str, Any] | None = None,
) -> Explanation:
    """Store one class-activation map of a prediction (the map itself lives in a ``BlobStore``).

    Args:
        session: the caller's session.
        prediction_id: the explained prediction.
        method: CAM method name.
        target_layer: the hooked layer's dotted name.
        class_index: index into the prediction's class names.
        map_path: the blob's path relative to the blob store root (from ``BlobStore.put``).
        map_sha256: the blob's sha256 (from ``BlobStore.put``).
        map_stats: ``{"min", "max", "mean"}`` of the raw signed map, with min <= mean <= max;
            further finite numbers (e.g. "std") are kept too.
        params: the method's parameters (JSON-serialisable).

    Returns:
        The explanation, with an id.

    Raises:
        NotFound: no such prediction.
        InvalidInput: class index out of range, malformed hash or stats.
    """
    prediction = fetch(session, Prediction, prediction_id, "prediction")
    if isinstance(class_index, bool) or not 0 <= int(class_index) < len(prediction.class_names):
        raise InvalidInput(
            f"explanation class_index {class_index} outside 0..{len(prediction.class_names) - 1} "
            f"of prediction {prediction_id}"
        )
    missing = {"min", "max", "mean"} - set(map_stats)
    if missing:
        raise InvalidInput(f"map_stats {dict(map_stats)}: missing {sorted(missing)}")
    stats = {str(key): require_finite(value, f"map_stats[{key!r}]") for key, value in map_stats.items()}
    if not stats["min"] <= stats["mean"] <= stats["max"]:
        raise InvalidInput(f"map_stats {stats}: expected min <= mean <= max")
    explanation = Explanation(
        prediction_id=prediction_id,
        method=require_text(method, "explanation method", 64),
        target_layer=require_text(target_layer, "explanation target_layer", 256),
        class_index=int(class_index),
        params=dict(params or {}),
        map_path=require_text(map_path, "explanation map_path", 512),
        map_sha256=require_sha256(map_sha256, f"map {map_path}"),
        map_stats=stats,
    )
    session.add(explanation)
    session.flush()
    return explanation


def add_map_check(session: Session, *, explanation_id: int, item_index: int, report: Mapping[str, Any]) -> MapCheck:
    """Store the quality measures of an explanation's map on one item.

    Args:
        session: the caller's session.
        explanation_id: the checked explanation.
        item_index: the slice, frame or tile measured (0-based, inside the prediction's rows).
        report: JSON-ready measures with a ``sanity`` section holding ``trustworthy``
            (``engine.analysis.quality.quality_report`` output).

    Raises:
        NotFound: no such explanation.
        InvalidInput: the item is outside the prediction, or the report lacks the sanity verdict.
    """
    explanation = fetch(session, Explanation, explanation_id, "explanation")
    rows = len(explanation.prediction.probabilities)
    if isinstance(item_index, bool) or not 0 <= int(item_index) < rows:
        raise InvalidInput(f"map check item {item_index} outside 0..{rows - 1} of explanation {explanation_id}")
    content = _json_document(report, f"map check of explanation {explanation_id}")
    verdict = content.get("sanity", {}).get("trustworthy") if isinstance(content.get("sanity"), dict) else None
    if not isinstance(verdict, bool):
        raise InvalidInput(f"map check of explanation {explanation_id}: report lacks sanity.trustworthy")
    check = MapCheck(explanation_id=explanation_id, item_index=int(item_index), report=content, trustworthy=verdict)
    session.add(check)
    session.flush()
    return check


def _json_document(value: Mapping[str, Any], what: str) -> dict:
    """A plain JSON object from a report holding numpy numbers or arrays; NaN and infinities are
    refused (PostgreSQL's JSON has no such values)."""

    def builtin(item: Any) -> Any:
        if hasattr(item, "tolist"):
            return item.tolist()
        raise TypeError(type(item).__name__)

    try:
        return json.loads(json.dumps(dict(value), default=builtin, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what}: report is not plain JSON ({exc})") from None


def map_checks_for(session: Session, explanation_id: int) -> list[MapCheck]:
    """The checks of one explanation, oldest first."""
    query = sa.select(MapCheck).where(MapCheck.explanation_id == explanation_id).order_by(MapCheck.id)
    return list(session.scalars(query))


def stored_map_range(
    session: Session, *, weights_sha256: str, method: str, class_index: int
) -> tuple[float, float] | None:
    """The lowest minimum and highest maximum of every stored map of one model's weights, CAM
    method and class, across all cases: the range that puts a study's maps on one colour scale.

    Reads the stored statistics (``Explanation.map_stats``), never the maps themselves. None
    when no such map is stored.
    """
    query = (
        sa.select(Explanation.map_stats)
        .join(Prediction, Explanation.prediction_id == Prediction.id)
        .join(ModelRun, Prediction.model_run_id == ModelRun.id)
        .where(
            ModelRun.weights_sha256 == weights_sha256,
            Explanation.method == method,
            Explanation.class_index == class_index,
        )
    )
    stats = list(session.scalars(query))
    if not stats:
        return None
    return min(float(s["min"]) for s in stats), max(float(s["max"]) for s in stats)


def predictions_for_case(session: Session, case_id: int) -> list[Prediction]:
    """Every prediction on a case with its model run and explanations, newest first.

    For the analysis views and ``app``; a reader's form in a blinded arm must not be handed
    these (the study rules decide when a reader may see model output).
    """
    query = (
        sa.select(Prediction)
        .where(Prediction.case_id == case_id)
        .options(selectinload(Prediction.model_run), selectinload(Prediction.explanations))
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
    )
    return list(session.scalars(query))


def explained_cases(
    session: Session, *, weights_sha256: str, methods: Sequence[str], measured: bool = False
) -> list[tuple[str, str]]:
    """``(source, content hash)`` of every case with a Prediction by these weights whose
    Explanations include every one of ``methods`` (any Prediction when ``methods`` is empty) and,
    when ``measured``, whose uncertainty was measured.

    What a cohort run asks before it starts, to skip the cases an earlier run already stored.

    Raises:
        InvalidInput: a malformed hash.
    """
    require_sha256(weights_sha256, "weights")
    wanted = sorted({require_text(m, "explanation method", 64) for m in methods})
    query = (
        sa.select(Case.source, Case.content_hash)
        .join(Prediction, Prediction.case_id == Case.id)
        .join(ModelRun, Prediction.model_run_id == ModelRun.id)
        .where(ModelRun.weights_sha256 == weights_sha256)
    )
    if measured:
        query = query.where(Prediction.uncertainty.is_not(None))
    if wanted:
        query = (
            query.join(Explanation, Explanation.prediction_id == Prediction.id)
            .where(Explanation.method.in_(wanted))
            .group_by(Prediction.id, Case.source, Case.content_hash)
            .having(sa.func.count(sa.distinct(Explanation.method)) == len(wanted))
        )
    return sorted({(source, content_hash) for source, content_hash in session.execute(query)})
