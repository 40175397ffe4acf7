"""Every table of Salience; importing this package fills ``db.base.Base.metadata``."""

from db.models.audit_event import AuditEvent
from db.models.case import Case
from db.models.model_run import ModelRun
from db.models.prediction import Explanation, MapCheck, Prediction
from db.models.reader import ROLES, Reader
from db.models.reading import ANNOTATION_KINDS, INDEX_SPACE, Annotation, Reading
from db.models.study import (
    QUESTION_KINDS,
    STUDY_DESIGNS,
    STUDY_STATUSES,
    AgreementResult,
    Study,
    StudyArm,
    StudyCase,
    StudyCaseMap,
    StudyQuestion,
    StudyReader,
    StudySession,
)
from db.models.study_reading import Assignment, StudyAnswer, StudyReading

__all__ = [
    "ANNOTATION_KINDS",
    "INDEX_SPACE",
    "QUESTION_KINDS",
    "ROLES",
    "STUDY_DESIGNS",
    "STUDY_STATUSES",
    "AgreementResult",
    "Annotation",
    "Assignment",
    "AuditEvent",
    "Case",
    "Explanation",
    "MapCheck",
    "ModelRun",
    "Prediction",
    "Reader",
    "Reading",
    "Study",
    "StudyAnswer",
    "StudyArm",
    "StudyCase",
    "StudyCaseMap",
    "StudyQuestion",
    "StudyReader",
    "StudyReading",
    "StudySession",
]
