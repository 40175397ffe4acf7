"""A study arm may hide the AI's uncertainty: ``study_arms.show_uncertainty`` (default true).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Frozen history like 0001: the column is spelled out here, not imported from ``db.models``.
Arms of existing studies get true: they showed the frozen uncertainty wherever they showed the
AI, and keep doing so.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("study_arms") as batch:
        batch.add_column(sa.Column("show_uncertainty", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("study_arms") as batch:
        batch.drop_column("show_uncertainty")
