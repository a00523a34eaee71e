"""incidents opened before due times get one; a reopened incident is alerted again

Revision ID: 0014
Revises: 0013

Incidents opened before revision 0012 have no due time, so they were never overdue. Each gets
the due time it would have had: INCIDENT_DUE_HOURS of business time (BUSINESS_HOURS,
BUSINESS_DAYS, HOLIDAYS in REPORT_TIMEZONE, read from the environment as the gateway reads
them) after it opened. Their overdue alerts are not sent: alerts look back one day only.

An alert row now names the opening of the incident it is about (`opening`: 0 the first,
n after the n-th reopening), so a reopened incident that runs late is alerted again, still at
most once per opening. The previous release writes only opening 0, which the new unique key
(incident, kind, opening) keeps apart, so it keeps working while this one rolls out. A
downgrade deletes the alerts of later openings and leaves the backfilled due times.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_incidents = sa.table(
    "incidents",
    sa.column("id", sa.Integer()),
    sa.column("opened_at", sa.DateTime(timezone=True)),
    sa.column("due_at", sa.DateTime(timezone=True)),
)


def _backfill_due_times() -> None:
    # The calendar of the running configuration: the due times the gateway gives new incidents.
    from gateway.config import load_settings

    settings = load_settings()
    calendar, hours = settings.business_calendar, settings.incident_due_hours
    bind = op.get_bind()
    naive = bind.dialect.name == "sqlite"  # SQLite keeps UTC without an offset
    rows = bind.execute(
        sa.select(_incidents.c.id, _incidents.c.opened_at).where(_incidents.c.due_at.is_(None))
    ).all()
    for incident_id, opened_at in rows:
        if isinstance(opened_at, str):
            opened_at = datetime.fromisoformat(opened_at)
        opened = opened_at.replace(tzinfo=UTC) if opened_at.tzinfo is None else opened_at
        due = calendar.add(opened, hours).astimezone(UTC)
        bind.execute(
            sa.update(_incidents)
            .where(_incidents.c.id == incident_id)
            .values(due_at=due.replace(tzinfo=None) if naive else due)
        )


def upgrade() -> None:
    with op.batch_alter_table("incident_alerts") as batch:
        batch.add_column(sa.Column("opening", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint("uq_incident_alerts_incident_id_kind", type_="unique")
        batch.create_unique_constraint(
            "uq_incident_alerts_incident_id_kind_opening", ["incident_id", "kind", "opening"]
        )
    _backfill_due_times()


def downgrade() -> None:
    op.execute("DELETE FROM incident_alerts WHERE opening > 0")
    with op.batch_alter_table("incident_alerts") as batch:
        batch.drop_constraint("uq_incident_alerts_incident_id_kind_opening", type_="unique")
        batch.create_unique_constraint(
            "uq_incident_alerts_incident_id_kind", ["incident_id", "kind"]
        )
        batch.drop_column("opening")
