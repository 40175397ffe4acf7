"""Reading and its Annotations: what a reader decided about a case and where they pointed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JsonDict, created_at, intpk, label_text, short_text

if TYPE_CHECKING:
    from db.models.case import Case
    from db.models.prediction import Prediction
    from db.models.reader import Reader

ANNOTATION_KINDS = ("point", "box", "polygon", "mask")
INDEX_SPACE = "index:slice,row,col"


class Reading(Base):
    """One reader's answer on one case.

    Readings are never lost by deleting something else: the reader, the case and the prediction
    shown all ``RESTRICT`` deletion while a reading refers to them.

    Attributes:
        prediction_id: the model output the reader saw, or None when they saw none.
        diagnosis: the answer, one of the task's diagnoses.
        confidence: 1 (guess) to 5 (certain), enforced by a CHECK constraint.
        seconds_on_case: time the case was open before the answer was saved.
        first_answer_locked_at: when the answer became final; after it, the reader may be shown
            the model's output (sequential reading designs).
    """

    __tablename__ = "readings"
    __table_args__ = (
        sa.CheckConstraint("confidence BETWEEN 1 AND 5", name="confidence_1_to_5"),
        sa.CheckConstraint("seconds_on_case >= 0", name="seconds_not_negative"),
        sa.Index("ix_readings_reader_id_case_id", "reader_id", "case_id"),
    )

    id: Mapped[intpk]
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("readers.id", ondelete="RESTRICT"))
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    prediction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("predictions.id", ondelete="RESTRICT"), index=True
    )
    diagnosis: Mapped[label_text]
    confidence: Mapped[int]
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    seconds_on_case: Mapped[float] = mapped_column(default=0.0)
    first_answer_locked_at: Mapped[datetime | None]
    created_at: Mapped[created_at]

    reader: Mapped[Reader] = relationship()
    case: Mapped[Case] = relationship()
    prediction: Mapped[Prediction | None] = relationship()
    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="reading",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Annotation.id",
    )

    def __repr__(self) -> str:
        return (
            f"Reading(id={self.id}, reader_id={self.reader_id}, case_id={self.case_id}, "
            f"diagnosis={self.diagnosis!r}, confidence={self.confidence})"
        )


class Annotation(Base):
    """A point, box, polygon or painted mask a reader drew, in image coordinates.

    Attributes:
        kind: "point", "box", "polygon" or "mask".
        slice_index: the slice (or frame) it was drawn on.
        geometry: ``{"points": [[row, col], ...]}``: one point, two opposite box corners, or the
            polygon's vertices, in the units named by ``coordinate_space``. For a mask, the
            pixels of one label on that slice, run-length encoded:
            ``{"encoding": "rle-rows", "shape": [rows, cols], "counts": [...]}`` (rows read
            first, alternating runs of unpainted and painted pixels, unpainted first;
            ``engine.imaging.mask_rle``), on the grid named by ``coordinate_space``.
        coordinate_space: ``"index:slice,row,col"`` (voxel indices of the case's volume) unless
            stated otherwise.
        label: what the reader says is there.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('point', 'box', 'polygon', 'mask')", name="kind"),
        sa.CheckConstraint("slice_index >= 0", name="slice_index_not_negative"),
    )

    id: Mapped[intpk]
    reading_id: Mapped[int] = mapped_column(
        sa.ForeignKey("readings.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(16))
    slice_index: Mapped[int]
    geometry: Mapped[JsonDict]
    coordinate_space: Mapped[short_text] = mapped_column(default=INDEX_SPACE)
    label: Mapped[label_text]

    reading: Mapped[Reading] = relationship(back_populates="annotations")

    def __repr__(self) -> str:
        return f"Annotation(id={self.id}, kind={self.kind!r}, slice_index={self.slice_index}, label={self.label!r})"
