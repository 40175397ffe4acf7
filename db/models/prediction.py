"""Prediction and its Explanations: what a model said about a case and where it looked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, JsonDict, JsonList, created_at, intpk, label_text, sha256_hex, short_text

if TYPE_CHECKING:
    from db.models.case import Case
    from db.models.model_run import ModelRun


class Prediction(Base):
    """Class probabilities of one model run on one case, per item along ``item_axis``.

    Attributes:
        probabilities: ``[[p_0, ..., p_K-1], ...]``, one row per slice, frame, patch or tile.
        class_names: the model's classes in output order.
        item_axis: what a row is: "slice", "frame", "patch", "tile", "image", or "volume" (the one
            row of a model that reads the whole volume at once).
        calibrated: whether the probabilities went through a calibration step.
        predicted_class: the case-level answer, one of ``class_names``.
        uncertainty: how much the answers moved when the model was asked again (Monte Carlo
            dropout or test-time augmentation): the method, samples, the rule and its
            thresholds, the case answer's and each row's entropies (nats) and verdict in words
            (``db.runs.check_uncertainty`` says the shape); None: not measured.

    A case deleted with no readings takes its predictions with it; a prediction shown to a
    reader cannot be deleted (``readings.prediction_id`` restricts it).
    """

    __tablename__ = "predictions"

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    model_run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("model_runs.id", ondelete="RESTRICT"), index=True
    )
    probabilities: Mapped[JsonList]
    class_names: Mapped[JsonList]
    item_axis: Mapped[str] = mapped_column(sa.String(16))
    calibrated: Mapped[bool] = mapped_column(default=False)
    predicted_class: Mapped[label_text]
    uncertainty: Mapped[JsonDict | None] = mapped_column(sa.JSON(none_as_null=True), nullable=True)
    created_at: Mapped[created_at]

    case: Mapped[Case] = relationship(back_populates="predictions")
    model_run: Mapped[ModelRun] = relationship(back_populates="predictions")
    explanations: Mapped[list[Explanation]] = relationship(
        back_populates="prediction", passive_deletes=True, order_by="Explanation.id"
    )

    def __repr__(self) -> str:
        return f"Prediction(id={self.id}, case_id={self.case_id}, predicted_class={self.predicted_class!r})"


class Explanation(Base):
    """One class-activation map of one prediction, stored as a content-addressed file.

    Attributes:
        method: CAM method name, e.g. "gradcam".
        target_layer: dotted module path of the hooked layer.
        class_index: the explained class, an index into the prediction's ``class_names``.
        params: the method's parameters, enough to recompute the map.
        map_path: path of the raw signed map relative to the blob store root.
        map_sha256: sha256 of the map file's bytes (checked on every read).
        map_stats: ``{"min": ..., "max": ..., "mean": ...}`` of the raw map.
    """

    __tablename__ = "explanations"

    id: Mapped[intpk]
    prediction_id: Mapped[int] = mapped_column(
        sa.ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[short_text]
    target_layer: Mapped[str] = mapped_column(sa.String(256))
    class_index: Mapped[int]
    params: Mapped[JsonDict]
    map_path: Mapped[str] = mapped_column(sa.String(512))
    map_sha256: Mapped[sha256_hex]
    map_stats: Mapped[JsonDict]
    created_at: Mapped[created_at]

    prediction: Mapped[Prediction] = relationship(back_populates="explanations")
    checks: Mapped[list["MapCheck"]] = relationship(
        back_populates="explanation", cascade="all, delete-orphan", passive_deletes=True, order_by="MapCheck.id"
    )

    def __repr__(self) -> str:
        return f"Explanation(id={self.id}, method={self.method!r}, class_index={self.class_index})"


class MapCheck(Base):
    """Quality measures of one explanation's map on one item, as a reviewer read them.

    Attributes:
        explanation_id: the checked explanation.
        item_index: the slice, frame or tile the measures were taken on.
        report: ``engine.analysis.quality`` output: deletion and insertion curves, average
            drop and increase in confidence, pointing game and energy inside the image's mask
            (when it has one) and the parameter-randomisation sanity check.
        trustworthy: the sanity check's verdict, kept as a column so studies can filter on it.
    """

    __tablename__ = "map_checks"

    id: Mapped[intpk]
    explanation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("explanations.id", ondelete="CASCADE"), index=True
    )
    item_index: Mapped[int]
    report: Mapped[JsonDict]
    trustworthy: Mapped[bool]
    created_at: Mapped[created_at]

    explanation: Mapped[Explanation] = relationship(back_populates="checks")

    def __repr__(self) -> str:
        return f"MapCheck(id={self.id}, explanation_id={self.explanation_id}, item_index={self.item_index})"
