"""`survey-gateway webhooks ...` on a live database: an integrator follows a receiver's
deliveries, sends failed ones again and reads an event as the receiver got it."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result
from flask import Flask

from gateway.cli import main
from gateway.db import utcnow
from gateway.webhooks.events import emit
from tests.webhooks.receiver import Receiver


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["webhooks", *args], env=env)


def test_deliveries_are_listed_sent_again_and_their_event_shown(
    live_app: Flask, database_url: str, tmp_path: object, receiver: Receiver
) -> None:
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    created = _run(env, "create", "--url", receiver.url, "--events", "incident.opened")
    assert created.exit_code == 0, created.output
    subscription = created.stdout.split()[1]  # "subscription <id> created"
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        event = emit(session, "incident.opened", {"incident": {"id": 7}}, utcnow())
        assert event is not None
        event_id = event.event_id
        session.commit()

    # The receiver is down: the sweep tries, the log says it is pending and why.
    tried = _run(env, "deliver")
    assert tried.exit_code == 0, tried.output
    assert "delivered 0" in tried.stdout
    pending = _run(env, "deliveries", subscription, "--status", "pending")
    assert f"{event_id}\tincident.opened\tpending\ttries 1\t" in pending.stdout
    assert "ConnectionError" in pending.stdout
    delivery = pending.stdout.split("\t")[0]

    # Up again, the delivery is sent again at once and arrives.
    receiver.start()
    again = _run(env, "redeliver", "--delivery", delivery)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == f"delivery {delivery} due again"
    sent = _run(env, "deliver")
    assert "delivered 1" in sent.stdout
    assert [event["type"] for event in receiver.events()] == ["incident.opened"]
    listed = _run(env, "list")
    assert f"{subscription}\tactive\tevent\tincident.opened\t{receiver.url}\t(" in listed.stdout
    assert "delivered 1" in listed.stdout

    shown = _run(env, "show-event", event_id)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["data"] == {"incident": {"id": 7}}


def test_the_commands_say_what_they_did_not_find(
    live_app: Flask, database_url: str, tmp_path: object
) -> None:
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    cases = [
        (["pause", "404"], "no webhook subscription 404"),
        (["resume", "404"], "no webhook subscription 404"),
        (["redeliver", "--delivery", "404"], "no delivery 404"),
        (["redeliver", "--failed", "404"], "no webhook subscription 404"),
        (["redeliver"], "give either --delivery ID or --failed SUBSCRIPTION_ID"),
        (["show-event", "evt_nosuch"], "no event evt_nosuch"),
        (
            ["create", "--url", "https://crm.example.ru/h", "--events", "incident.opened",
             "--option", "responsible_id"],
            "'responsible_id' is not NAME=VALUE",
        ),
    ]  # fmt: skip
    for args, message in cases:
        result = _run(env, *args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
