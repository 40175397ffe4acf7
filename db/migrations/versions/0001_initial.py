"""Initial schema: cases, model runs, predictions, explanations, readers, readings, annotations,
the append-only audit log, and the reader-study design tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

This file is frozen history: it never imports ``db.models`` (which keep changing) and spells
every table out. ``audit_events`` is made append-only by triggers that abort UPDATE and DELETE
(and TRUNCATE on PostgreSQL), raising an integrity error on both databases; a later revision
that rebuilds that table in batch mode must create them again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.errors import MigrationError

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AUDIT_APPEND_ONLY_MESSAGE = "audit_events is append-only"

SQLITE_AUDIT_TRIGGERS = (
    f"""CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{AUDIT_APPEND_ONLY_MESSAGE}'); END""",
    f"""CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{AUDIT_APPEND_ONLY_MESSAGE}'); END""",
)
POSTGRESQL_AUDIT_TRIGGERS = (
    f"""CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '{AUDIT_APPEND_ONLY_MESSAGE}' USING ERRCODE = 'restrict_violation'; END $$""",
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False
    )


def _fk(table: str, column: str, referred: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete=ondelete
    )


def _create_core_tables() -> None:
    op.create_table(
        "cases",
        _id(),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("header", sa.JSON(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("content_hash", name="uq_cases_content_hash"),
    )
    op.create_index("ix_cases_task", "cases", ["task"])

    op.create_table(
        "model_runs",
        _id(),
        sa.Column("bundle_name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("device", sa.String(32), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_model_runs"),
        sa.UniqueConstraint(
            "bundle_name",
            "version",
            "weights_sha256",
            "device",
            name="uq_model_runs_bundle_name_version_weights_sha256_device",
        ),
    )

    op.create_table(
        "readers",
        _id(),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=True),
        _created_at(),
        sa.CheckConstraint("role IN ('reader', 'coordinator', 'admin')", name="ck_readers_role"),
        sa.PrimaryKeyConstraint("id", name="pk_readers"),
        sa.UniqueConstraint("username", name="uq_readers_username"),
    )

    op.create_table(
        "predictions",
        _id(),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("model_run_id", sa.Integer(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("item_axis", sa.String(16), nullable=False),
        sa.Column("calibrated", sa.Boolean(), nullable=False),
        sa.Column("predicted_class", sa.String(128), nullable=False),
        _created_at(),
        _fk("predictions", "case_id", "cases", "CASCADE"),
        _fk("predictions", "model_run_id", "model_runs", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_case_id", "predictions", ["case_id"])
    op.create_index("ix_predictions_model_run_id", "predictions", ["model_run_id"])

    op.create_table(
        "explanations",
        _id(),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("target_layer", sa.String(256), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("map_path", sa.String(512), nullable=False),
        sa.Column("map_sha256", sa.String(64), nullable=False),
        sa.Column("map_stats", sa.JSON(), nullable=False),
        _created_at(),
        _fk("explanations", "prediction_id", "predictions", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_explanations"),
    )
    op.create_index("ix_explanations_prediction_id", "explanations", ["prediction_id"])


def _create_reading_tables() -> None:
    op.create_table(
        "readings",
        _id(),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        sa.Column("diagnosis", sa.String(128), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("seconds_on_case", sa.Double(), nullable=False),
        sa.Column("first_answer_locked_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint("confidence BETWEEN 1 AND 5", name="ck_readings_confidence_1_to_5"),
        sa.CheckConstraint("seconds_on_case >= 0", name="ck_readings_seconds_not_negative"),
        _fk("readings", "reader_id", "readers", "RESTRICT"),
        _fk("readings", "case_id", "cases", "RESTRICT"),
        _fk("readings", "prediction_id", "predictions", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_readings"),
    )
    op.create_index("ix_readings_reader_id_case_id", "readings", ["reader_id", "case_id"])
    op.create_index("ix_readings_case_id", "readings", ["case_id"])
    op.create_index("ix_readings_prediction_id", "readings", ["prediction_id"])

    op.create_table(
        "annotations",
        _id(),
        sa.Column("reading_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("slice_index", sa.Integer(), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("coordinate_space", sa.String(64), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.CheckConstraint("kind IN ('point', 'box', 'polygon')", name="ck_annotations_kind"),
        sa.CheckConstraint("slice_index >= 0", name="ck_annotations_slice_index_not_negative"),
        _fk("annotations", "reading_id", "readings", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_annotations"),
    )
    op.create_index("ix_annotations_reading_id", "annotations", ["reading_id"])


def _create_audit_table() -> None:
    op.create_table(
        "audit_events",
        _id(),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        _created_at("at"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_entity_entity_id", "audit_events", ["entity", "entity_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        triggers = SQLITE_AUDIT_TRIGGERS
    elif dialect == "postgresql":
        triggers = POSTGRESQL_AUDIT_TRIGGERS
    else:
        # The audit log's append-only guarantee lives in triggers; without them, refuse the database.
        raise MigrationError(f"Salience supports SQLite and PostgreSQL, not {dialect}: the audit log could not be made append-only")
    for statement in triggers:
        op.execute(statement)


def _create_study_tables() -> None:
    op.create_table(
        "studies",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("blinding", sa.String(64), nullable=False),
        sa.Column("order_seed", sa.Integer(), nullable=False),
        sa.Column("washout_days", sa.Integer(), nullable=False),
        _created_at(),
        sa.CheckConstraint("washout_days >= 0", name="ck_studies_washout_days_not_negative"),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )

    op.create_table(
        "assignments",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("position >= 0", name="ck_assignments_position_not_negative"),
        _fk("assignments", "study_id", "studies", "CASCADE"),
        _fk("assignments", "reader_id", "readers", "RESTRICT"),
        _fk("assignments", "case_id", "cases", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_assignments"),
        sa.UniqueConstraint(
            "study_id", "reader_id", "case_id", "arm", name="uq_assignments_study_id_reader_id_case_id_arm"
        ),
        sa.UniqueConstraint(
            "study_id", "reader_id", "position", name="uq_assignments_study_id_reader_id_position"
        ),
    )
    op.create_index("ix_assignments_case_id", "assignments", ["case_id"])
    op.create_index("ix_assignments_reader_id", "assignments", ["reader_id"])

    op.create_table(
        "agreement_results",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("arm", sa.String(64), nullable=True),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("ci_low", sa.Double(), nullable=True),
        sa.Column("ci_high", sa.Double(), nullable=True),
        sa.Column("ci_level", sa.Double(), nullable=True),
        _created_at(),
        _fk("agreement_results", "study_id", "studies", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_agreement_results"),
    )
    op.create_index("ix_agreement_results_study_id", "agreement_results", ["study_id"])


def upgrade() -> None:
    _create_core_tables()
    _create_reading_tables()
    _create_audit_table()
    _create_study_tables()


def downgrade() -> None:
    """Drop everything: only for developers; it deletes every reading."""
    for table in (
        "agreement_results",
        "assignments",
        "studies",
        "annotations",
        "readings",
        "explanations",
        "predictions",
        "readers",
        "model_runs",
        "cases",
        "audit_events",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_events_append_only()")
