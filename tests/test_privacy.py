"""A customer's personal data: erasure (command line and API), retention, recordings deleted
at Twilio, the consent ledger, the export, and audited reads of full numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway.cli import main
from gateway.db import Base, utcnow
from gateway.models import (
    Answer,
    AuditEvent,
    Customer,
    Interaction,
    Message,
    RecordingDeletion,
    SurveyAttempt,
)
from gateway.privacy import expire_personal_data
from gateway.privacy_sweep import run_privacy_sweep
from gateway.surveys import open_incident
from gateway.tasks import privacy_sweep
from gateway.webhooks.models import OutboxEvent
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, twilio_signature
from tests.fake_twilio import RECORDING_DELETE, FakeTwilio
from tests.reports.factories import Seeder, at
from tests.twilio_openapi import assert_matches_twilio_openapi

PHONE = "+79161234567"
NATIONAL = "9161234567"
OTHER = "+79167654321"
REPORT = "/api/v1/reports/operators?from=2026-09-01&to=2026-09-30"


def everything_stored(engine: Any) -> str:
    """Every value of every table, as text: where a trace of a number would show."""
    parts = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.append(f"{table.name}: " + " | ".join(str(v) for v in row))
    return "\n".join(parts)


def seed_customer(session: Session, recording_url: str) -> None:
    """Two customers with surveys; the first with every kind of personal data."""
    seeder = Seeder(session)
    operator = seeder.operator("op-1", "North", "Anna")
    anna = Customer(external_id="crm-77", phone=PHONE, name="Ivan Petrov", language="ru")
    session.add(anna)
    session.flush()
    survey = seeder.survey(operator, {"overall": 2, "speed": 1}, at("2026-09-02"), customer=anna)
    comment = Answer(
        question_key="comment",
        value=None,
        raw_input="call me back on 8 916 123-45-67",
        recording_url=recording_url,
        recording_duration=12,
        answered_at=at("2026-09-02"),
    )
    survey.answers.append(comment)
    survey.attempt_log.append(
        SurveyAttempt(number=1, outcome="failed", detail=f"Invalid 'To' Phone Number {PHONE}")
    )
    for direction, body in (("outbound", "Rate us 1-5"), ("inbound", "2 slow, Ivan Petrov")):
        session.add(
            Message(
                direction=direction,
                phone=PHONE,
                body=body,
                session_id=survey.id,
                customer_id=anna.id,
                provider_sid=f"SM{direction[:2]}{'0' * 30}",
            )
        )
    event = {"type": "customer.nps_changed", "customer": {"phone": PHONE, "name": anna.name}}
    session.add(
        OutboxEvent(
            event_id="ev-1",
            type="customer.nps_changed",
            body=json.dumps(event),
            customer_id=anna.id,
        )
    )
    incident = open_incident(session, survey, 2, at("2026-09-02"))
    incident.resolution = f"Called back {PHONE}, apologised"
    seeder.survey(
        operator, {"overall": 5}, at("2026-09-03"), customer=seeder.customer("crm-8", OTHER)
    )
    session.commit()


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": "+15005550006",
        "twilio_timeout_seconds": 2.0,
    }


@pytest.fixture
def cli_env(live_app: Flask, database_url: str, tmp_path, fake: FakeTwilio) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SURVEY_GATEWAY_VAR_DIR": str(tmp_path / "cli"),
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }


def admin_headers(app: Flask) -> dict[str, str]:
    from gateway.apikeys import create_api_key
    from gateway.models import ApiRole

    with app.app_context():
        session = app.extensions["database"].session()
        _, key = create_api_key(session, "dpo", ApiRole.ADMIN, None, utcnow())
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def test_erasing_by_phone_leaves_no_trace_and_the_same_figures(live_app, cli_env, fake):
    database = live_app.extensions["database"]
    recording_sid = "RE" + "a" * 32
    url = fake.add_recording(recording_sid)
    with live_app.app_context():
        seed_customer(database.session(), url)
    headers = admin_headers(live_app)
    client = live_app.test_client()
    before = client.get(REPORT, headers=headers).json
    assert NATIONAL in everything_stored(database.engine)

    runner = CliRunner()
    erased = runner.invoke(
        main, ["customers", "erase", "--phone", "8 (916) 123-45-67"], env=cli_env
    )
    assert erased.exit_code == 0, erased.output
    assert "1 customer(s) erased" in erased.stdout

    stored = everything_stored(database.engine)
    assert NATIONAL not in stored and "Ivan Petrov" not in stored and "crm-77" not in stored
    assert OTHER in stored  # nobody else's data was touched
    assert client.get(REPORT, headers=headers).json == before
    with live_app.app_context():
        session = database.session()
        values = session.scalars(select(Answer.value).order_by(Answer.id)).all()
        assert values == [2, 1, None, 5]  # the scores stay, anonymous
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.erase"))
        assert [(e.actor, e.detail["recordings"]) for e in audit] == [("cli", 1)]

    again = runner.invoke(main, ["customers", "erase", "--phone", PHONE], env=cli_env)
    assert again.exit_code == 0 and "nothing to erase" in again.stdout

    # The privacy sweep deletes the recording at Twilio, once.
    run_privacy_sweep(database, live_app.config["SETTINGS"], utcnow())
    run_privacy_sweep(database, live_app.config["SETTINGS"], utcnow())
    deletes = fake.requests_to(RECORDING_DELETE)
    assert [r.path.rsplit("/", 1)[-1] for r in deletes] == [f"{recording_sid}.json"]
    assert deletes[0].status == 204 and not fake.has_recording(recording_sid)
    with live_app.app_context():
        row = database.session().scalar(select(RecordingDeletion))
        assert row is not None and row.deleted_at is not None


def test_the_recording_delete_is_the_request_twilio_documents(live_app, fake):
    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        session.add(
            RecordingDeletion(recording_sid=fake.add_recording("RE" + "b" * 32).rsplit("/", 1)[-1])
        )
        session.commit()
        # The beat's privacy task, run as a worker runs it.
        summary = privacy_sweep.run()
    assert summary == "privacy sweep: 0 contact(s) anonymised, 1 recording(s) deleted"
    (request,) = fake.requests_to(RECORDING_DELETE)
    assert request.method == "DELETE"
    assert request.path == f"/2010-04-01/Accounts/{fake.account_sid}/Recordings/RE{'b' * 32}.json"
    assert_matches_twilio_openapi(request)


def test_a_failed_recording_delete_is_tried_again_by_the_next_sweep(live_app, fake):
    database = live_app.extensions["database"]
    sid = fake.add_recording("RE" + "c" * 32).rsplit("/", 1)[-1]
    with live_app.app_context():
        session = database.session()
        session.add(RecordingDeletion(recording_sid=sid))
        session.commit()
    fake.fail_next(RECORDING_DELETE, 500, 20500)
    run_privacy_sweep(database, live_app.config["SETTINGS"], utcnow())
    assert fake.has_recording(sid)
    run_privacy_sweep(database, live_app.config["SETTINGS"], utcnow())
    assert not fake.has_recording(sid)


def test_erasure_over_the_api_is_for_admins_and_audited(client, session, make_api_key):
    seed_customer(
        session, "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE" + "d" * 32
    )
    crm = {"Authorization": f"Bearer {make_api_key('integration')}"}
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='dpo')}"}
    body = {"external_id": "crm-77", "reason": "request 2026-114"}
    assert client.post("/api/v1/customers/erasure", json=body, headers=crm).status_code == 403
    done = client.post("/api/v1/customers/erasure", json=body, headers=admin)
    assert done.status_code == 200
    assert len(done.json["customers"]) == 1 and done.json["recordings"] == 1
    assert session.scalar(select(Customer).where(Customer.phone == PHONE)) is None
    again = client.post("/api/v1/customers/erasure", json=body, headers=admin)
    assert again.status_code == 200 and again.json["customers"] == []
    both = client.post(
        "/api/v1/customers/erasure", json={"phone": PHONE, "external_id": "x"}, headers=admin
    )
    assert both.status_code == 422


def test_retention_anonymises_old_contacts_only(session, app):
    seeder = Seeder(session)
    operator = seeder.operator("op-1", "North")
    now = utcnow()
    old_customer = seeder.customer("crm-old", PHONE)
    old = seeder.survey(operator, {"overall": 4}, now - timedelta(days=400), customer=old_customer)
    old.answers[0].raw_input = "4, thanks"
    session.add(Message(direction="inbound", phone=PHONE, body="4, thanks", session_id=old.id))
    recent_customer = seeder.customer("crm-new", OTHER)
    seeder.survey(operator, {"overall": 3}, now - timedelta(days=400), customer=recent_customer)
    recent = seeder.survey(
        operator, {"overall": 5}, now - timedelta(days=10), customer=recent_customer
    )
    recent.answers[0].raw_input = "5!"
    session.commit()

    stray = Message(
        direction="inbound", phone=OTHER, body="thanks again", created_at=now - timedelta(days=400)
    )
    session.add(stray)
    session.commit()
    assert expire_personal_data(session, 365, now, batch=1) == 1  # small batches
    assert expire_personal_data(session, 365, now, batch=100) == 1
    assert expire_personal_data(session, 365, now) == 0
    session.commit()
    assert old_customer.phone is None and old_customer.erased_at is not None
    assert recent_customer.phone == OTHER  # a newer contact keeps the customer
    assert session.scalars(select(Message.body)).all() == ["", ""]
    assert stray.phone == "[erased]"
    texts = dict(session.execute(select(Answer.value, Answer.raw_input)).all())
    assert texts == {4: None, 3: None, 5: "5!"}
    marked = session.scalars(select(Interaction.anonymized_at).order_by(Interaction.id)).all()
    assert [m is not None for m in marked] == [True, True, False]


def _sms(client, sid: str, body: str) -> Any:
    params = {
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": PHONE,
        "To": "+74951234567",
        "Body": body,
    }
    url = f"{PUBLIC_BASE_URL}/sms/inbound"
    return client.post(
        "/sms/inbound", data=params, headers={"X-Twilio-Signature": twilio_signature(url, params)}
    )


class TestConsent:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {}

    def test_the_consent_ledger_shows_each_change_and_the_request(
        self, client, session, make_api_key
    ):
        session.add(Customer(external_id="crm-5", phone=PHONE))
        session.commit()
        crm = {"Authorization": f"Bearer {make_api_key('integration')}"}
        assert _sms(client, "SM" + "1" * 32, "STOP").status_code == 200
        assert _sms(client, "SM" + "2" * 32, "START").status_code == 200
        assert _sms(client, "SM" + "3" * 32, "СТОП").status_code == 200
        ledger = client.get("/api/v1/customers/crm-5/consent", headers=crm).json
        assert [(e["state"], e["source"], e["reference"]) for e in ledger["events"]] == [
            ("opted_out", "sms:STOP", "SM" + "1" * 32),
            ("opted_in", "sms:START", "SM" + "2" * 32),
            ("opted_out", "sms:СТОП", "SM" + "3" * 32),
        ]
        assert ledger["channels"]["sms"]["state"] == "opted_out"
        assert ledger["channels"]["ivr"]["state"] == "opted_out"
        assert client.get("/api/v1/customers/nobody/consent", headers=crm).status_code == 404

    def test_a_person_reading_a_full_number_is_audited_an_integration_is_not(
        self, client, session, make_api_key
    ):
        seeder = Seeder(session)
        operator = seeder.operator("op-1", "North")
        survey = seeder.survey(
            operator, {"overall": 4}, at("2026-09-02"), customer=seeder.customer("c", PHONE)
        )
        session.commit()
        path = f"/api/v1/interactions/{survey.interaction_id}"
        crm = {"Authorization": f"Bearer {make_api_key('integration')}"}
        north = {"Authorization": f"Bearer {make_api_key('supervisor', 'North', 'olga')}"}
        assert client.get(path, headers=crm).json["customer"]["phone"] == PHONE
        assert client.get(path, headers=north).json["customer"]["phone"] == PHONE
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "customer.phone_read")
        ).all()
        assert [(e.actor, e.subject_id) for e in events] == [
            ("supervisor:olga", str(survey.customer_id))
        ]


def test_customers_export_gives_everything_as_json_and_is_audited(live_app, cli_env, fake):
    database = live_app.extensions["database"]
    with live_app.app_context():
        seed_customer(database.session(), fake.add_recording("RE" + "e" * 32))
    result = CliRunner().invoke(
        main, ["customers", "export", "--external-id", "crm-77"], env=cli_env
    )
    assert result.exit_code == 0, result.output
    (document,) = json.loads(result.stdout)["customers"]
    assert document["customer"]["phone"] == PHONE
    assert document["customer"]["name"] == "Ivan Petrov"
    answers = document["interactions"][0]["survey"]["answers"]
    assert {a["question"]: a["value"] for a in answers} == {
        "overall": 2,
        "speed": 1,
        "comment": None,
    }
    assert [m["body"] for m in document["messages"]] == ["Rate us 1-5", "2 slow, Ivan Petrov"]
    with live_app.app_context():
        actions = database.session().scalars(select(AuditEvent.action)).all()
    assert "customer.export" in actions
    missing = CliRunner().invoke(
        main, ["customers", "export", "--phone", OTHER[:-1] + "0"], env=cli_env
    )
    assert missing.exit_code != 0


def test_erasure_writes_no_number_to_the_logs(live_app, cli_env, log_lines):
    """The suite-wide log check runs after this test too; here the erasure logs at INFO."""
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        session.add(Customer(external_id="crm-9", phone=PHONE))
        session.commit()
    start = len(log_lines.lines)
    result = CliRunner().invoke(main, ["customers", "erase", "--external-id", "crm-9"], env=cli_env)
    assert result.exit_code == 0
    assert all(NATIONAL not in line for line in log_lines.lines[start:])
    with live_app.app_context():
        assert (
            live_app.extensions["database"]
            .session()
            .execute(text("SELECT count(*) FROM customers WHERE phone IS NOT NULL"))
            .scalar()
            == 0
        )
