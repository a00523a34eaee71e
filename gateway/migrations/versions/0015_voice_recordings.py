"""voice comments recorded by the SIP channel: voice_recordings (WAV in the database)

Revision ID: 0015
Revises: 0014

A new table only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voice_recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("question_key", sa.String(length=50), nullable=False),
        sa.Column("audio", sa.LargeBinary(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["survey_sessions.id"],
            name=op.f("fk_voice_recordings_session_id_survey_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_recordings")),
    )
    op.create_index(
        op.f("ix_voice_recordings_session_id"), "voice_recordings", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_voice_recordings_session_id"), table_name="voice_recordings")
    op.drop_table("voice_recordings")
