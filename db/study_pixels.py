"""For ``app`` only: turn a reader's opaque case token into what is needed to load its pixels.

Why a token and not a path: the reader's screen must never hold a source path, a file name or
anything else that could identify the patient (file names often carry them). So the worklist and
the form carry ``token`` (random, unguessable, one per assignment), and the app, which has to
read the file, resolves it here and hands the screen only the decoded pixels (an image volume
with its header summary stripped by the app). ``ui`` must not import this module; a test checks
that no ``ui`` module does.

The token is checked against the signed-in reader and the study's state, like every other
reader function: a token of another reader's assignment resolves to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from db._study_access import own_assignment_by_token, require_available
from db.base import utcnow


@dataclass(frozen=True)
class CasePixels:
    """Where the app reads a study case's image from, and how to check it is the same image.

    Attributes:
        source: the path or series folder to read; for the app's loader only.
        content_hash: the case's ``ImageVolume.content_hash``; the app checks the loaded image
            against it, so a changed file is never shown under the study's pseudonym.
        kind: "volume", "image", "clip" or "slide".
        task: the case's task.
        pseudonym: the name to show instead of the source.
    """

    source: str
    content_hash: str
    kind: str
    task: str
    pseudonym: str


def pixels_for_token(session: Session, reader_id: int, token: str, *, now: datetime | None = None) -> CasePixels:
    """The image behind a reader's case token.

    Raises:
        NotAllowed: the token is not on this reader's worklist.
        StudyStateError: the study or the case's session is not open to the reader.
    """
    assignment = own_assignment_by_token(session, reader_id, token)
    require_available(session, assignment, now or utcnow())
    case = assignment.study_case.case
    return CasePixels(case.source, case.content_hash, case.kind, case.task, assignment.study_case.pseudonym)
