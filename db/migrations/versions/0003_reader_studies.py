"""Reader studies: the study design (arms, questions, readers, cases with their pseudonyms and
frozen AI output, sessions), assignments, and the readings and answers given in a study.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Frozen history like 0001: every table is spelled out here, not imported from ``db.models``.

The ``studies``, ``assignments`` and ``agreement_results`` tables of 0001 were never written by
any Salience release, so they are replaced rather than altered column by column. A database in
which they hold rows was written by something else: the upgrade refuses it and changes nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.errors import MigrationError

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

REPLACED = ("agreement_results", "assignments", "studies")
NEW_TABLES = (
    "study_answers",
    "study_readings",
    "assignments",
    "study_sessions",
    "study_case_maps",
    "study_cases",
    "study_readers",
    "study_questions",
    "study_arms",
    "agreement_results",
    "studies",
)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _stamp(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False
    )


def _fk(table: str, column: str, referred: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete=ondelete
    )


def _refuse_written_tables() -> None:
    bind = op.get_bind()
    for table in REPLACED:
        count = bind.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()
        if count:
            raise MigrationError(
                f"table {table} holds {count} rows that no Salience release wrote; "
                "revision 0003 replaces it and will not drop them (export and empty it first)"
            )


def _create_studies() -> None:
    op.create_table(
        "studies",
        _id(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("design", sa.String(32), nullable=False),
        sa.Column("washout_days", sa.Integer(), nullable=False),
        sa.Column("repeat_fraction", sa.Double(), nullable=False),
        sa.Column("order_seed", sa.BigInteger(), nullable=False),
        sa.Column("allow_revisions", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        _created_at(),
        sa.Column("starts_on", sa.Date(), nullable=True),
        _stamp("opened_at"),
        _stamp("closed_at"),
        sa.CheckConstraint("status IN ('draft', 'open', 'closed')", name="ck_studies_status"),
        sa.CheckConstraint(
            "design IN ('fully_crossed', 'counterbalanced', 'crossover', 'sequential')", name="ck_studies_design"
        ),
        sa.CheckConstraint("washout_days >= 0", name="ck_studies_washout_days_not_negative"),
        sa.CheckConstraint(
            "repeat_fraction >= 0 AND repeat_fraction <= 1", name="ck_studies_repeat_fraction_0_to_1"
        ),
        _fk("studies", "created_by_id", "readers", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )

    op.create_table(
        "study_arms",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("shows_prediction", sa.Boolean(), nullable=False),
        sa.Column("cam_method", sa.String(64), nullable=True),
        sa.CheckConstraint("cam_method IS NULL OR shows_prediction", name="ck_study_arms_map_needs_prediction"),
        _fk("study_arms", "study_id", "studies", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_study_arms"),
        sa.UniqueConstraint("study_id", "name", name="uq_study_arms_study_id_name"),
        sa.UniqueConstraint("study_id", "position", name="uq_study_arms_study_id_position"),
    )

    kinds = (
        "single_choice", "multiple_choice", "confidence_1_5", "probability_0_100",
        "region", "helpfulness", "pairwise_explanation", "free_text",
    )
    op.create_table(
        "study_questions",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=True),
        sa.Column("phases", sa.JSON(), nullable=True),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in kinds)})", name="ck_study_questions_kind"),
        _fk("study_questions", "study_id", "studies", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_study_questions"),
        sa.UniqueConstraint("study_id", "key", name="uq_study_questions_study_id_key"),
        sa.UniqueConstraint("study_id", "position", name="uq_study_questions_study_id_position"),
    )

    op.create_table(
        "study_readers",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("design_index", sa.Integer(), nullable=False),
        _created_at("added_at"),
        _fk("study_readers", "study_id", "studies", "CASCADE"),
        _fk("study_readers", "reader_id", "readers", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_study_readers"),
        sa.UniqueConstraint("study_id", "reader_id", name="uq_study_readers_study_id_reader_id"),
        sa.UniqueConstraint("study_id", "design_index", name="uq_study_readers_study_id_design_index"),
    )
    op.create_index("ix_study_readers_reader_id", "study_readers", ["reader_id"])


def _create_cases_and_sessions() -> None:
    op.create_table(
        "study_cases",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(32), nullable=False),
        sa.Column("design_index", sa.Integer(), nullable=False),
        sa.Column("ground_truth", sa.String(128), nullable=True),
        sa.Column("repeat_read", sa.Boolean(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=True),
        sa.Column("bundle_name", sa.String(128), nullable=True),
        sa.Column("bundle_version", sa.String(64), nullable=True),
        sa.Column("bundle_sha256", sa.String(64), nullable=True),
        _created_at("added_at"),
        _fk("study_cases", "study_id", "studies", "CASCADE"),
        _fk("study_cases", "case_id", "cases", "RESTRICT"),
        _fk("study_cases", "prediction_id", "predictions", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_study_cases"),
        sa.UniqueConstraint("study_id", "case_id", name="uq_study_cases_study_id_case_id"),
        sa.UniqueConstraint("study_id", "design_index", name="uq_study_cases_study_id_design_index"),
        sa.UniqueConstraint("pseudonym", name="uq_study_cases_pseudonym"),
    )
    op.create_index("ix_study_cases_case_id", "study_cases", ["case_id"])
    op.create_index("ix_study_cases_prediction_id", "study_cases", ["prediction_id"])

    op.create_table(
        "study_case_maps",
        _id(),
        sa.Column("study_case_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("explanation_id", sa.Integer(), nullable=False),
        _fk("study_case_maps", "study_case_id", "study_cases", "CASCADE"),
        _fk("study_case_maps", "explanation_id", "explanations", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_study_case_maps"),
        sa.UniqueConstraint("study_case_id", "method", name="uq_study_case_maps_study_case_id_method"),
    )
    op.create_index("ix_study_case_maps_explanation_id", "study_case_maps", ["explanation_id"])

    op.create_table(
        "study_sessions",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.Column("opens_on", sa.Date(), nullable=True),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.CheckConstraint("number >= 1", name="ck_study_sessions_number_positive"),
        sa.CheckConstraint("offset_days >= 0", name="ck_study_sessions_offset_days_not_negative"),
        _fk("study_sessions", "study_id", "studies", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_study_sessions"),
        sa.UniqueConstraint("study_id", "number", name="uq_study_sessions_study_id_number"),
    )


def _create_reading_tables() -> None:
    op.create_table(
        "assignments",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("study_case_id", sa.Integer(), nullable=False),
        sa.Column("arm_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("phases", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.CheckConstraint("position >= 0", name="ck_assignments_position_not_negative"),
        sa.CheckConstraint("phases IN (1, 2)", name="ck_assignments_phases_1_or_2"),
        _fk("assignments", "study_id", "studies", "CASCADE"),
        _fk("assignments", "reader_id", "readers", "RESTRICT"),
        _fk("assignments", "study_case_id", "study_cases", "CASCADE"),
        _fk("assignments", "arm_id", "study_arms", "CASCADE"),
        _fk("assignments", "session_id", "study_sessions", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_assignments"),
        sa.UniqueConstraint(
            "reader_id", "study_case_id", "arm_id", "session_id",
            name="uq_assignments_reader_id_study_case_id_arm_id_session_id",
        ),
        sa.UniqueConstraint(
            "session_id", "reader_id", "position", name="uq_assignments_session_id_reader_id_position"
        ),
        sa.UniqueConstraint("token", name="uq_assignments_token"),
    )
    for column in ("study_id", "reader_id", "study_case_id", "arm_id", "session_id"):
        op.create_index(f"ix_assignments_{column}", "assignments", [column])

    op.create_table(
        "study_readings",
        _id(),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _stamp("opened_at", nullable=False),
        _stamp("closed_at"),
        _stamp("first_answer_at"),
        _stamp("submitted_at"),
        sa.Column("seconds_open", sa.Double(), nullable=False),
        _stamp("open_since"),
        sa.Column("shown_prediction_id", sa.Integer(), nullable=True),
        sa.Column("shown_explanation_ids", sa.JSON(), nullable=False),
        sa.Column("pairwise_order", sa.JSON(), nullable=False),
        sa.CheckConstraint("phase IN (1, 2)", name="ck_study_readings_phase_1_or_2"),
        sa.CheckConstraint("version >= 1", name="ck_study_readings_version_positive"),
        sa.CheckConstraint("seconds_open >= 0", name="ck_study_readings_seconds_open_not_negative"),
        _fk("study_readings", "assignment_id", "assignments", "RESTRICT"),
        _fk("study_readings", "shown_prediction_id", "predictions", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_study_readings"),
        sa.UniqueConstraint(
            "assignment_id", "phase", "version", name="uq_study_readings_assignment_id_phase_version"
        ),
    )
    op.create_index("ix_study_readings_assignment_id", "study_readings", ["assignment_id"])
    op.create_index("ix_study_readings_shown_prediction_id", "study_readings", ["shown_prediction_id"])

    op.create_table(
        "study_answers",
        _id(),
        sa.Column("reading_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        _stamp("first_given_at", nullable=False),
        _stamp("updated_at", nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.CheckConstraint("changes >= 0", name="ck_study_answers_changes_not_negative"),
        _fk("study_answers", "reading_id", "study_readings", "CASCADE"),
        _fk("study_answers", "question_id", "study_questions", "RESTRICT"),
        sa.PrimaryKeyConstraint("id", name="pk_study_answers"),
        sa.UniqueConstraint("reading_id", "question_id", name="uq_study_answers_reading_id_question_id"),
    )
    op.create_index("ix_study_answers_reading_id", "study_answers", ["reading_id"])
    op.create_index("ix_study_answers_question_id", "study_answers", ["question_id"])


def _create_agreement_results() -> None:
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


def _create_0001_study_tables() -> None:
    """The tables as 0001 made them, for ``downgrade``."""
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
        sa.UniqueConstraint("study_id", "reader_id", "position", name="uq_assignments_study_id_reader_id_position"),
    )
    op.create_index("ix_assignments_case_id", "assignments", ["case_id"])
    op.create_index("ix_assignments_reader_id", "assignments", ["reader_id"])
    _create_agreement_results()


def upgrade() -> None:
    _refuse_written_tables()
    for table in REPLACED:
        op.drop_table(table)
    _create_studies()
    _create_cases_and_sessions()
    _create_reading_tables()
    _create_agreement_results()


def downgrade() -> None:
    """Back to 0002: drops every study, assignment and study answer (developers only)."""
    for table in NEW_TABLES:
        op.drop_table(table)
    _create_0001_study_tables()
