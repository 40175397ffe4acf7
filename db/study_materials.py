"""What a study's report and exports need beside the answers: each case's grid, its frozen maps
and the frozen AI output with its uncertainty, under the case's pseudonym (coordinators and
admins; a study still open only by an admin, as for ``db.study_export``).

Nothing here identifies a patient: no source path, file name or header. The app reads the
frozen maps from the blob store by the content addresses returned here; for exports that must
read the source image (label maps aligned with it) it asks for the audited study key
(``db.study_progress.study_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db.errors import NotAllowed
from db.models import StudyCase, StudyCaseMap
from db.permissions import allowed, require_permission
from db.studies import get_study


@dataclass(frozen=True)
class FrozenMap:
    """One frozen map's content address in the blob store, and the class it explains."""

    method: str
    map_path: str
    map_sha256: str
    class_index: int


@dataclass(frozen=True)
class FrozenAi:
    """The AI output frozen for a study case, as every arm that shows the AI showed it.

    Attributes:
        uncertainty: the prediction's uncertainty record (``db.uncertainty``); None when not
            measured. Arms with ``show_uncertainty: false`` showed the prediction without it.
    """

    prediction_id: int
    predicted_class: str
    item_axis: str
    calibrated: bool
    bundle_name: str | None
    bundle_version: str | None
    bundle_sha256: str | None
    uncertainty: dict | None


@dataclass(frozen=True)
class CaseMaterial:
    """A study case as the report and the exports see it.

    Attributes:
        pseudonym: the case's name in the study.
        kind: "volume", "image", "clip" or "slide".
        shape: the case's ``(C, N, H, W)``; region answers are drawn on ``(N, H, W)``.
        maps: ``{cam method: FrozenMap}`` of the maps frozen for it.
        ground_truth: the reference answer (the exports are the coordinator's); None when unknown.
        ai: the frozen AI output; None when no arm shows the AI.
    """

    pseudonym: str
    kind: str
    shape: tuple[int, ...]
    maps: dict[str, FrozenMap] = field(default_factory=dict)
    ground_truth: str | None = None
    ai: FrozenAi | None = None

    @property
    def grid(self) -> tuple[int, int, int]:
        _, slices, height, width = self.shape
        return slices, height, width


def case_materials(session: Session, requester_id: int, study_id: int) -> list[CaseMaterial]:
    """Every case of a study with its grid, ground truth, frozen maps and AI output, by pseudonym.

    Raises:
        NotAllowed: the requester may not export, or the study is not closed and the requester
            is not an admin.
        NotFound: no such study.
    """
    requester = require_permission(session, requester_id, "study.export")
    study = get_study(session, study_id)
    if study.status != "closed" and not allowed(requester.role, "study.export_open"):
        raise NotAllowed(f"study {study.name!r} is {study.status}: its cases can be exported once closed (or by an admin)")
    rows = session.scalars(
        sa.select(StudyCase).where(StudyCase.study_id == study.id).order_by(StudyCase.pseudonym)
        .options(selectinload(StudyCase.case), selectinload(StudyCase.prediction),
                 selectinload(StudyCase.maps).selectinload(StudyCaseMap.explanation))
    )
    return [
        CaseMaterial(
            row.pseudonym, row.case.kind, tuple(int(n) for n in row.case.shape),
            {m.method: FrozenMap(m.method, m.explanation.map_path, m.explanation.map_sha256, m.explanation.class_index)
             for m in row.maps},
            row.ground_truth, _frozen_ai(row),
        )
        for row in rows
    ]


def _frozen_ai(row: StudyCase) -> FrozenAi | None:
    prediction = row.prediction
    if prediction is None:
        return None
    return FrozenAi(prediction.id, prediction.predicted_class, prediction.item_axis, bool(prediction.calibrated),
                    row.bundle_name, row.bundle_version, row.bundle_sha256,
                    None if prediction.uncertainty is None else dict(prediction.uncertainty))
