"""people and roles: dashboard accounts (password hash, lock-out, teams, operator), operator
keys, dashboard sessions of accounts

Revision ID: 0013
Revises: 0012

New tables and nullable columns only; `dashboard_sessions.api_key_id` becomes nullable (the
previous release always fills it, so it keeps working while both run).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "integration",
                "operator",
                "supervisor",
                "admin",
                name="account_role",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_accounts_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_accounts_username")),
    )
    op.create_table(
        "account_teams",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_teams_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_account_teams_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("account_id", "team_id", name=op.f("pk_account_teams")),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("operator_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_api_keys_operator_id_operators"), "operators", ["operator_id"], ["id"]
        )
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.alter_column("api_key_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_dashboard_sessions_account_id_accounts"),
            "accounts",
            ["account_id"],
            ["id"],
        )
        batch.create_index(batch.f("ix_dashboard_sessions_account_id"), ["account_id"])


def downgrade() -> None:
    # Account sessions cannot be kept by a release that knows only key sessions.
    op.execute("DELETE FROM dashboard_sessions WHERE api_key_id IS NULL")
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.drop_index(batch.f("ix_dashboard_sessions_account_id"))
        batch.drop_constraint(
            batch.f("fk_dashboard_sessions_account_id_accounts"), type_="foreignkey"
        )
        batch.drop_column("account_id")
        batch.alter_column("api_key_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(batch.f("fk_api_keys_operator_id_operators"), type_="foreignkey")
        batch.drop_column("operator_id")
    op.drop_table("account_teams")
    op.drop_table("accounts")
