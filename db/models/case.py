"""Case: one image set as it was opened (a volume, an image, a clip or a slide)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JsonDict, JsonList, created_at, intpk, sha256_hex, short_text

if TYPE_CHECKING:
    from db.models.prediction import Prediction


class Case(Base):
    """One image set, identified by the sha256 of its pixels and geometry.

    Attributes:
        source: where it was read from (a path or a series folder), for display only.
        content_hash: ``ImageVolume.content_hash``; the same pixels opened twice are one case.
        modality: DICOM modality code ("MR", "US", "SM", ...).
        kind: "volume", "image", "clip" or "slide".
        shape: the volume's array shape ``[C, N, H, W]``.
        task: which bundle family reads it ("glioma", "lung-ultrasound", "histopathology").
        header: the PHI-free header summary; never names, ids or dates of birth.
    """

    __tablename__ = "cases"

    id: Mapped[intpk]
    source: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[sha256_hex] = mapped_column(unique=True)
    modality: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[str] = mapped_column(sa.String(16))
    shape: Mapped[JsonList]
    task: Mapped[short_text] = mapped_column(index=True)
    header: Mapped[JsonDict]
    created_at: Mapped[created_at]

    predictions: Mapped[list[Prediction]] = relationship(
        back_populates="case", passive_deletes=True, order_by="Prediction.id"
    )

    def __repr__(self) -> str:
        return f"Case(id={self.id}, task={self.task!r}, content_hash={self.content_hash[:12]!r})"
