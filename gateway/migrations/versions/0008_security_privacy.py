"""security and personal data: key expiry and use, dashboard sessions, failed sign-ins,
consent ledger, erasure and retention marks, recordings to delete at the provider

Revision ID: 0008
Revises: 0007

New nullable columns and new tables only: the previous release neither reads nor writes them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_dashboard_sessions_api_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_dashboard_sessions_api_key_id"), "dashboard_sessions", ["api_key_id"]
    )
    op.create_table(
        "auth_failures",
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject", name=op.f("pk_auth_failures")),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_consent_events_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index(op.f("ix_consent_events_customer_id"), "consent_events", ["customer_id"])
    op.create_table(
        "recording_deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_sid", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_deletions")),
        sa.UniqueConstraint("recording_sid", name=op.f("uq_recording_deletions_recording_sid")),
    )


def downgrade() -> None:
    op.drop_table("recording_deletions")
    op.drop_index(op.f("ix_consent_events_customer_id"), table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_table("auth_failures")
    op.drop_index(op.f("ix_dashboard_sessions_api_key_id"), table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("anonymized_at")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("erased_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
