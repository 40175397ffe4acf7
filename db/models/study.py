"""A blinded reader study's design: the study, its arms, questions, readers, cases (with the
frozen AI output each arm may show), sessions, and its computed agreement results.

The rules that run a study (who sees what, when) live in ``db.studies``, ``db.study_reading``
and ``db.study_reader``; these tables only hold what those rules decide on.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JsonList, created_at, intpk, label_text, short_text

if TYPE_CHECKING:
    from db.models.case import Case
    from db.models.prediction import Explanation, Prediction
    from db.models.reader import Reader
    from db.models.study_reading import Assignment

STUDY_STATUSES = ("draft", "open", "closed")
STUDY_DESIGNS = ("fully_crossed", "counterbalanced", "crossover", "sequential")
QUESTION_KINDS = (
    "single_choice",
    "multiple_choice",
    "confidence_1_5",
    "probability_0_100",
    "region",
    "helpfulness",
    "pairwise_explanation",
    "free_text",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Study(Base):
    """A reader study and its design.

    Attributes:
        name: unique title.
        task: the clinical task its cases belong to.
        status: "draft" (being set up; readers see nothing), "open" (readers read) or "closed"
            (read-only; results may be exported).
        design: "fully_crossed" (every reader reads every case in every arm), "counterbalanced"
            (each reader reads each case in one arm, Latin square), "crossover" (one arm per
            session, sessions apart by the washout) or "sequential" (unaided first answer,
            locked, then the same case aided).
        washout_days: days between sessions (crossover, repeat reads), and the least time a
            reader waits after finishing a session before the next opens to them.
        repeat_fraction: the share of cases read again in a final session (test-retest).
        order_seed: seed of the case order, arm allocation and repeat choice.
        allow_revisions: whether a submitted answer may be changed (as a new version).
        created_by_id: the coordinator who created it.
        starts_on: the date the first session opens (set when the study opens).

    Once a reader has opened one of its cases (``db.studies.first_reading_at``) the design is
    frozen and the study can only be extended. That moment is read from the readings, not kept
    on this row, so readers starting together never queue on one row lock.
    """

    __tablename__ = "studies"
    __table_args__ = (
        sa.CheckConstraint(_in("status", STUDY_STATUSES), name="status"),
        sa.CheckConstraint(_in("design", STUDY_DESIGNS), name="design"),
        sa.CheckConstraint("washout_days >= 0", name="washout_days_not_negative"),
        sa.CheckConstraint("repeat_fraction >= 0 AND repeat_fraction <= 1", name="repeat_fraction_0_to_1"),
    )

    id: Mapped[intpk]
    name: Mapped[label_text] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    task: Mapped[short_text]
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    design: Mapped[str] = mapped_column(sa.String(32))
    washout_days: Mapped[int] = mapped_column(default=0)
    repeat_fraction: Mapped[float] = mapped_column(sa.Double(), default=0.0)
    order_seed: Mapped[int] = mapped_column(sa.BigInteger())
    allow_revisions: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id", ondelete="RESTRICT"))
    created_at: Mapped[created_at]
    starts_on: Mapped[date | None]
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    created_by: Mapped[Reader] = relationship()
    arms: Mapped[list[StudyArm]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyArm.position"
    )
    questions: Mapped[list[StudyQuestion]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyQuestion.position"
    )
    readers: Mapped[list[StudyReader]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyReader.design_index"
    )
    cases: Mapped[list[StudyCase]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyCase.id"
    )
    sessions: Mapped[list[StudySession]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudySession.number"
    )
    assignments: Mapped[list[Assignment]] = relationship(back_populates="study", passive_deletes=True)

    def __repr__(self) -> str:
        return f"Study(id={self.id}, name={self.name!r}, design={self.design!r}, status={self.status!r})"


class StudyArm(Base):
    """One reading condition, e.g. unaided, AI prediction only, AI with Grad-CAM.

    Attributes:
        position: the arm's place in the study's list (its index in the Latin square).
        shows_prediction: whether readers in this arm see the frozen prediction.
        cam_method: the map shown with it (a CAM method name), or None for none.
        show_uncertainty: whether readers who see the prediction also see its frozen uncertainty
            (``db.study_reader.ai_output_for_reader``); meaningless where no prediction is shown.
    """

    __tablename__ = "study_arms"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "name"),
        sa.UniqueConstraint("study_id", "position"),
        sa.CheckConstraint("cam_method IS NULL OR shows_prediction", name="map_needs_prediction"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[short_text]
    shows_prediction: Mapped[bool]
    cam_method: Mapped[str | None] = mapped_column(sa.String(64))
    show_uncertainty: Mapped[bool] = mapped_column(default=True, server_default=sa.true())

    study: Mapped[Study] = relationship(back_populates="arms")


class StudyQuestion(Base):
    """One question of the reading form.

    Attributes:
        key: short identifier, unique in the study (e.g. "diagnosis"); exports name it.
        kind: one of ``QUESTION_KINDS``.
        options: the choices (single/multiple choice), or the two CAM methods compared
            (pairwise_explanation); empty otherwise.
        required: whether a case can be submitted without it.
        arms: names of the arms that ask it, or None for every arm.
        phases: the phases that ask it (1 unaided, 2 aided in sequential designs), or None for
            every phase.
    """

    __tablename__ = "study_questions"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "key"),
        sa.UniqueConstraint("study_id", "position"),
        sa.CheckConstraint(_in("kind", QUESTION_KINDS), name="kind"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    position: Mapped[int]
    key: Mapped[short_text]
    prompt: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.String(32))
    options: Mapped[JsonList]
    required: Mapped[bool] = mapped_column(default=True)
    arms: Mapped[JsonList | None]
    phases: Mapped[JsonList | None]

    study: Mapped[Study] = relationship(back_populates="questions")


class StudyReader(Base):
    """An account taking part in a study as a reader.

    Attributes:
        design_index: the reader's row in the Latin square (0, 1, ... in the order added).
    """

    __tablename__ = "study_readers"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "reader_id"),
        sa.UniqueConstraint("study_id", "design_index"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id", ondelete="RESTRICT"), index=True)
    design_index: Mapped[int]
    added_at: Mapped[created_at]

    study: Mapped[Study] = relationship(back_populates="readers")
    reader: Mapped[Reader] = relationship()


class StudyCase(Base):
    """A case in a study under its pseudonym, with its hidden ground truth and frozen AI output.

    Attributes:
        pseudonym: what readers see, e.g. "S3-C417"; the number is drawn at random, so it says
            nothing about the case or the order cases were added.
        design_index: the case's column in the Latin square (a seeded shuffle of the cases).
        ground_truth: the reference answer, never shown to readers; None when unknown.
        repeat_read: whether this case is read again in the repeat session.
        prediction_id: the frozen prediction shown in arms that show one.
        bundle_name, bundle_version, bundle_sha256: the model that made it (copied, so the
            study keeps the record even if model runs are ever pruned).
        maps: the frozen explanation per CAM method.
    """

    __tablename__ = "study_cases"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "case_id"),
        sa.UniqueConstraint("study_id", "design_index"),
        sa.UniqueConstraint("pseudonym"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    pseudonym: Mapped[str] = mapped_column(sa.String(32))
    design_index: Mapped[int]
    ground_truth: Mapped[str | None] = mapped_column(sa.String(128))
    repeat_read: Mapped[bool] = mapped_column(default=False)
    prediction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("predictions.id", ondelete="RESTRICT"), index=True
    )
    bundle_name: Mapped[str | None] = mapped_column(sa.String(128))
    bundle_version: Mapped[str | None] = mapped_column(sa.String(64))
    bundle_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    added_at: Mapped[created_at]

    study: Mapped[Study] = relationship(back_populates="cases")
    case: Mapped[Case] = relationship()
    prediction: Mapped[Prediction | None] = relationship()
    maps: Mapped[list[StudyCaseMap]] = relationship(
        back_populates="study_case", cascade="all, delete-orphan", order_by="StudyCaseMap.method"
    )

    def __repr__(self) -> str:
        return f"StudyCase(id={self.id}, study_id={self.study_id}, pseudonym={self.pseudonym!r})"


class StudyCaseMap(Base):
    """The frozen map of one CAM method for one study case."""

    __tablename__ = "study_case_maps"
    __table_args__ = (sa.UniqueConstraint("study_case_id", "method"),)

    id: Mapped[intpk]
    study_case_id: Mapped[int] = mapped_column(sa.ForeignKey("study_cases.id", ondelete="CASCADE"))
    method: Mapped[short_text]
    explanation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("explanations.id", ondelete="RESTRICT"), index=True
    )

    study_case: Mapped[StudyCase] = relationship(back_populates="maps")
    explanation: Mapped[Explanation] = relationship()


class StudySession(Base):
    """A reading session: its number, how many days after the first it opens, and its date.

    Attributes:
        number: 1, 2, ...
        offset_days: days after the study's start that it opens.
        opens_on: the date it opens (set when the study opens); nothing in it can be read before.
        repeat: whether it is the repeat-read session.
    """

    __tablename__ = "study_sessions"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "number"),
        sa.CheckConstraint("number >= 1", name="number_positive"),
        sa.CheckConstraint("offset_days >= 0", name="offset_days_not_negative"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int]
    offset_days: Mapped[int] = mapped_column(default=0)
    opens_on: Mapped[date | None]
    repeat: Mapped[bool] = mapped_column(default=False)

    study: Mapped[Study] = relationship(back_populates="sessions")


class AgreementResult(Base):
    """A computed agreement or accuracy figure of a study, with its confidence interval.

    Attributes:
        metric: e.g. "fleiss_kappa", "auc".
        arm: the arm it was computed on, or None for a between-arm figure.
        value: the estimate.
        ci_low, ci_high: the confidence interval's bounds, when computed.
        ci_level: the interval's level, e.g. 0.95.
    """

    __tablename__ = "agreement_results"

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    metric: Mapped[short_text]
    arm: Mapped[str | None] = mapped_column(sa.String(64))
    value: Mapped[float]
    ci_low: Mapped[float | None]
    ci_high: Mapped[float | None]
    ci_level: Mapped[float | None]
    created_at: Mapped[created_at]


__all__ = [
    "QUESTION_KINDS",
    "STUDY_DESIGNS",
    "STUDY_STATUSES",
    "AgreementResult",
    "Study",
    "StudyArm",
    "StudyCase",
    "StudyCaseMap",
    "StudyQuestion",
    "StudyReader",
    "StudySession",
]
