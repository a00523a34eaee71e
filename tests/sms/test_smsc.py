"""SMS through SMSC.ru with no Twilio settings at all: the real client against a fake of
SMSC's HTTP API on loopback, its callbacks posted to the gateway as SMSC posts them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from gateway.config import ConfigError, Settings, load_settings
from gateway.db import utcnow
from gateway.dispatch import RECONCILE_SMS_TASK, SEND_SMS_TASK, sweep
from gateway.logs import RoutineSweepFilter
from gateway.models import Customer, Message, ProviderCircuit, SurveyStatus
from ivr_flows import load_flows
from sms.configured import provider_for
from sms.reconcile import reconcile_survey
from sms.service import send_first_sms
from sms.smsc import SmscSmsProvider
from sms.texts import first_message
from tests.fake_smsc import LOGIN, PASSWORD, FakeSmsc
from tests.sms.conftest import minutes, record_visit, survey_of

PHONE = "+79161234567"
DEDICATED_NUMBER = "79037654321"
SECRET = "smsc-callback-0123456789abcdef"
CHECKSUM_SECRET = "smsc-md5-secret-0123456789"
FLOW = load_flows()["post_call"]


@pytest.fixture
def fake() -> Iterator[FakeSmsc]:
    with FakeSmsc() as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeSmsc) -> dict[str, object]:
    return {
        "twilio_auth_token": None,  # no Twilio settings at all
        "sms_provider": "smsc",
        "smsc_login": LOGIN,
        "smsc_password": PASSWORD,
        "smsc_sender": DEDICATED_NUMBER,
        "smsc_api_base_url": fake.base_url,
        "smsc_timeout_seconds": 0.5,
        "smsc_callback_secret": SECRET,
        "quiet_hours": None,  # the tasks read the real clock
        "sms_rate_per_second": 1000.0,
    }


@pytest.fixture
def smsc_post(client: FlaskClient) -> Callable[..., TestResponse]:
    def post(form: dict[str, str], secret: str = SECRET) -> TestResponse:
        return client.post(f"/sms/smsc/{secret}?charset=utf-8", data=form)

    return post


def send_due(session: Session, settings: Settings, now: datetime) -> list[str]:
    """One sweep, then the send task of each survey it handed over, as a worker runs it."""
    report = sweep(session, settings, now)
    session.commit()
    provider = provider_for(settings)
    try:
        return [
            send_first_sms(session, settings, provider, survey_id, now, lambda _s: None).result
            for task, survey_id in report.handed_over
            if task == SEND_SMS_TASK
        ]
    finally:
        provider.close()


def question(key: str) -> str:
    return FLOW.question(key).text_for("sms", "ru")


def test_an_office_visit_is_surveyed_through_smsc_and_its_replies_are_scored(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
    client: FlaskClient,
    auth: dict[str, str],
) -> None:
    from sms.tasks import send_pending_replies, send_survey_sms

    assert settings.provider == "console" and settings.sms_provider_name == "smsc"
    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    report = sweep(session, settings, now)
    session.commit()
    [survey_id] = [i for task, i in report.handed_over if task == SEND_SMS_TASK]
    assert send_survey_sms(survey_id) == "sent"

    [sms] = fake.messages()
    assert sms.phone == PHONE and sms.sender == DEDICATED_NUMBER
    assert sms.text == first_message(FLOW, "ru")
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.ACTIVE and survey.provider_id == f"smsc:{sms.id}"

    assert smsc_post(fake.status_form(sms, 1)).status_code == 200
    assert survey_of(session, visit).delivery_status == "delivered"

    replies_sent = 0
    for n, (answer, expected) in enumerate(
        [
            ("5", question("cost")),
            ("4", question("speed")),
            ("5 - отлично", question("politeness")),
            ("4", question("quality")),
            ("5", FLOW.prompt("thanks", "ru")),
        ]
    ):
        incoming = fake.incoming_form(PHONE, answer, DEDICATED_NUMBER, 9000 + n)
        assert smsc_post(incoming).status_code == 200
        assert smsc_post(incoming).status_code == 200, "SMSC delivering it again"
        replies_sent += send_pending_replies()
        assert fake.messages()[-1].text == expected
    assert replies_sent == 5 and len(fake.messages()) == 6, "each reply once"

    assert survey_of(session, visit).status is SurveyStatus.COMPLETED
    body = client.get(f"/api/v1/interactions/{visit.id}", headers=auth).get_json()
    assert body["scores"] == {"overall": 5, "cost": 4, "speed": 5, "politeness": 4, "quality": 5}
    inbound = session.scalar(
        select(func.count()).select_from(Message).where(Message.direction == "inbound")
    )
    assert inbound == 5


def test_stop_by_sms_opts_the_number_out_and_confirms_once(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
) -> None:
    from sms.tasks import send_pending_replies

    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    assert send_due(session, settings, now) == ["sent"]
    smsc_post(fake.incoming_form(PHONE, "СТОП", DEDICATED_NUMBER, 1))
    smsc_post(fake.incoming_form(PHONE, "STOP", DEDICATED_NUMBER, 2))
    assert send_pending_replies() == 1
    customer = session.scalar(select(Customer).where(Customer.phone == PHONE))
    assert customer is not None and customer.opted_out_at is not None
    assert survey_of(session, visit).status is not SurveyStatus.ACTIVE


def test_callbacks_without_the_secret_are_refused_and_change_nothing(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
) -> None:
    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    assert send_due(session, settings, now) == ["sent"]
    [sms] = fake.messages()
    assert smsc_post(fake.status_form(sms, 22), secret="x" * len(SECRET)).status_code == 403
    forged = fake.incoming_form(PHONE, "1", DEDICATED_NUMBER, 7)
    assert smsc_post(forged, secret="wrong").status_code == 403
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.ACTIVE and not survey.answers
    assert smsc_post({"id": "x", "status": "1"}).status_code == 400


def test_with_a_checksum_secret_only_callbacks_with_smscs_md5_are_taken(
    app: Flask,
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SMSC_CHECKSUM_SECRET set: the handler URL in SMSC's account settings carries
    `md5=<it>`, and SMSC adds the md5 of each callback's values; a callback without it, or
    with one made otherwise, is refused with a log line and changes nothing."""
    app.config["SETTINGS"] = dataclasses.replace(settings, smsc_checksum_secret=CHECKSUM_SECRET)
    url = f"/sms/smsc/{SECRET}?charset=utf-8&md5={CHECKSUM_SECRET}"  # as SMSC calls it
    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    assert send_due(session, settings, now) == ["sent"]
    [sms] = fake.messages()

    unsigned = fake.status_form(sms, 22)  # the fake without the secret adds no md5
    fake.checksum_secret = "another-secret-0123456789"
    other_secret = fake.incoming_form(PHONE, "1", DEDICATED_NUMBER, 9101)
    fake.checksum_secret = CHECKSUM_SECRET
    altered = {**fake.status_form(sms, 1), "status": "22"}  # its md5 is of status 1
    with caplog.at_level(logging.WARNING, logger="sms.views"):
        assert client.post(url, data=unsigned).status_code == 403
        assert client.post(url, data=other_secret).status_code == 403
        assert client.post(url, data=altered).status_code == 403
    refusals = [r.getMessage() for r in caplog.records if "md5 checksum" in r.getMessage()]
    assert [line.split(" is ")[1].split()[0] for line in refusals] == ["missing", "wrong", "wrong"]
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.ACTIVE and not survey.answers
    assert survey.delivery_status != "failed"

    assert client.post(url, data=fake.status_form(sms, 1)).status_code == 200
    assert survey_of(session, visit).delivery_status == "delivered"
    incoming = fake.incoming_form(PHONE, "5 - отлично", DEDICATED_NUMBER, 9102)
    assert client.post(url, data=incoming).status_code == 200
    assert [a.value for a in survey_of(session, visit).answers] == [5]


@pytest.mark.parametrize(
    ("script", "outcome", "status"),
    [
        ({"error_code": 7}, "failed", SurveyStatus.FAILED),  # wrong number format
        ({"error_code": 8}, "failed", SurveyStatus.FAILED),  # cannot be delivered
        ({"http_status": 503}, "retry", SurveyStatus.SCHEDULED),
        ({"error_code": 9}, "unknown", SurveyStatus.ACTIVE),  # a duplicate request
    ],
)
def test_send_errors_by_class(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    script: dict[str, Any],
    outcome: str,
    status: SurveyStatus,
) -> None:
    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    fake.fail_next(**script)
    assert send_due(session, settings, now) == [outcome]
    survey = survey_of(session, visit)
    assert survey.status is status
    if outcome == "unknown":
        assert survey.delivery_status == "unknown", "possibly sent: never sent blindly again"
    assert fake.messages() == []


def test_an_account_refusal_pauses_smsc_until_a_probe_goes_through(
    session: Session, settings: Settings, fake: FakeSmsc
) -> None:
    now = utcnow()
    first = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    second = record_visit(session, settings, ended_at=now - minutes(61), phone="+79161234568")
    fake.fail_next(error_code=3)  # not enough funds; the second survey is not even tried
    assert sorted(send_due(session, settings, now)) == ["paused", "paused"]
    circuit = session.scalar(select(ProviderCircuit).where(ProviderCircuit.provider == "smsc"))
    assert circuit is not None and circuit.state == "open"
    assert "smsc 3" in (circuit.reason or "")
    for visit in (first, second):
        assert survey_of(session, visit).status is SurveyStatus.SCHEDULED, "no survey failed"

    # While open nothing goes out; at the probe one survey goes, and its success reopens all.
    assert send_due(session, settings, now + minutes(0.5)) == []
    assert send_due(session, settings, now + minutes(2)) == ["sent"]
    assert send_due(session, settings, now + minutes(2)) == ["sent"]
    assert len(fake.messages()) == 2


@pytest.mark.parametrize(
    ("status", "err", "survey_status", "opted_out"),
    [
        (20, 6, SurveyStatus.SCHEDULED, False),  # subscriber not in the network: again later
        (3, 0, SurveyStatus.SCHEDULED, False),  # expired: again later
        (22, 0, SurveyStatus.FAILED, False),  # wrong number
        (23, 252, SurveyStatus.FAILED, True),  # SMSC's blacklist: opted out
        (20, 1, SurveyStatus.FAILED, False),  # subscriber does not exist
    ],
)
def test_delivery_statuses_by_class_and_a_repeated_callback_counted_once(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
    status: int,
    err: int,
    survey_status: SurveyStatus,
    opted_out: bool,
) -> None:
    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    assert send_due(session, settings, now) == ["sent"]
    [sms] = fake.messages()
    form = fake.status_form(sms, status, err)
    assert smsc_post(form).status_code == 200
    after_first = survey_of(session, visit)
    due, reason = after_first.due_at, after_first.not_sent_reason
    assert after_first.status is survey_status
    assert smsc_post(form).status_code == 200
    again = survey_of(session, visit)
    assert (again.status, again.due_at, again.not_sent_reason) == (survey_status, due, reason)
    customer = session.scalar(select(Customer).where(Customer.phone == PHONE))
    assert customer is not None and (customer.opted_out_at is not None) is opted_out
    if survey_status is SurveyStatus.FAILED:
        assert f"smsc status {status}" in (reason or "")


def test_no_funds_after_acceptance_pauses_smsc_and_the_survey_waits(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
) -> None:
    now = utcnow()
    visit = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    assert send_due(session, settings, now) == ["sent"]
    [sms] = fake.messages()
    assert smsc_post(fake.status_form(sms, 24)).status_code == 200
    survey = survey_of(session, visit)
    assert survey.status is SurveyStatus.SCHEDULED and survey.provider_id is None
    circuit = session.scalar(select(ProviderCircuit).where(ProviderCircuit.provider == "smsc"))
    assert circuit is not None and circuit.state == "open"


def test_a_send_whose_answer_was_lost_is_looked_up_by_its_id_and_sent_at_most_once(
    session: Session, settings: Settings, fake: FakeSmsc
) -> None:
    now = utcnow()
    taken = record_visit(session, settings, ended_at=now - minutes(61), phone=PHONE)
    lost = record_visit(session, settings, ended_at=now - minutes(61), phone="+79161234568")
    fake.hold_next(1.5)  # SMSC took it; the answer comes after the client gave up
    fake.fail_next(error_code=9)  # refused as a duplicate: SMSC has no such message
    assert send_due(session, settings, now) == ["unknown", "unknown"]
    assert [m.phone for m in fake.messages()] == [PHONE]

    later = now + minutes(3)
    report = sweep(session, settings, later)
    session.commit()
    checks = [i for task, i in report.handed_over if task == RECONCILE_SMS_TASK]
    provider = SmscSmsProvider(settings)
    try:
        outcomes = sorted(reconcile_survey(session, settings, provider, i, later) for i in checks)
    finally:
        provider.close()
    assert outcomes == ["found", "resend"]
    assert survey_of(session, taken).provider_id == f"smsc:{fake.messages()[0].id}"
    assert send_due(session, settings, later) == ["sent"]
    assert sorted(m.phone for m in fake.messages()) == sorted([PHONE, "+79161234568"])
    assert [a.outcome for a in survey_of(session, lost).attempt_log] == ["not_accepted", "sent"]


def test_smsc_settings_are_checked_at_start_up() -> None:
    base = {"SMS_PROVIDER": "smsc", "SMSC_PASSWORD": "p"}
    assert load_settings(base).sms_provider_name == "smsc"
    assert load_settings({**base, "SMSC_SENDER": "Office-1"}).smsc_sender == "Office-1"
    with pytest.raises(ConfigError, match="SMSC_SENDER"):
        load_settings({**base, "SMSC_SENDER": "Офис"})
    with pytest.raises(ConfigError, match="SMSC_SENDER"):
        load_settings({**base, "SMSC_SENDER": "TooLongName12"})
    with pytest.raises(ConfigError, match="SMSC_PASSWORD"):
        load_settings({"SMS_PROVIDER": "smsc"})
    with pytest.raises(ConfigError, match="SMS_PROVIDER"):
        load_settings({"SMS_PROVIDER": "smsru"})
    with pytest.raises(ConfigError, match="SMSC_CALLBACK_SECRET"):
        load_settings({**base, "SMSC_CALLBACK_SECRET": "short"})
    with pytest.raises(ConfigError, match="SMSC_CHECKSUM_SECRET"):
        load_settings({**base, "SMSC_CHECKSUM_SECRET": "short&md5"})


def test_a_reply_smsc_cannot_take_for_a_moment_goes_out_with_a_later_sweep(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
) -> None:
    from sms.tasks import send_pending_replies

    visit = record_visit(session, settings, ended_at=utcnow() - minutes(61), phone=PHONE)
    assert send_due(session, settings, utcnow()) == ["sent"]
    smsc_post(fake.incoming_form(PHONE, "5", DEDICATED_NUMBER, 7001))
    fake.fail_next(http_status=503)

    assert send_pending_replies() == 0  # SMSC answered 503: nothing went out
    assert send_pending_replies() == 1  # the next sweep's run sends it

    assert [m.text for m in fake.messages()[1:]] == [question("cost")]
    assert survey_of(session, visit).status is SurveyStatus.ACTIVE


def test_a_reply_whose_answer_was_lost_is_looked_up_by_its_id_and_never_sent_twice(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
) -> None:
    from sms.service import POSSIBLY_SENT, send_pending_replies

    record_visit(session, settings, ended_at=utcnow() - minutes(61), phone=PHONE)
    assert send_due(session, settings, utcnow()) == ["sent"]
    smsc_post(fake.incoming_form(PHONE, "5", DEDICATED_NUMBER, 7002))
    fake.hold_next(2.0)  # SMSC takes the reply; its answer comes after the client gave up
    provider = provider_for(settings)
    try:
        now = utcnow()
        assert send_pending_replies(session, settings, provider, now, lambda _s: None) == 0
        reply = session.scalar(
            select(Message).where(Message.direction == "outbound", Message.body == question("cost"))
        )
        assert reply is not None and reply.status == POSSIBLY_SENT
        later = now + timedelta(seconds=settings.sms_reconcile_after_seconds + 1)

        send_pending_replies(session, settings, provider, later, lambda _s: None)
    finally:
        provider.close()

    session.refresh(reply)
    assert [m.text for m in fake.messages()[1:]] == [question("cost")]  # once
    assert reply.status != POSSIBLY_SENT and reply.provider_sid is not None


def test_a_reply_lost_before_smsc_took_it_is_sent_once_more(
    session: Session,
    settings: Settings,
    fake: FakeSmsc,
    smsc_post: Callable[..., TestResponse],
) -> None:
    from sms.service import send_pending_replies

    record_visit(session, settings, ended_at=utcnow() - minutes(61), phone=PHONE)
    assert send_due(session, settings, utcnow()) == ["sent"]
    smsc_post(fake.incoming_form(PHONE, "5", DEDICATED_NUMBER, 7003))
    provider = provider_for(settings)
    try:
        now = utcnow()
        reply = session.scalar(
            select(Message).where(Message.direction == "outbound", Message.body == question("cost"))
        )
        assert reply is not None
        reply.status = "unknown"  # as a send whose request never reached SMSC leaves it
        session.commit()
        later = now + timedelta(seconds=settings.sms_reconcile_after_seconds + 1)

        sent = send_pending_replies(session, settings, provider, later, lambda _s: None)
    finally:
        provider.close()

    assert sent == 1  # SMSC had no such message: sent once more, once
    assert [m.text for m in fake.messages()[1:]] == [question("cost")]


def test_the_beat_sends_pending_replies_every_sweep_so_a_lost_task_delays_a_reply_only_so_long(
    app: Flask, settings: Settings
) -> None:
    schedule = app.extensions["celery"].conf.beat_schedule
    entries = [e for e in schedule.values() if e["task"] == "sms.tasks.send_pending_replies"]
    assert len(entries) == 1
    assert entries[0]["schedule"] == timedelta(seconds=settings.dispatch_interval_seconds)


def test_celerys_routine_lines_about_every_scheduled_task_stay_out_of_the_console(
    app: Flask,
) -> None:
    """A gateway at rest is quiet (the console provider's SMS stays visible): Celery's sent,
    received and succeeded lines are dropped for every task of the beat, SMSC's replies too."""
    schedule = app.extensions["celery"].conf.beat_schedule
    quiet = RoutineSweepFilter()
    for entry in schedule.values():
        for name, line in [
            ("celery.beat", f"Scheduler: Sending due task x ({entry['task']})"),
            ("celery.worker.strategy", f"Task {entry['task']}[1] received"),
            ("celery.app.trace", f"Task {entry['task']}[1] succeeded in 0.01s: 'done'"),
        ]:
            record = logging.LogRecord(name, logging.INFO, __file__, 1, line, None, None)
            assert not quiet.filter(record), line
    send = logging.LogRecord(
        "celery.app.trace",
        logging.INFO,
        __file__,
        1,
        "Task sms.tasks.send_survey_sms[1] received",
        None,
        None,
    )
    assert quiet.filter(send)  # a send is not routine
