"""`survey-gateway user ...` and `team ...`: dashboard accounts and the teams they see."""

from __future__ import annotations

import sys

import click

from gateway.models import ApiRole


def _password(given_on_stdin: bool) -> str:
    """A new password: one line of standard input, or typed twice at a hidden prompt."""
    if given_on_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


def register(main: click.Group) -> None:
    """Add the `user` and `team` groups to `main`."""
    from gateway.cli_context import app_session, echo_table

    @main.group()
    def user() -> None:
        """Dashboard accounts of supervisors, operators and admins."""

    @user.command("create")
    @click.argument("username")
    @click.option(
        "--role",
        type=click.Choice(["operator", "supervisor", "admin"]),
        required=True,
        help="operator: their own figures and answers; supervisor: their teams; admin: all",
    )
    @click.option("--team", "teams", multiple=True, help="a team a supervisor sees (repeatable)")
    @click.option("--operator", default=None, help="an operator account's operator (external id)")
    @click.option("--name", default=None, help="the person's name, shown in the dashboard")
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    def user_create(
        username: str,
        role: str,
        teams: tuple[str, ...],
        operator: str | None,
        name: str | None,
        password_stdin: bool,
    ) -> None:
        """Create an account; its teams or operator must exist already."""
        from gateway.accounts import create_account
        from gateway.db import utcnow

        password = _password(password_stdin)
        with app_session() as (_, session):
            try:
                account = create_account(
                    session,
                    username,
                    password,
                    ApiRole(role),
                    now=utcnow(),
                    actor="cli",
                    name=name,
                    teams=list(teams),
                    operator=operator,
                )
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
            created = account.username
        click.echo(f"account {created!r} ({role}) created")

    @user.command("list")
    def user_list() -> None:
        """Every account: username, name, role, teams or operator, state, last sign-in."""
        from gateway.accounts import list_accounts
        from gateway.db import utcnow

        with app_session() as (_, session):
            now = utcnow()
            rows = []
            for account in list_accounts(session):
                if account.disabled_at is not None:
                    state = "disabled"
                elif account.locked_until is not None and account.locked_until > now:
                    state = f"locked until {account.locked_until:%Y-%m-%d %H:%M} UTC"
                else:
                    state = "active"
                sees = ", ".join(t.name for t in account.teams) or (
                    account.operator.external_id if account.operator else "all"
                )
                last = account.last_login_at
                rows.append(
                    (
                        account.username,
                        account.name or "-",
                        account.role.value,
                        sees,
                        state,
                        f"{last:%Y-%m-%d %H:%M}" if last else "-",
                    )
                )
        echo_table(("username", "name", "role", "sees", "state", "last sign-in"), rows)

    @user.command("disable")
    @click.argument("username")
    def user_disable(username: str) -> None:
        """Stop an account signing in; its open sessions end at once."""
        from gateway.accounts import disable_account
        from gateway.db import utcnow

        with app_session() as (_, session):
            try:
                disable_account(session, username, "cli", utcnow())
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(f"account {username!r} disabled")

    @user.command("enable")
    @click.argument("username")
    def user_enable(username: str) -> None:
        """Let a disabled account sign in again."""
        from gateway.accounts import enable_account
        from gateway.db import utcnow

        with app_session() as (_, session):
            try:
                enable_account(session, username, "cli", utcnow())
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(f"account {username!r} enabled")

    @user.command("reset-password")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    def user_reset_password(username: str, password_stdin: bool) -> None:
        """Set a new password; lifts a lock-out and signs out every session of the account."""
        from gateway.accounts import reset_password
        from gateway.db import utcnow

        password = _password(password_stdin)
        with app_session() as (_, session):
            try:
                reset_password(session, username, password, "cli", utcnow())
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(f"password of {username!r} reset; its sessions are signed out")

    @main.group()
    def team() -> None:
        """Teams: the unit a supervisor sees."""

    @team.command("list")
    def team_list() -> None:
        """Every team with its current operators."""
        from sqlalchemy import func, select

        from gateway.models import Operator, Team

        with app_session() as (_, session):
            rows = [
                (name, str(count))
                for name, count in session.execute(
                    select(Team.name, func.count(Operator.id))
                    .outerjoin(Operator, Operator.team_id == Team.id)
                    .group_by(Team.name)
                    .order_by(Team.name)
                )
            ]
        echo_table(("team", "operators"), rows)

    @team.command("create")
    @click.argument("name")
    def team_create(name: str) -> None:
        """Create a team before its first contact (e.g. to give its supervisor an account)."""
        from sqlalchemy import select

        from gateway.models import Team

        name = name.strip()
        if not name or len(name) > 200:
            raise click.ClickException("a team name has 1 to 200 characters")
        with app_session() as (_, session):
            if session.scalar(select(Team.id).where(Team.name == name)) is not None:
                raise click.ClickException(f"a team named {name!r} exists already")
            session.add(Team(name=name))
        click.echo(f"team {name!r} created")
