"""API keys (list, revoke, expiry, last use), dashboard sessions ended server-side, CSRF on
the sign-in form, and failed authentication slowed down per client and per key prefix."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.accounts import disable_account, enable_account, reset_password
from gateway.apikeys import create_api_key
from gateway.cli import main
from gateway.db import utcnow
from gateway.models import ApiKey, ApiRole, AuditEvent
from gateway.throttle import AUTH_MAX_FAILURES
from tests.conftest import ACCOUNT_PASSWORD, PUBLIC_BASE_URL, make_test_app

INTERACTIONS = "/api/v1/interactions?page=1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


def sign_in(client, username: str, password: str = ACCOUNT_PASSWORD):
    token = csrf(client.get("/dashboard/login").get_data(as_text=True))
    return client.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf_token": token},
    )


def test_an_expired_key_is_refused_and_a_live_one_notes_its_last_use(client, session):
    now = utcnow()
    _, expired = create_api_key(
        session, "old", ApiRole.INTEGRATION, None, now - timedelta(days=2), now - timedelta(days=1)
    )
    row, live = create_api_key(
        session, "crm", ApiRole.INTEGRATION, None, now, now + timedelta(days=30)
    )
    session.commit()
    assert client.get(INTERACTIONS, headers=bearer(expired)).status_code == 401
    assert client.get(INTERACTIONS, headers=bearer(live)).status_code == 200
    used = session.scalar(
        select(ApiKey.last_used_at)
        .where(ApiKey.id == row.id)
        .execution_options(populate_existing=True)
    )
    assert used is not None and used >= now


def test_a_key_of_another_shape_or_an_absurd_length_is_refused(client, make_api_key):
    live = make_api_key("integration")
    for presented in ("not-a-key", live + "x" * 300, live.removeprefix("sgw_")):
        response = client.get(INTERACTIONS, headers=bearer(presented))
        assert response.status_code == 401, presented[:20]
        assert response.mimetype == "application/problem+json"
    assert client.get(INTERACTIONS, headers=bearer(live)).status_code == 200


def test_a_signed_out_cookie_signs_nobody_in_again(client, make_account):
    assert sign_in(client, make_account("supervisor", team="North")).status_code == 302
    cookie = client.get_cookie("__Host-session")
    assert cookie is not None
    copied = cookie.value
    page = client.get("/dashboard/operators")
    assert page.status_code == 200
    signed_out = client.post("/dashboard/logout", data={"csrf_token": csrf(page.text)})
    assert signed_out.status_code == 302
    # Someone kept a copy of the cookie from before the sign-out: it is worthless now.
    client.set_cookie("__Host-session", copied, domain="localhost")
    assert client.get("/dashboard/operators").status_code == 302


def test_disabling_an_account_or_resetting_its_password_ends_its_sessions(
    client, session, make_account
):
    sign_in(client, make_account("admin", username="boss"))
    assert client.get("/dashboard/operators").status_code == 200
    disable_account(session, "boss", "test", utcnow())
    session.commit()
    assert client.get("/dashboard/operators").status_code == 302
    enable_account(session, "boss", "test", utcnow())
    session.commit()
    assert sign_in(client, "boss").status_code == 302
    assert client.get("/dashboard/operators").status_code == 200
    reset_password(
        session, "boss", "another long passphrase", "test", utcnow() + timedelta(seconds=1)
    )
    session.commit()
    assert client.get("/dashboard/operators").status_code == 302


def test_the_sign_in_form_needs_its_csrf_token(client, make_account):
    username = make_account("admin")
    forged = client.post(
        "/dashboard/login", data={"username": username, "password": ACCOUNT_PASSWORD}
    )
    assert forged.status_code == 400
    assert sign_in(client, username).status_code == 302


def test_failed_keys_from_one_client_are_slowed_down_then_refused(client, make_api_key):
    for n in range(AUTH_MAX_FAILURES):
        wrong = bearer(f"sgw_guess{n:04d}" + "x" * 30)
        assert client.get(INTERACTIONS, headers=wrong).status_code == 401
    refused = client.get(INTERACTIONS, headers=bearer(make_api_key("integration")))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.mimetype == "application/problem+json"
    # Another client is not held up by this one's failures.
    other = client.get(
        INTERACTIONS,
        headers=bearer(make_api_key("integration")),
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert other.status_code == 200


def test_guesses_at_one_key_prefix_are_refused_from_every_address(client):
    guesses = [f"sgw_AbCdEfGh{n:040d}" for n in range(AUTH_MAX_FAILURES)]
    for n, guess in enumerate(guesses):
        response = client.get(
            INTERACTIONS, headers=bearer(guess), environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}
        )
        assert response.status_code == 401
    again = client.get(
        INTERACTIONS,
        headers=bearer("sgw_AbCdEfGh" + "z" * 40),
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert again.status_code == 429


def test_failed_sign_ins_from_one_client_lock_the_dashboard_form_too(client, make_account):
    """Guessing one password on many accounts from one address is stopped too."""
    for n in range(AUTH_MAX_FAILURES):
        assert sign_in(client, f"someone{n:03d}").status_code == 401
    locked = sign_in(client, make_account("admin"))
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers


def test_failure_counts_are_shared_by_every_instance(database_url, tmp_path, live_app):
    """Two app instances (two workers) count failures in the same database."""
    other = make_test_app(database_url, tmp_path / "other")
    try:
        first, second = live_app.test_client(), other.test_client()
        for n in range(AUTH_MAX_FAILURES):
            client = first if n % 2 else second
            client.get(INTERACTIONS, headers=bearer(f"sgw_shared{n:03d}"))
        assert first.get(INTERACTIONS, headers=bearer("sgw_any")).status_code == 429
    finally:
        other.extensions["database"].dispose()


@pytest.fixture
def cli_env(live_app, database_url, tmp_path):
    return {
        "DATABASE_URL": database_url,
        "SURVEY_GATEWAY_VAR_DIR": str(tmp_path / "cli"),
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }


def test_apikey_list_revoke_and_expiry_from_the_command_line(cli_env, live_app):
    runner = CliRunner()
    made = runner.invoke(
        main,
        ["apikey", "create", "--name", "crm", "--role", "integration", "--expires", "2099-01-31"],
        env=cli_env,
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    listed = runner.invoke(main, ["apikey", "list"], env=cli_env)
    assert listed.exit_code == 0
    line = next(row for row in listed.stdout.splitlines() if row.startswith("crm"))
    assert "2099-01-31 00:00" in line and line.rstrip().endswith("live")
    assert key not in listed.stdout and key[:12] in listed.stdout

    client = live_app.test_client()
    assert client.get(INTERACTIONS, headers=bearer(key)).status_code == 200
    revoked = runner.invoke(main, ["apikey", "revoke", "crm"], env=cli_env)
    assert revoked.exit_code == 0 and "revoked 1 key" in revoked.stdout
    assert client.get(INTERACTIONS, headers=bearer(key)).status_code == 401
    listed = runner.invoke(main, ["apikey", "list"], env=cli_env)
    assert "revoked" in next(r for r in listed.stdout.splitlines() if r.startswith("crm"))
    again = runner.invoke(main, ["apikey", "revoke", "crm"], env=cli_env)
    assert again.exit_code != 0 and "no live key" in again.output
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["apikey.create", "apikey.revoke"]


def test_behind_https_the_sign_in_cookie_is_host_only_secure_and_hidden_from_scripts(
    database_url, tmp_path
):
    app = make_test_app(database_url, tmp_path / "var", public_base_url="https://csat.example.ru")
    try:
        client = app.test_client()
        page = client.get("/dashboard/login", base_url="https://csat.example.ru")
        cookie = page.headers["Set-Cookie"]
        assert cookie.startswith("__Host-session=")
        for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            assert attribute in cookie
        assert "Domain" not in cookie
    finally:
        app.extensions["database"].dispose()
