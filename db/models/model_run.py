"""ModelRun: which bundle, at which version and weights, ran on which device."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, created_at, intpk, sha256_hex, short_text

if TYPE_CHECKING:
    from db.models.prediction import Prediction


class ModelRun(Base):
    """The identity of a model as it produced predictions.

    One row per (bundle, version, weights hash, device): predictions made by the same weights on
    the same device share it, so a result can always be traced to the exact weights file.
    """

    __tablename__ = "model_runs"
    __table_args__ = (sa.UniqueConstraint("bundle_name", "version", "weights_sha256", "device"),)

    id: Mapped[intpk]
    bundle_name: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[short_text]
    weights_sha256: Mapped[sha256_hex]
    device: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[created_at]

    predictions: Mapped[list[Prediction]] = relationship(back_populates="model_run")

    def __repr__(self) -> str:
        return f"ModelRun(id={self.id}, bundle={self.bundle_name!r} {self.version!r}, device={self.device!r})"
