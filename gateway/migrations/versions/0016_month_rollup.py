"""the reports' rollup per month beside the one per day, filled from the days

Revision ID: 0016
Revises: 0015

score_months, score_month_parameters and score_month_dispositions hold the sums of the day
buckets of each local month (`day` is the month's first day), kept by the same increments as
the days from this release on. They are filled here from the day buckets. The previous
release does not keep them: if it writes while this one rolls out, run
`survey-gateway surveys rebuild-scores` over those days afterwards (`verify-scores` shows it).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "contacts", "offered", "not_sent", "sent", "started", "completed", "excluded",
    "calls_without_survey", "responses", "overall_1", "overall_2", "overall_3", "overall_4",
    "overall_5",
)
_SUMS = (
    ("csi_sum", sa.Float()),
    ("csi_n", sa.Integer()),
    ("csi_operator_sum", sa.Float()),
    ("csi_operator_n", sa.Integer()),
    ("nps_n", sa.Integer()),
    ("promoters", sa.Integer()),
    ("detractors", sa.Integer()),
)
_KEY = ("operator_id", "team_id", "day", "channel", "office")
# Each month table, the day table it sums, its own columns, the extra key and the summed ones.
_TABLES: tuple[tuple[str, str, list[sa.Column[Any]], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "score_months",
        "score_buckets",
        [
            *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
            *(sa.Column(name, type_, nullable=False) for name, type_ in _SUMS),
        ],
        (),
        (*_COUNTS, *(name for name, _type in _SUMS)),
    ),
    (
        "score_month_parameters",
        "score_bucket_parameters",
        [
            sa.Column("key", sa.String(length=50), nullable=False),
            sa.Column("total", sa.Float(), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
        ],
        ("key",),
        ("total", "n"),
    ),
    (
        "score_month_dispositions",
        "score_bucket_dispositions",
        [
            sa.Column("disposition", sa.String(length=50), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
        ],
        ("disposition",),
        ("n",),
    ),
)


def upgrade() -> None:
    month = (
        "CAST(date_trunc('month', day) AS date)"
        if op.get_bind().dialect.name == "postgresql"
        else "date(day, 'start of month')"
    )
    for name, days, columns, extra_key, summed in _TABLES:
        op.create_table(
            name,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("operator_id", sa.Integer(), nullable=False),
            sa.Column("team_id", sa.Integer(), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("channel", sa.String(length=20), nullable=False),
            sa.Column("office", sa.String(length=100), nullable=False),
            *columns,
            sa.ForeignKeyConstraint(
                ["operator_id"], ["operators.id"], name=op.f(f"fk_{name}_operator_id_operators")
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
            sa.UniqueConstraint(*_KEY, *extra_key, name=f"uq_{name}_key"),
        )
        op.create_index(f"ix_{name}_day", name, ["day"])
        group = ["operator_id", "team_id", month, "channel", "office", *extra_key]
        op.execute(
            f"INSERT INTO {name} ({', '.join((*_KEY, *extra_key, *summed))}) "
            f"SELECT {', '.join(group)}, {', '.join(f'sum({c})' for c in summed)} "
            f"FROM {days} GROUP BY {', '.join(group)}"
        )


def downgrade() -> None:
    for name, *_rest in reversed(_TABLES):
        op.drop_index(f"ix_{name}_day", table_name=name)
        op.drop_table(name)
