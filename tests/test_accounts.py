"""Dashboard accounts: hashed passwords, lock-out kept in the database, no phantom teams, and
the `user` and `team` commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.access import UnknownName
from gateway.accounts import AccountError, SignInResult, create_account, reset_password, sign_in
from gateway.cli import main
from gateway.db import utcnow
from gateway.models import Account, ApiRole, AuditEvent, Operator
from tests.conftest import ensure_team

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(app):
    return app.config["SETTINGS"]


def supervisor(session, username="anna", teams=("North",)):
    for team in teams:
        ensure_team(session, team)
    return create_account(
        session,
        username,
        PASSWORD,
        ApiRole.SUPERVISOR,
        now=utcnow(),
        actor="test",
        teams=list(teams),
    )


def test_the_password_is_stored_as_an_argon2id_hash_and_checked(session, settings):
    account = supervisor(session)
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    now = utcnow()
    assert sign_in(session, "ANNA", PASSWORD, settings, now).result is SignInResult.SIGNED_IN
    assert sign_in(session, "anna", "wrong password", settings, now).result is SignInResult.WRONG
    assert sign_in(session, "nobody", PASSWORD, settings, now).result is SignInResult.WRONG


def test_repeated_wrong_passwords_lock_the_account_until_a_stated_time(session, settings):
    supervisor(session)
    now = utcnow()
    for _ in range(settings.login_max_failures - 1):
        assert sign_in(session, "anna", "guess " * 3, settings, now).result is SignInResult.WRONG
    locked = sign_in(session, "anna", "guess " * 3, settings, now)
    assert locked.result is SignInResult.LOCKED
    assert locked.locked_until == now + timedelta(minutes=settings.login_lockout_minutes)
    # Even the right password is refused while the lock holds, on any worker: it is the row.
    session.commit()
    session.expire_all()
    during = sign_in(session, "anna", PASSWORD, settings, now + timedelta(minutes=1))
    assert during.result is SignInResult.LOCKED
    after = sign_in(session, "anna", PASSWORD, settings, locked.locked_until + timedelta(seconds=1))
    assert after.result is SignInResult.SIGNED_IN
    actions = session.scalars(select(AuditEvent.action)).all()
    assert "account.locked" in actions


def test_a_password_reset_lifts_the_lock(session, settings):
    supervisor(session)
    now = utcnow()
    for _ in range(settings.login_max_failures):
        sign_in(session, "anna", "guess " * 3, settings, now)
    reset_password(session, "anna", "a brand new passphrase", "cli", now)
    result = sign_in(session, "anna", "a brand new passphrase", settings, now)
    assert result.result is SignInResult.SIGNED_IN


def test_accounts_refuse_unknown_teams_operators_and_weak_passwords(session):
    ensure_team(session, "North")
    with pytest.raises(UnknownName, match="no team named 'Nrth'; known teams: North"):
        create_account(
            session, "anna", PASSWORD, ApiRole.SUPERVISOR, now=utcnow(), actor="t", teams=["Nrth"]
        )
    with pytest.raises(UnknownName, match="no operator with external id 'op-9'"):
        create_account(
            session, "olga", PASSWORD, ApiRole.OPERATOR, now=utcnow(), actor="t", operator="op-9"
        )
    with pytest.raises(AccountError, match="at least 10 characters"):
        create_account(session, "boss", "short", ApiRole.ADMIN, now=utcnow(), actor="t")
    with pytest.raises(AccountError, match="needs --team"):
        create_account(session, "boss", PASSWORD, ApiRole.SUPERVISOR, now=utcnow(), actor="t")
    assert session.scalars(select(Account)).all() == []


@pytest.fixture
def cli_env(live_app, database_url, tmp_path):
    return {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path / "cli")}


def test_user_and_team_commands(cli_env, live_app):
    runner = CliRunner()
    refused = runner.invoke(
        main,
        ["user", "create", "anna", "--role", "supervisor", "--team", "North", "--password-stdin"],
        input=PASSWORD + "\n",
        env=cli_env,
    )
    assert refused.exit_code != 0 and "no team named 'North'" in refused.output
    key = runner.invoke(
        main,
        ["apikey", "create", "--name", "n", "--role", "supervisor", "--team", "North"],
        env=cli_env,
    )
    assert key.exit_code != 0 and "no team named 'North'" in key.output

    assert runner.invoke(main, ["team", "create", "North"], env=cli_env).exit_code == 0
    made = runner.invoke(
        main,
        ["user", "create", "anna", "--role", "supervisor", "--team", "North", "--password-stdin"],
        input=PASSWORD + "\n",
        env=cli_env,
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(main, ["user", "list"], env=cli_env)
    line = next(r for r in listed.stdout.splitlines() if r.startswith("anna"))
    assert "supervisor" in line and "North" in line and "active" in line
    assert PASSWORD not in listed.stdout

    assert runner.invoke(main, ["user", "disable", "anna"], env=cli_env).exit_code == 0
    listed = runner.invoke(main, ["user", "list"], env=cli_env)
    assert "disabled" in next(r for r in listed.stdout.splitlines() if r.startswith("anna"))
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        settings = live_app.config["SETTINGS"]
        refused_sign_in = sign_in(session, "anna", PASSWORD, settings, utcnow())
        assert refused_sign_in.result is SignInResult.WRONG
        session.rollback()
    assert runner.invoke(main, ["user", "enable", "anna"], env=cli_env).exit_code == 0
    reset = runner.invoke(
        main,
        ["user", "reset-password", "anna", "--password-stdin"],
        input="another long passphrase\n",
        env=cli_env,
    )
    assert reset.exit_code == 0, reset.output
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        settings = live_app.config["SETTINGS"]
        result = sign_in(session, "anna", "another long passphrase", settings, utcnow())
        assert result.result is SignInResult.SIGNED_IN
        session.add(Operator(external_id="op-1"))
        session.commit()
    operator_key = runner.invoke(
        main,
        ["apikey", "create", "--name", "o", "--role", "operator", "--operator", "op-1"],
        env=cli_env,
    )
    assert operator_key.exit_code == 0, operator_key.output
    listed_keys = runner.invoke(main, ["apikey", "list"], env=cli_env)
    assert "op-1" in next(r for r in listed_keys.stdout.splitlines() if r.startswith("o "))
