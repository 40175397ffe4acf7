"""A closed study's report: read from the database once, computed once, written as HTML or PDF.

``build_study_report`` gathers what ``engine.stats.study_report`` needs (the long-format
records, the study's design, each case's grid and frozen maps) through the data layer's
permission-checked, audited functions, loads the maps from the content-addressed store, and
returns the ``StudyReport`` that the command line renders (``app.study_report_render``) and the
window's dashboard shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.store import load_map
from app.errors import user_errors
from db.audit import record
from db.blobs import BlobStore
from db.errors import DbError
from db.models import Study
from db.readers import get_reader
from db.studies import get_study
from db.study_export import export_study_records
from db.study_materials import CaseMaterial, case_materials
from engine.stats.study_reads import ArmFacts, BundleFacts, QuestionFacts, StudyFacts
from engine.stats.study_report import StudyReport, study_report

log = logging.getLogger(__name__)

DEIDENTIFIED = (
    "De-identified: cases appear under their study pseudonyms only; no source path, file name or "
    "patient identifier is included."
)


def software_version() -> str:
    """The installed Salience version ("0.1.0"), or "source checkout" when it is not installed."""
    try:
        return metadata.version("salience")
    except metadata.PackageNotFoundError:
        return "source checkout"


@dataclass(frozen=True)
class StudyData:
    """Everything a report or an export of one study rests on, read in one transaction.

    Attributes:
        records: long-format records (``db.study_export``), one per reading x question.
        materials: each case's grid and frozen maps, by pseudonym.
    """

    facts: StudyFacts
    records: list[dict[str, Any]]
    materials: list[CaseMaterial]


def _bundles(study: Study) -> tuple[BundleFacts, ...]:
    counts: dict[tuple[str, str, str], int] = {}
    for case in study.cases:
        if case.bundle_sha256:
            key = (case.bundle_name or "-", case.bundle_version or "-", case.bundle_sha256)
            counts[key] = counts.get(key, 0) + 1
    return tuple(BundleFacts(*key, cases) for key, cases in sorted(counts.items()))


def study_facts(study: Study) -> StudyFacts:
    """The design facts of a study row (arms, questions, readers, cases, frozen model, version)."""
    return StudyFacts(
        study_id=study.id, name=study.name, design=study.design, task=study.task,
        arms=tuple(ArmFacts(a.name, a.shows_prediction, a.cam_method, a.show_uncertainty) for a in study.arms),
        questions=tuple(
            QuestionFacts(q.key, q.prompt, q.kind, tuple(q.options), q.required,
                          None if q.arms is None else tuple(q.arms), None if q.phases is None else tuple(int(p) for p in q.phases))
            for q in study.questions
        ),
        readers=tuple(r.reader.username for r in study.readers),
        n_cases=len(study.cases), status=study.status, description=study.description, bundles=_bundles(study),
        washout_days=study.washout_days, repeat_fraction=study.repeat_fraction, software_version=software_version(),
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        closed_at=None if study.closed_at is None else study.closed_at.isoformat(timespec="seconds"),
    )


def load_study_data(session: Session, requester_id: int, study_id: int) -> StudyData:
    """The study's records (audited as an export), design and case materials.

    Raises:
        NotAllowed: the requester may not export it, or it is not closed (admins excepted).
        NotFound: no such study or account.
    """
    records = export_study_records(session, requester_id, study_id)
    materials = case_materials(session, requester_id, study_id)
    return StudyData(study_facts(get_study(session, study_id)), records, materials)


def load_maps(materials: list[CaseMaterial], blob_root: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """The frozen maps from the blob store, and one note per map that could not be read."""
    store = BlobStore(blob_root)
    maps: dict[str, dict[str, np.ndarray]] = {}
    problems: list[str] = []
    for case in materials:
        for method, frozen in case.maps.items():
            try:
                maps.setdefault(case.pseudonym, {})[method] = load_map(store, frozen.map_path, frozen.map_sha256)
            except (DbError, ValueError) as exc:
                log.warning("map %s of %s: %s", method, case.pseudonym, exc)
                problems.append(f"{case.pseudonym} {method}")
    notes = [f"{len(problems)} frozen map(s) could not be read from the map store and are left out: "
             f"{', '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}"] if problems else []
    return maps, notes


def report_from_data(data: StudyData, blob_root: str | Path, *, positive: str | None = None, level: float = 0.95) -> StudyReport:
    """Compute the report of loaded study data (maps are read only when regions were asked for)."""
    maps, notes = {}, []
    if data.facts.questions_of("region"):
        maps, notes = load_maps(data.materials, blob_root)
    grids = {case.pseudonym: case.grid for case in data.materials}
    return study_report(data.facts, data.records, maps=maps, grids=grids, positive=positive, level=level, notes=notes)


def build_study_report(
    factory: sessionmaker[Session], requester_id: int, study_id: int, blob_root: str | Path, *,
    positive: str | None = None, level: float = 0.95,
) -> StudyReport:
    """Read a closed study and compute its report (one transaction; the read is audited).

    Raises:
        SalienceError: one line when the requester may not, the study does not exist or is not
            closed, or a statistic's input is unusable (e.g. an unknown positive class).
    """
    with user_errors(), factory.begin() as session:
        data = load_study_data(session, requester_id, study_id)
    return report_from_data(data, blob_root, positive=positive, level=level)


def audit_written(factory: sessionmaker[Session], requester_id: int, study_id: int, action: str, detail: dict[str, Any]) -> None:
    """Record that a report or an export of the study was written (who, what, no paths)."""
    with user_errors(), factory.begin() as session:
        actor = get_reader(session, requester_id).username
        record(session, actor=actor, action=action, entity="studies", entity_id=study_id, detail=detail)
