"""Subscriptions through the API and the command line: admins only, clear errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.cli import main
from gateway.models import AuditEvent
from gateway.webhooks.models import WebhookSubscription
from tests.webhooks.conftest import subscribe

PATH = "/api/v1/webhooks/subscriptions"


def test_only_admins_manage_subscriptions(
    client: FlaskClient, make_api_key: Callable[..., str]
) -> None:
    body = {"url": "https://crm.example.ru/h", "events": ["survey.completed"]}
    for role, team in (("integration", None), ("supervisor", "Front office")):
        headers = {"Authorization": f"Bearer {make_api_key(role, team=team)}"}
        assert client.post(PATH, json=body, headers=headers).status_code == 403
        assert client.get(PATH, headers=headers).status_code == 403
    assert client.get(PATH).status_code == 401


def test_the_secret_is_shown_once_and_changes_are_audited(
    client: FlaskClient, admin: dict[str, str], session: object
) -> None:
    created = subscribe(client, admin, "https://crm.example.ru/h", ["survey.completed"])
    assert created["secret"].startswith("whsec_")
    assert created["status"] == "active"
    shown = client.get(f"{PATH}/{created['id']}", headers=admin).get_json()
    assert "secret" not in shown

    rotated = client.post(f"{PATH}/{created['id']}/rotate-secret", headers=admin).get_json()
    assert rotated["secret"] != created["secret"]
    changed = client.patch(
        f"{PATH}/{created['id']}",
        json={"events": ["survey.completed", "incident.opened"], "status": "paused"},
        headers=admin,
    ).get_json()
    assert changed["events"] == ["survey.completed", "incident.opened"]
    assert changed["status"] == "paused"
    assert changed["paused_reason"] == "paused by admin:integrations admin"
    actions = session.scalars(  # type: ignore[attr-defined]
        select(AuditEvent.action)
        .where(AuditEvent.subject_type == "webhook_subscription")
        .order_by(AuditEvent.id)
    ).all()
    assert actions == ["webhook.create", "webhook.rotate_secret", "webhook.update", "webhook.pause"]

    assert client.delete(f"{PATH}/{created['id']}", headers=admin).status_code == 204
    assert client.get(f"{PATH}/{created['id']}", headers=admin).status_code == 404


def test_the_list_shows_every_subscription_with_its_deliveries_counted_and_no_secret(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    first = subscribe(client, admin, "https://crm.example.ru/a", ["survey.completed"])
    second = subscribe(client, admin, "https://crm.example.ru/b", ["incident.opened"])
    listed = client.get(PATH, headers=admin)
    assert listed.status_code == 200
    rows = listed.get_json()
    assert [(r["id"], r["url"]) for r in rows] == [
        (first["id"], "https://crm.example.ru/a"),
        (second["id"], "https://crm.example.ru/b"),
    ]
    assert all("secret" not in r for r in rows)
    assert rows[0]["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    # A delivery is found only under its own subscription.
    missing = client.get(f"{PATH}/{first['id']}/deliveries/999999", headers=admin)
    assert missing.status_code == 404
    assert "no delivery 999999" in missing.get_json()["detail"]


def test_bad_subscriptions_get_a_clear_error_and_nothing_is_stored(
    client: FlaskClient, admin: dict[str, str], session: object
) -> None:
    cases = [
        ({"url": "ftp://crm.example.ru/h", "events": ["survey.completed"]}, "https://host"),
        ({"url": "https://crm.example.ru/h", "events": ["survey.done"]}, "events.0"),
        ({"url": "https://crm.example.ru/h", "events": []}, "events"),
        (
            {"url": "https://b24.example.ru/rest/1/x/", "events": ["incident.opened"],
             "format": "bitrix24.task"},
            "responsible_id",
        ),
        (
            {"url": "https://b24.example.ru/rest/1/x/", "events": ["survey.completed"],
             "format": "bitrix24.task", "options": {"responsible_id": 1}},
            "takes incident.opened",
        ),
        (
            {"url": "https://b24.example.ru/rest/1/x/", "events": ["incident.opened"],
             "format": "bitrix24.task", "options": {"responsible_id": 1, "colour": "red"}},
            "no option colour",
        ),
    ]  # fmt: skip
    for body, mentioned in cases:
        response = client.post(PATH, json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.mimetype == "application/problem+json"
        assert mentioned in response.get_json()["detail"], response.get_json()
    assert session.scalars(select(WebhookSubscription)).all() == []  # type: ignore[attr-defined]


def test_the_command_line_creates_lists_and_pauses(
    live_app: Flask, database_url: str, tmp_path: object
) -> None:
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "webhooks", "create", "--url", "https://b24.example.ru/rest/1/abc/tasks.task.add.json",
            "--events", "incident.opened", "--format", "bitrix24.task",
            "--option", "responsible_id=17",
        ],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "secret: whsec_" in result.stdout
    subscription_id = int(result.stdout.split()[1])  # "subscription <id> created"

    result = runner.invoke(main, ["webhooks", "pause", str(subscription_id)], env=env)
    assert result.exit_code == 0, result.output
    listed = runner.invoke(main, ["webhooks", "list"], env=env)
    assert "paused\tbitrix24.task\tincident.opened" in listed.stdout
    with live_app.app_context():
        row = live_app.extensions["database"].session().get(WebhookSubscription, subscription_id)
        assert row.options == {"responsible_id": 17, "deadline_hours": 24}

    bad = runner.invoke(main, ["webhooks", "create", "--url", "x", "--events", "nope"], env=env)
    assert bad.exit_code != 0
    assert "unknown event nope" in bad.output


def test_production_refuses_plain_http_receivers_but_loopback(
    app: Flask, client: FlaskClient, admin: dict[str, str], session: object
) -> None:
    """Event bodies hold phone numbers and names: never across a network unencrypted."""
    assert (
        dataclasses.replace(app.config["SETTINGS"], env="production").webhooks_may_use_http()
        is False
    )
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], env="production")
    refused = client.post(
        PATH, json={"url": "http://crm.example.ru/h", "events": ["survey.completed"]}, headers=admin
    )
    assert refused.status_code == 422
    assert "must be https://" in refused.get_json()["detail"]
    assert "WEBHOOK_ALLOW_HTTP" in refused.get_json()["detail"]
    assert session.scalars(select(WebhookSubscription)).all() == []  # type: ignore[attr-defined]

    local = subscribe(client, admin, "http://127.0.0.1:9/h", ["survey.completed"])
    changed = client.patch(
        f"{PATH}/{local['id']}", json={"url": "http://erp.example.ru/h"}, headers=admin
    )
    assert changed.status_code == 422
    assert client.get(f"{PATH}/{local['id']}", headers=admin).get_json()["url"] == (
        "http://127.0.0.1:9/h"
    )

    app.config["SETTINGS"] = dataclasses.replace(
        app.config["SETTINGS"], webhook_allow_http=True
    )  # an operator who says the network in between is trusted
    subscribe(client, admin, "http://erp.internal/h", ["incident.opened"])
