"""Study, Assignment and AgreementResult: the design of a blinded reader study and its results.

Only the design is stored here (arms, blinding, order seed, washout); the rules that run a study
(who sees what, when) grow on these tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JsonList, created_at, intpk, label_text, short_text

if TYPE_CHECKING:
    from db.models.case import Case
    from db.models.reader import Reader


class Study(Base):
    """A reader study's design.

    Attributes:
        name: unique title.
        task: the clinical task its cases belong to.
        arms: arm names, e.g. ``["unaided", "aided", "aided+cam"]``.
        blinding: what readers are blinded to, e.g. "readers" or "readers+ground-truth".
        order_seed: seed of the random case order, so the order can be reproduced.
        washout_days: minimum days between a reader's readings of the same case in two arms.
    """

    __tablename__ = "studies"
    __table_args__ = (sa.CheckConstraint("washout_days >= 0", name="washout_days_not_negative"),)

    id: Mapped[intpk]
    name: Mapped[label_text] = mapped_column(unique=True)
    task: Mapped[short_text]
    arms: Mapped[JsonList]
    blinding: Mapped[short_text]
    order_seed: Mapped[int]
    washout_days: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[created_at]

    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="study", passive_deletes=True, order_by="Assignment.id"
    )


class Assignment(Base):
    """One case for one reader in one arm, at one position of that reader's order."""

    __tablename__ = "assignments"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "reader_id", "case_id", "arm"),
        sa.UniqueConstraint("study_id", "reader_id", "position"),
        sa.CheckConstraint("position >= 0", name="position_not_negative"),
    )

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id", ondelete="RESTRICT"), index=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    arm: Mapped[short_text]
    position: Mapped[int]

    study: Mapped[Study] = relationship(back_populates="assignments")
    reader: Mapped[Reader] = relationship()
    case: Mapped[Case] = relationship()


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
