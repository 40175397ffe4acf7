"""Prediction uncertainty: how much a prediction's answers moved under Monte Carlo dropout or
test-time augmentation, kept with the prediction so a reopened reading or a study shows it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Frozen history like 0001: the column is spelled out here, not imported from ``db.models``.
Existing predictions keep NULL: their uncertainty was not measured (and is shown as such).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("uncertainty", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("uncertainty")
