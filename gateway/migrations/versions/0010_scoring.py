"""scoring: frozen survey scores, the team of each contact, an additive rollup in local days

Revision ID: 0010
Revises: 0009

Adds the score frozen on each survey when it ends, the team an interaction's operator was in
at the time (filled here from the operators' current teams), and the new rollup tables kept
by additive increments. The new rollup starts empty: the first start-up fills it when that is
quick, else it asks for `survey-gateway surveys rebuild-scores --all`, which also freezes the
scores of surveys that ended before this upgrade.

The previous rollup (operator_day_scores, operator_day_parameters) is left in place, unread,
because the previous release still writes it while this one rolls out; a later revision
drops it.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "contacts", "offered", "not_sent", "sent", "started", "completed", "excluded",
    "calls_without_survey", "responses", "overall_1", "overall_2", "overall_3", "overall_4",
    "overall_5",
)
_KEY = ("operator_id", "team_id", "day", "channel", "office")
_SCORE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("scored_at", sa.DateTime(timezone=True)),
    ("score_spec", sa.JSON()),
    ("score_answered", sa.Boolean()),
    ("score_overall", sa.Integer()),
    ("score_parameters", sa.JSON()),
    ("score_csi", sa.Float()),
    ("score_csi_operator", sa.Float()),
    ("score_nps", sa.Integer()),
    ("score_nps_class", sa.String(length=10)),
)


def _key_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("office", sa.String(length=100), nullable=False),
    ]


def _bucket_table(name: str, *columns: sa.Column, extra_key: tuple[str, ...] = ()) -> None:
    op.create_table(
        name,
        *_key_columns(),
        *columns,
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f(f"fk_{name}_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint(*_KEY, *extra_key, name=f"uq_{name}_key"),
    )
    op.create_index(f"ix_{name}_day", name, ["day"])


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("team_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_interactions_team_id_teams"), "teams", ["team_id"], ["id"]
        )
    op.execute(
        "UPDATE interactions SET team_id = "
        "(SELECT operators.team_id FROM operators WHERE operators.id = interactions.operator_id) "
        "WHERE operator_id IS NOT NULL"
    )
    with op.batch_alter_table("survey_sessions") as batch:
        for name, type_ in _SCORE_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))

    _bucket_table(
        "score_buckets",
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("csi_sum", sa.Float(), nullable=False),
        sa.Column("csi_n", sa.Integer(), nullable=False),
        sa.Column("csi_operator_sum", sa.Float(), nullable=False),
        sa.Column("csi_operator_n", sa.Integer(), nullable=False),
        sa.Column("nps_n", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
    )
    _bucket_table(
        "score_bucket_parameters",
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        extra_key=("key",),
    )
    _bucket_table(
        "score_bucket_dispositions",
        sa.Column("disposition", sa.String(length=50), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        extra_key=("disposition",),
    )
    op.create_table(
        "score_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_rollup_state")),
    )


def downgrade() -> None:
    op.drop_table("score_rollup_state")
    for name in ("score_bucket_dispositions", "score_bucket_parameters", "score_buckets"):
        op.drop_index(f"ix_{name}_day", table_name=name)
        op.drop_table(name)
    with op.batch_alter_table("survey_sessions") as batch:
        for name, _type in reversed(_SCORE_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("interactions") as batch:
        batch.drop_constraint(op.f("fk_interactions_team_id_teams"), type_="foreignkey")
        batch.drop_column("team_id")
