"""Every table of Salience; importing this package fills ``db.base.Base.metadata``."""

from db.models.audit_event import AuditEvent
from db.models.case import Case
from db.models.model_run import ModelRun
from db.models.prediction import Explanation, MapCheck, Prediction
from db.models.reader import ROLES, Reader
from db.models.reading import ANNOTATION_KINDS, INDEX_SPACE, Annotation, Reading
from db.models.study import AgreementResult, Assignment, Study

__all__ = [
    "ANNOTATION_KINDS",
    "INDEX_SPACE",
    "ROLES",
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
]
