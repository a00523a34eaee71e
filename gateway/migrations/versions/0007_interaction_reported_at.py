"""interactions: when the integration API reported the contact

Revision ID: 0007
Revises: 0006

NULL for contacts only the IVR hand-over has seen so far. A nullable column with no default:
the previous release keeps writing interactions without it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interactions", sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("reported_at")
