"""Map checks: the quality measures a reviewer took of an explanation's map on one item.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Frozen history like 0001: the table is spelled out here, not imported from ``db.models``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "map_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("explanation_id", sa.Integer(), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("trustworthy", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["explanation_id"],
            ["explanations.id"],
            name="fk_map_checks_explanation_id_explanations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_map_checks"),
    )
    op.create_index("ix_map_checks_explanation_id", "map_checks", ["explanation_id"])


def downgrade() -> None:
    op.drop_index("ix_map_checks_explanation_id", table_name="map_checks")
    op.drop_table("map_checks")
