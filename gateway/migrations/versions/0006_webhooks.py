"""webhooks schema: subscriptions, the outbox of events, deliveries and their tries

Revision ID: 0006
Revises: 0005

New tables only: the previous release neither reads nor writes them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("webhook_subscriptions",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("url", sa.String(length=2000), nullable=False),
    sa.Column("events", sa.JSON(), nullable=False),
    sa.Column("format", sa.String(length=30), nullable=False),
    sa.Column("options", sa.JSON(), nullable=True),
    sa.Column("secret", sa.String(length=100), nullable=False),
    sa.Column("description", sa.String(length=500), nullable=True),
    sa.Column("status", sa.String(length=20), nullable=False),
    sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("paused_reason", sa.String(length=500), nullable=True),
    sa.Column("created_by", sa.String(length=200), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions"))
    )
    op.create_table("webhook_events",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("event_id", sa.String(length=40), nullable=False),
    sa.Column("type", sa.String(length=50), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_webhook_events_customer_id_customers")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    sa.UniqueConstraint("event_id", name=op.f("uq_webhook_events_event_id"))
    )
    op.create_index("ix_webhook_events_created_at", "webhook_events", ["created_at"])
    op.create_index("ix_webhook_events_customer_id", "webhook_events", ["customer_id"])
    op.create_index("ix_webhook_events_type", "webhook_events", ["type"])
    op.create_table("webhook_deliveries",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("event_id", sa.Integer(), nullable=False),
    sa.Column("subscription_id", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(length=20), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(length=500), nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"], name=op.f("fk_webhook_deliveries_event_id_webhook_events"), ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscriptions.id"], name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"), ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    sa.UniqueConstraint("event_id", "subscription_id", name=op.f("uq_webhook_deliveries_event_id_subscription_id"))
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "id"])
    op.create_table("webhook_attempts",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("delivery_id", sa.Integer(), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_ms", sa.Integer(), nullable=True),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("error", sa.String(length=500), nullable=True),
    sa.Column("response_excerpt", sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"), ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts"))
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_delivery_id", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_subscription", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_events_type", table_name="webhook_events")
    op.drop_index("ix_webhook_events_customer_id", table_name="webhook_events")
    op.drop_index("ix_webhook_events_created_at", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("webhook_subscriptions")
