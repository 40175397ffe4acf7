"""``salience study create``: register a study file's cases and freeze the AI output they show.

Freezing: each case is read (``engine.imaging.read_image``), registered (``db.cases``) and
analysed ONCE through ``engine.analysis.analyse_case`` with every CAM method the study's arms and
pairwise questions show. The prediction with its uncertainty (``STUDY_UNCERTAINTY``: how much its
answers move under Monte Carlo dropout or test-time augmentation, judged in words) and, per
method, the map of the class the prediction names (the one a reviewer looks at first) are stored
with the bundle's name, version and weights hash (``db.runs``, maps in the blob store), and the
study links them to the case (``StudyCaseSpec``). Every reader in an arm then sees exactly the
same output, whatever happens to the bundle later; a reader sees the uncertainty only where the
arm and step show the AI (``db.study_reader.ai_output_for_reader``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from app.store import store_map, uncertainty_record
from app.study_files import CaseEntry, StudyFile
from db import blobs, cases, runs
from db.errors import DbError
from db.models import Reader, Study
from db.permissions import require_permission
from db.studies import create_study
from db.study_spec import StudyCaseSpec, StudyDesign, maps_needed, prediction_needed
from engine.errors import SalienceError
from engine.imaging import ImageVolume, read_image
from engine.progress import NullProgress, Progress, ScaledProgress, check_cancelled

log = logging.getLogger(__name__)

#: Longest side of a frozen map: CAM grids are 16-32 cells, so 64 pixels lose nothing a reader
#: sees (the viewer stretches it), and a 90-frame clip's map takes 1.5 MB instead of 24 MB at 256.
STUDY_MAP_SIDE = 64

#: How a study's frozen predictions measure their uncertainty (``engine.analysis.uncertainty``):
#: MC dropout when the network has dropout, else test-time augmentation. A reader sees it only
#: where the arm shows the AI (``db.study_reader.ai_output_for_reader``).
STUDY_UNCERTAINTY = "auto"


@dataclass(frozen=True)
class FrozenOutput:
    """What one analysis froze: the model, the class shown, its per-item probabilities and their
    uncertainty record (``app.store.uncertainty_record``; None: not measured)."""

    bundle_name: str
    bundle_version: str
    weights_sha256: str
    target_layer: str
    class_names: tuple[str, ...]
    item_axis: str
    calibrated: bool
    probabilities: np.ndarray  # (N, K)
    class_index: int  # the class the prediction names and the maps explain
    maps: Mapping[str, tuple[np.ndarray, dict]]  # method -> ((N, h, w) map of class_index, params)
    uncertainty: Mapping[str, Any] | None = None


def store_frozen(
    session: Session, blob_store: blobs.BlobStore, case_id: int, frozen: FrozenOutput, ground_truth: str | None
) -> StudyCaseSpec:
    """Store one case's frozen prediction and maps; the ``StudyCaseSpec`` that links them."""
    run = runs.get_or_create_model_run(session, bundle_name=frozen.bundle_name, version=frozen.bundle_version,
                                       weights_sha256=frozen.weights_sha256, device="cpu")
    prediction = runs.add_prediction(
        session, case_id=case_id, model_run_id=run.id, probabilities=np.asarray(frozen.probabilities).tolist(),
        class_names=list(frozen.class_names), item_axis=frozen.item_axis, calibrated=frozen.calibrated,
        predicted_class=frozen.class_names[frozen.class_index], uncertainty=frozen.uncertainty,
    )
    explanations = {
        method: store_map(session, blob_store, prediction_id=prediction.id, method=method,
                          target_layer=frozen.target_layer, class_index=frozen.class_index, array=array,
                          params={**params, "study_map_side": STUDY_MAP_SIDE})
        for method, (array, params) in sorted(frozen.maps.items())
    }
    return StudyCaseSpec(case_id, ground_truth, prediction.id, explanations)


def analyse_for_study(volume: ImageVolume, bundle: Any, methods: Sequence[str], progress: Progress) -> FrozenOutput:
    """Analyse ``volume`` once and keep what a study shows: the predictions with their uncertainty
    and each method's map of the class to show.

    Raises:
        SalienceError: the model finds nothing to classify, or refuses the method.
    """
    from engine.analysis import analyse_case

    try:
        result = analyse_case(volume, bundle, tuple(methods), classes="shown", progress=progress,
                              max_map_side=STUDY_MAP_SIDE, keep_capture=False, uncertainty=STUDY_UNCERTAINTY)
    except ValueError as exc:
        raise SalienceError(f"{volume.source}: {exc}") from None
    if not len(result.probabilities):
        raise SalienceError(f"{volume.source}: nothing to classify ({'; '.join(result.notes) or 'no items'})")
    shown = result.class_to_show()
    return FrozenOutput(
        bundle_name=result.bundle_name, bundle_version=result.bundle_version, weights_sha256=result.weights_sha256,
        target_layer=result.target_layer, class_names=tuple(result.class_names), item_axis=result.item_axis,
        calibrated=result.calibrated, probabilities=np.asarray(result.probabilities, dtype=np.float32),
        class_index=shown,
        maps={method: (result.maps[method].of(shown), dict(result.maps[method].params)) for method in methods},
        uncertainty=uncertainty_record(result),
    )


def _register(factory: sessionmaker[Session], volume: ImageVolume, source: str, task: str) -> int:
    with factory.begin() as session:
        return cases.get_or_create_case(
            session, content_hash=volume.content_hash, source=source, modality=volume.modality, kind=volume.kind,
            shape=list(volume.array.shape), task=task, header=volume.header,
        ).id


def freeze_cases(
    factory: sessionmaker[Session],
    blob_store: blobs.BlobStore,
    design: StudyDesign,
    bundle_name: str,
    entries: Sequence[CaseEntry],
    progress: Progress,
) -> list[StudyCaseSpec]:
    """Register each case and freeze the AI output the design shows (none if no arm shows any)."""
    methods = sorted(maps_needed(design))
    bundle = None
    if prediction_needed(design) or methods:
        from engine.models.bundle import load_bundle

        progress.report(0.0, f"loading the {bundle_name} bundle")
        bundle = load_bundle(bundle_name)
    specs = []
    for index, entry in enumerate(entries):
        check_cancelled(progress)
        share = ScaledProgress(progress, index / len(entries), (index + 1) / len(entries))
        share.report(0.0, f"case {index + 1} of {len(entries)}: reading")
        volume = read_image(entry.source)
        case_id = _register(factory, volume, entry.source, design.task)
        if bundle is None:
            specs.append(StudyCaseSpec(case_id, entry.ground_truth))
            continue
        frozen = analyse_for_study(volume, bundle, methods, ScaledProgress(share, 0.1, 0.95))
        with factory.begin() as session:
            specs.append(store_frozen(session, blob_store, case_id, frozen, entry.ground_truth))
    return specs


def _check_before_freezing(factory: sessionmaker[Session], requester_id: int, study: StudyFile) -> list[int]:
    """The readers' ids, after the checks that do not need the images (so a typo fails fast)."""
    with factory() as session:
        require_permission(session, requester_id, "study.create")
        if session.scalar(sa.select(Study.id).where(Study.name == study.design.name.strip())) is not None:
            raise SalienceError(f"{study.path}: a study named {study.design.name.strip()!r} already exists")
        ids = []
        for name in study.readers:
            reader_id = session.scalar(sa.select(Reader.id).where(Reader.username == name))
            if reader_id is None:
                raise SalienceError(f"{study.path}: readers: no account named {name!r} (salience user add {name} --role reader)")
            ids.append(reader_id)
    return ids


def create_from_file(
    factory: sessionmaker[Session],
    blob_store: blobs.BlobStore,
    requester_id: int,
    study: StudyFile,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Create a draft study from a parsed study file, freezing its AI output; a JSON summary.

    Raises:
        SalienceError: the requester may not create studies, a taken name, an unknown reader, an
            unreadable image, a model that refuses a case, or a study the data layer refuses.
    """
    progress = progress or NullProgress()
    started = time.monotonic()
    try:
        reader_ids = _check_before_freezing(factory, requester_id, study)
        specs = freeze_cases(factory, blob_store, study.design, study.bundle, study.cases, progress)
        with factory.begin() as session:
            row = create_study(session, requester_id, study.design, specs, reader_ids)
            summary = {
                "study_id": row.id, "name": row.name, "task": row.task, "design": row.design, "status": row.status,
                "cases": len(row.cases), "readers": [r.reader.username for r in row.readers],
                "assignments": len(row.assignments), "arms": [a.name for a in row.arms],
                "frozen": sorted({(c.bundle_name, c.bundle_version, c.bundle_sha256) for c in row.cases
                                  if c.bundle_name is not None}),
            }
    except DbError as exc:
        raise SalienceError(f"{study.path}: {exc}") from None
    summary["frozen"] = [{"bundle": n, "version": v, "weights_sha256": h} for n, v, h in summary["frozen"]]
    summary["seconds"] = round(time.monotonic() - started, 1)
    progress.report(1.0, "study created")
    return summary
