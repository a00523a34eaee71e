"""web and email surveys: the survey's link token, the customer's email address

Revision ID: 0009
Revises: 0008

Two nullable columns and a unique index: the previous release neither reads nor writes them.
The new survey channels (web, email) are values of an existing string column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_sessions") as batch:
        batch.add_column(sa.Column("link_token", sa.String(length=40), nullable=True))
        batch.create_unique_constraint("uq_survey_sessions_link_token", ["link_token"])
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("email")
    with op.batch_alter_table("survey_sessions") as batch:
        batch.drop_constraint("uq_survey_sessions_link_token", type_="unique")
        batch.drop_column("link_token")
