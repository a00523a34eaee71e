"""incident cases and re-surveys: due times, causes, archive, alerts; follow-up surveys

Revision ID: 0012
Revises: 0011

Incidents get a due time, the time of their first action, a cause, an archive time and a
reopen count; `closed` becomes `resolved` (the API still accepts `?status=closed`). The
first action of an incident already handled is taken from its audit events. Incidents
opened before this revision have no due time, so they are never overdue and get no alert.

A new table keeps the alerts sent about each incident (one per kind), so none goes twice.

A contact may now have follow-up surveys (a re-survey after a fix) beside its original one:
`survey_sessions.follow_up_of_id`, and the uniqueness of `interaction_id` holds for original
surveys only (a partial unique index). The previous release never writes a follow-up, so it
keeps working while this one rolls out. A downgrade deletes the follow-ups.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORIGINAL = sa.text("follow_up_of_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("first_action_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cause", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_index("ix_incidents_due_at", ["due_at"], unique=False)
    op.execute("UPDATE incidents SET status = 'resolved' WHERE status = 'closed'")
    op.execute(
        "UPDATE incidents SET first_action_at = (SELECT MIN(a.at) FROM audit_events a "
        "WHERE a.subject_type = 'incident' AND a.subject_id = CAST(incidents.id AS VARCHAR(100)))"
    )
    op.create_table(
        "incident_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("recipients", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_alerts_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incident_alerts"),
        sa.UniqueConstraint("incident_id", "kind", name="uq_incident_alerts_incident_id_kind"),
    )
    with op.batch_alter_table("survey_sessions") as batch:
        batch.add_column(sa.Column("follow_up_of_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("requested_by", sa.String(length=200), nullable=True))
        batch.create_foreign_key(
            "fk_survey_sessions_follow_up_of_id_survey_sessions",
            "survey_sessions",
            ["follow_up_of_id"],
            ["id"],
        )
        batch.drop_constraint("uq_survey_sessions_interaction_id", type_="unique")
        batch.create_index("ix_survey_sessions_interaction_id", ["interaction_id"])
        batch.create_index("ix_survey_sessions_follow_up_of_id", ["follow_up_of_id"])
    op.create_index(
        "uq_survey_sessions_original",
        "survey_sessions",
        ["interaction_id"],
        unique=True,
        postgresql_where=_ORIGINAL,
        sqlite_where=_ORIGINAL,
    )


def downgrade() -> None:
    follow_ups = "SELECT id FROM survey_sessions WHERE follow_up_of_id IS NOT NULL"
    op.execute(f"UPDATE messages SET session_id = NULL WHERE session_id IN ({follow_ups})")
    for table in ("answers", "survey_attempts"):
        op.execute(f"DELETE FROM {table} WHERE session_id IN ({follow_ups})")
    op.execute(
        "DELETE FROM incident_alerts WHERE incident_id IN "
        f"(SELECT id FROM incidents WHERE session_id IN ({follow_ups}))"
    )
    op.execute(f"DELETE FROM incidents WHERE session_id IN ({follow_ups})")
    op.execute("DELETE FROM survey_sessions WHERE follow_up_of_id IS NOT NULL")
    op.drop_index("uq_survey_sessions_original", table_name="survey_sessions")
    with op.batch_alter_table("survey_sessions") as batch:
        batch.drop_index("ix_survey_sessions_follow_up_of_id")
        batch.drop_index("ix_survey_sessions_interaction_id")
        batch.create_unique_constraint("uq_survey_sessions_interaction_id", ["interaction_id"])
        batch.drop_constraint(
            "fk_survey_sessions_follow_up_of_id_survey_sessions", type_="foreignkey"
        )
        batch.drop_column("requested_by")
        batch.drop_column("follow_up_of_id")
    op.drop_table("incident_alerts")
    op.execute("UPDATE incidents SET status = 'closed' WHERE status IN ('resolved', 'archived')")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index("ix_incidents_due_at")
        batch.drop_column("reopened_count")
        batch.drop_column("archived_at")
        batch.drop_column("cause")
        batch.drop_column("first_action_at")
        batch.drop_column("due_at")
