"""Assignment, StudyReading and StudyAnswer: what a reader reads in a study, and what they answered.

An assignment is one case for one reader in one arm and session, at one place of that reader's
order. Reading it makes one ``StudyReading`` per phase (two in sequential designs) and version
(a revision of a submitted answer is a new version; the old one stays). Each reading holds one
``StudyAnswer`` per question: a draft from the moment it is given, locked when the reading is
submitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JsonDict, intpk

if TYPE_CHECKING:
    from db.models.prediction import Prediction
    from db.models.reader import Reader
    from db.models.study import Study, StudyArm, StudyCase, StudyQuestion, StudySession


class Assignment(Base):
    """One case for one reader in one arm and session, at one position of that reader's order.

    Attributes:
        position: 0-based place in the reader's order within the session.
        phases: 1, or 2 in sequential designs (unaided, then aided).
        repeat: whether this is a repeat read (test-retest).
        token: an opaque random handle of the case for the reader's screen; the app resolves it
            to pixels through ``db.study_pixels`` and never hands the screen a path.
    """

    __tablename__ = "assignments"
    __table_args__ = (
        sa.UniqueConstraint("reader_id", "study_case_id", "arm_id", "session_id"),
        sa.UniqueConstraint("session_id", "reader_id", "position"),
        sa.UniqueConstraint("token"),
        sa.CheckConstraint("position >= 0", name="position_not_negative"),
        sa.CheckConstraint("phases IN (1, 2)", name="phases_1_or_2"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id", ondelete="RESTRICT"), index=True)
    study_case_id: Mapped[int] = mapped_column(sa.ForeignKey("study_cases.id", ondelete="CASCADE"), index=True)
    arm_id: Mapped[int] = mapped_column(sa.ForeignKey("study_arms.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("study_sessions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    phases: Mapped[int] = mapped_column(default=1)
    repeat: Mapped[bool] = mapped_column(default=False)
    token: Mapped[str] = mapped_column(sa.String(32))

    study: Mapped[Study] = relationship(back_populates="assignments")
    reader: Mapped[Reader] = relationship()
    study_case: Mapped[StudyCase] = relationship()
    arm: Mapped[StudyArm] = relationship()
    session: Mapped[StudySession] = relationship()
    readings: Mapped[list[StudyReading]] = relationship(
        back_populates="assignment", order_by="(StudyReading.phase, StudyReading.version)"
    )

    def __repr__(self) -> str:
        return f"Assignment(id={self.id}, study_id={self.study_id}, reader_id={self.reader_id}, position={self.position})"


class StudyReading(Base):
    """One phase (and version) of one assignment as read: its timer, lock and what was shown.

    Readings are never deleted: ``assignment_id`` restricts deleting the assignment, and with it
    the study, once anything was read.

    Attributes:
        phase: 1, or 2 for the aided step of a sequential design.
        version: 1, then 2, ... for each revision of a submitted answer.
        opened_at: when the reader first opened it; ``closed_at`` when they last left it.
        first_answer_at: when the first answer was given (time to first answer).
        submitted_at: when the answers were locked; None while they are drafts.
        seconds_open: time the case was open, summed over visits.
        open_since: start of the current visit, None when closed (internal to the timer).
        shown_prediction_id: the prediction shown, None when none was.
        shown_explanation_ids: ``{method: explanation_id}`` of every map shown.
        pairwise_order: ``{question_key: [left_method, right_method]}`` as drawn at random.
    """

    __tablename__ = "study_readings"
    __table_args__ = (
        sa.UniqueConstraint("assignment_id", "phase", "version"),
        sa.CheckConstraint("phase IN (1, 2)", name="phase_1_or_2"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint("seconds_open >= 0", name="seconds_open_not_negative"),
    )

    id: Mapped[intpk]
    assignment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("assignments.id", ondelete="RESTRICT"), index=True
    )
    phase: Mapped[int] = mapped_column(default=1)
    version: Mapped[int] = mapped_column(default=1)
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    first_answer_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    seconds_open: Mapped[float] = mapped_column(sa.Double(), default=0.0)
    open_since: Mapped[datetime | None]
    shown_prediction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("predictions.id", ondelete="RESTRICT"), index=True
    )
    shown_explanation_ids: Mapped[JsonDict]
    pairwise_order: Mapped[JsonDict]

    assignment: Mapped[Assignment] = relationship(back_populates="readings")
    shown_prediction: Mapped[Prediction | None] = relationship()
    answers: Mapped[list[StudyAnswer]] = relationship(
        back_populates="reading", cascade="all, delete-orphan", order_by="StudyAnswer.id"
    )

    def __repr__(self) -> str:
        return (
            f"StudyReading(id={self.id}, assignment_id={self.assignment_id}, phase={self.phase}, "
            f"version={self.version}, submitted={self.submitted_at is not None})"
        )


class StudyAnswer(Base):
    """One answer to one question in one reading.

    Attributes:
        value: the answer as JSON (a choice, a list, a number, regions, text).
        first_given_at: when this question was first answered in this reading.
        updated_at: when the answer last changed.
        changes: how many times it changed while a draft.
    """

    __tablename__ = "study_answers"
    __table_args__ = (
        sa.UniqueConstraint("reading_id", "question_id"),
        sa.CheckConstraint("changes >= 0", name="changes_not_negative"),
    )

    id: Mapped[intpk]
    reading_id: Mapped[int] = mapped_column(sa.ForeignKey("study_readings.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[int] = mapped_column(
        sa.ForeignKey("study_questions.id", ondelete="RESTRICT"), index=True
    )
    value: Mapped[Any] = mapped_column(sa.JSON())
    first_given_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    changes: Mapped[int] = mapped_column(default=0)

    reading: Mapped[StudyReading] = relationship(back_populates="answers")
    question: Mapped[StudyQuestion] = relationship()
