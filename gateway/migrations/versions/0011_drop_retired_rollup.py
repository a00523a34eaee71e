"""drop the previous rollup (operator_day_scores, operator_day_parameters)

Revision ID: 0011
Revises: 0010

Revision 0010 replaced these tables with the additive rollup (score_buckets and its parameter
and disposition rows) and left them in place for the release before it, which still wrote
them while 0010's release rolled out. No release reads or writes them any more. A downgrade
recreates them empty: the release before 0010 fills them with
`survey-gateway surveys rebuild-scores`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "contacts", "offered", "not_sent", "sent", "started", "completed", "excluded",
    "calls_without_survey", "responses", "overall_1", "overall_2", "overall_3", "overall_4",
    "overall_5",
)  # fmt: skip


def upgrade() -> None:
    op.drop_index("ix_operator_day_parameters_day", table_name="operator_day_parameters")
    op.drop_table("operator_day_parameters")
    op.drop_index("ix_operator_day_scores_day", table_name="operator_day_scores")
    op.drop_table("operator_day_scores")


def downgrade() -> None:
    op.create_table(
        "operator_day_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("office", sa.String(length=100), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS[:8]),
        sa.Column("dispositions", sa.JSON(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS[8:]),
        sa.Column("csi_sum", sa.Float(), nullable=False),
        sa.Column("csi_n", sa.Integer(), nullable=False),
        sa.Column("csi_operator_sum", sa.Float(), nullable=False),
        sa.Column("csi_operator_n", sa.Integer(), nullable=False),
        sa.Column("nps_n", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_day_scores_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_day_scores")),
        sa.UniqueConstraint(
            "operator_id",
            "day",
            "channel",
            "office",
            name=op.f("uq_operator_day_scores_operator_id_day_channel_office"),
        ),
    )
    op.create_index("ix_operator_day_scores_day", "operator_day_scores", ["day"])
    op.create_table(
        "operator_day_parameters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("office", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_day_parameters_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_day_parameters")),
        sa.UniqueConstraint(
            "operator_id",
            "day",
            "channel",
            "office",
            "key",
            name=op.f("uq_operator_day_parameters_operator_id_day_channel_office_key"),
        ),
    )
    op.create_index("ix_operator_day_parameters_day", "operator_day_parameters", ["day"])
