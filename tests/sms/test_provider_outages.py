"""A bad hour at the provider: errors by who must act, the shared circuit breaker, a retry
budget in time, and sending failed surveys again. Through the real SDK to the fake Twilio."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cli import main
from gateway.config import Settings
from gateway.dispatch import SEND_SMS_TASK, sweep
from gateway.models import AuditEvent, ProviderCircuit, SurveyStatus
from gateway.provider_errors import FailureKind, classify
from gateway.retries import retry_surveys
from sms.providers import TwilioSmsProvider
from sms.service import send_first_sms
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import NOON_MSK, minutes, record_visit, survey_of

FROM = "+15005550006"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(hold_cap_seconds=3) as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, object]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": FROM,
        "twilio_timeout_seconds": 1.0,
        "sms_rate_per_second": 1000.0,
        "provider_probe_seconds": 60.0,
    }


def claim(session: Session, settings: Settings, now: datetime) -> list[int]:
    report = sweep(session, settings, now)
    session.commit()
    return [survey_id for task, survey_id in report.handed_over if task == SEND_SMS_TASK]


def send(session: Session, settings: Settings, survey_id: int, now: datetime) -> str:
    provider = TwilioSmsProvider(settings)
    try:
        return send_first_sms(session, settings, provider, survey_id, now, lambda _s: None).result
    finally:
        provider.close()


def circuit(session: Session) -> ProviderCircuit | None:
    return session.scalar(
        select(ProviderCircuit)
        .where(ProviderCircuit.provider == "twilio")
        .execution_options(populate_existing=True)
    )


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, 20003, FailureKind.ACCOUNT),
        (401, None, FailureKind.ACCOUNT),
        (403, 20403, FailureKind.ACCOUNT),
        (400, 30002, FailureKind.ACCOUNT),
        (400, 21606, FailureKind.ACCOUNT),
        (429, 20429, FailureKind.TRANSIENT),
        (500, None, FailureKind.TRANSIENT),
        (503, 20503, FailureKind.TRANSIENT),
        (400, 21211, FailureKind.PERMANENT),
        (400, 21610, FailureKind.PERMANENT),
        (400, 30006, FailureKind.PERMANENT),
        (400, 29999, FailureKind.PERMANENT),
    ],
)
def test_errors_are_classified_by_who_must_act(status: int, code: int, kind: FailureKind) -> None:
    assert classify(status, code) is kind


def test_a_rotated_token_pauses_sending_and_fails_no_survey(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    phones = [f"+7916123450{n}" for n in range(4)]
    visits = [
        record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=p) for p in phones
    ]
    ids = claim(session, settings, NOON_MSK)
    assert len(ids) == 4
    for _ in range(2):
        fake.fail_next("messages", 401, 20003)

    # The first refusal opens the circuit; the tasks queued before it do not call Twilio.
    assert [send(session, settings, i, NOON_MSK) for i in ids] == ["paused"] * 4
    assert len(fake.messages()) == 1
    row = circuit(session)
    assert row is not None and row.state == "open" and row.error_code == "20003"
    assert row.next_probe_at == NOON_MSK + timedelta(seconds=60)
    assert {survey_of(session, v).status for v in visits} == {SurveyStatus.SCHEDULED}

    # Until the probe is due, the sweep hands over nothing; then exactly one probe.
    assert claim(session, settings, NOON_MSK + timedelta(seconds=30)) == []
    report = sweep(session, settings, NOON_MSK + timedelta(seconds=61))
    session.commit()
    probe = [i for _, i in report.handed_over]
    assert len(probe) == 1 and report.paused == 3
    assert claim(session, settings, NOON_MSK + timedelta(seconds=62)) == []
    assert send(session, settings, probe[0], NOON_MSK + timedelta(seconds=62)) == "paused"
    assert len(fake.messages()) == 2, "the probe was refused too"

    # The token is fixed: the next probe goes out, closes the circuit, the rest follow.
    later = NOON_MSK + timedelta(seconds=125)
    probe = claim(session, settings, later)
    assert len(probe) == 1 and send(session, settings, probe[0], later) == "sent"
    assert circuit(session).state == "closed"
    rest = claim(session, settings, later)
    assert len(rest) == 3
    assert [send(session, settings, i, later) for i in rest] == ["sent"] * 3

    delivered = Counter(r.params["To"] for r in fake.messages() if r.sid)
    assert delivered == Counter(phones), "each customer exactly once"
    assert {survey_of(session, v).status for v in visits} == {SurveyStatus.ACTIVE}
    outcomes = Counter(a.outcome for v in visits for a in survey_of(session, v).attempt_log)
    assert outcomes == {"refused": 2, "sent": 4}


def test_provider_errors_are_retried_until_the_survey_would_be_too_late(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    # Ten tries of 500s (twice the old limit of five), then Twilio answers: sent once.
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    now = NOON_MSK
    for _ in range(10):
        fake.fail_next("messages", 500)
    results = []
    while True:
        [survey_id] = claim(session, settings, now)
        results.append(send(session, settings, survey_id, now))
        if results[-1] != "retry":
            break
        now = survey_of(session, visit).due_at
    assert results == ["retry"] * 10 + ["sent"]
    assert now - NOON_MSK < timedelta(hours=3), "the backoff stays bounded"
    assert [r.sid is not None for r in fake.messages()] == [False] * 10 + [True]

    # With a short lateness limit the survey is given up before it would be too late.
    short = dataclasses.replace(settings, sms_survey_max_lateness_hours=2)
    start = now + minutes(1)  # the clock only moves forward (the rate limit's slots)
    late = record_visit(session, settings, ended_at=start - minutes(61), phone="+79160000001")
    deadline = start - minutes(61) + timedelta(hours=2)
    now, result = start, "retry"
    while result == "retry":
        fake.fail_next("messages", 503)
        [survey_id] = claim(session, short, now)
        result = send(session, short, survey_id, now)
        assert now <= deadline
        now = survey_of(session, late).due_at or now
    survey = survey_of(session, late)
    assert result == "failed" and survey.status is SurveyStatus.FAILED
    assert survey.not_sent_reason.startswith(f"gave up after {survey.attempts} attempts")
    assert survey.attempts >= 4


def test_retry_sends_failed_surveys_again_but_never_one_that_may_have_reached_the_customer(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    refused = record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone="+79160000011")
    timed_out = record_visit(
        session, settings, ended_at=NOON_MSK - minutes(61), phone="+79160000012"
    )
    first, second = claim(session, settings, NOON_MSK)  # in the order of their numbers
    fake.fail_next("messages", 400, 21408)  # sending to the region not enabled yet
    assert send(session, settings, first, NOON_MSK) == "failed"
    fake.hold_next("messages", cap_seconds=1.5)  # answered after the client gave up
    assert send(session, settings, second, NOON_MSK) == "unknown"
    unknown = survey_of(session, timed_out)
    unknown.status, unknown.not_sent_reason = SurveyStatus.FAILED, "closed by hand"
    session.commit()

    later = NOON_MSK + minutes(30)
    report = retry_surveys(
        session,
        settings,
        status=SurveyStatus.FAILED,
        ended_from=NOON_MSK - timedelta(days=1),
        ended_before=NOON_MSK + timedelta(days=1),
        reason="21408",
        actor="admin:ops",
        now=later,
    )
    session.commit()
    assert report.retried == [survey_of(session, refused).id]
    assert report.skipped == {}, "the reason filter left the other out"
    again = retry_surveys(
        session,
        settings,
        status=SurveyStatus.FAILED,
        ended_from=NOON_MSK - timedelta(days=1),
        ended_before=NOON_MSK + timedelta(days=1),
        reason=None,
        actor="admin:ops",
        now=later,
    )
    assert again.retried == []
    assert again.skipped == {"may have reached the customer": [unknown.id]}

    [survey_id] = claim(session, settings, later)
    assert send(session, settings, survey_id, later) == "sent"
    fake.wait_idle()
    sent_to = Counter(r.params["To"] for r in fake.messages())
    assert sent_to == {"+79160000011": 2, "+79160000012": 1}
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "survey.retry"))
    assert (event.actor, event.subject_id) == ("admin:ops", str(survey_id))
    assert "21408" in event.detail["failed_because"]


def test_retry_command_and_admin_endpoint(live_app, database_url: str, tmp_path) -> None:
    from gateway.apikeys import create_api_key
    from gateway.db import utcnow
    from gateway.models import ApiRole

    with live_app.app_context():
        session = live_app.extensions["database"].session()
        settings = live_app.config["SETTINGS"]
        now = utcnow()
        visits = [
            record_visit(session, settings, ended_at=now - minutes(70), phone=f"+7916000002{n}")
            for n in range(2)
        ]
        for visit in visits:
            survey = survey_of(session, visit)
            survey.status, survey.not_sent_reason = SurveyStatus.FAILED, "twilio 21408: region"
        _, admin = create_api_key(session, "ops", ApiRole.ADMIN, None, now)
        _, crm = create_api_key(session, "crm", ApiRole.INTEGRATION, None, now)
        session.commit()
        first, second = (survey_of(session, v).id for v in visits)
        session.close()

    # The visits' day in REPORT_TIMEZONE (the command and the API read dates alike), even
    # just after midnight.
    day = (now - minutes(70)).astimezone(settings.report_zone).date().isoformat()
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    args = ["surveys", "retry", "--status", "failed", "--from", day, "--to", day]
    dry = CliRunner().invoke(main, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "dry run: scheduled again 2" in dry.output
    wrong = CliRunner().invoke(main, [*args[:5], "yesterday", *args[6:]], env=env)
    assert wrong.exit_code != 0 and "use 2026-11-01" in wrong.output

    client = live_app.test_client()
    body = {"status": "failed", "from": day, "to": day}
    forbidden = client.post(
        "/api/v1/surveys/retry", json=body, headers={"Authorization": f"Bearer {crm}"}
    )
    assert forbidden.status_code == 403
    answer = client.post(
        "/api/v1/surveys/retry", json=body, headers={"Authorization": f"Bearer {admin}"}
    )
    assert answer.status_code == 200, answer.json
    assert answer.json == {"retried": [first, second], "skipped": {}, "dry_run": False}
    done = CliRunner().invoke(main, args, env=env)
    assert "scheduled again 0" in done.output, "nothing failed any more"
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        audited = select(AuditEvent.actor).where(AuditEvent.action == "survey.retry")
        assert sorted(session.scalars(audited)) == ["admin:ops", "admin:ops"]


def test_the_retry_endpoint_names_a_period_it_cannot_read(client, make_api_key) -> None:
    admin = {"Authorization": f"Bearer {make_api_key('admin', name='ops')}"}
    for body, field in (
        ({"status": "failed", "from": "2026-11-01", "to": "9999-12-31"}, "to"),
        ({"status": "failed", "from": "yesterday", "to": "2026-11-01"}, "from"),
        ({"status": "sent", "from": "2026-11-01", "to": "2026-11-02"}, "status"),
    ):
        response = client.post("/api/v1/surveys/retry", json=body, headers=admin)
        assert response.status_code == 422, response.json
        assert [e["field"] for e in response.json["errors"]] == [field]


def test_the_retry_command_counts_days_as_the_reports_do(live_app, database_url: str, tmp_path):
    """`--from`/`--to` are days in REPORT_TIMEZONE, as in the API and the reports: a visit at
    00:30 in Moscow is of that Moscow day, though it is the evening before in UTC."""
    from gateway.db import utcnow

    settings = live_app.config["SETTINGS"]
    now = utcnow()
    ended = now.replace(hour=21, minute=30, second=0, microsecond=0)  # 00:30 in Moscow
    if ended > now:
        ended -= timedelta(days=1)  # the last one: within SMS_SURVEY_MAX_LATENESS_HOURS
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        survey = survey_of(session, record_visit(session, settings, ended_at=ended))
        survey.status, survey.not_sent_reason = SurveyStatus.FAILED, "twilio 21408: region"
        session.commit()
        session.close()

    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}

    def dry_run(day: str) -> str:
        args = ["surveys", "retry", "--status", "failed", "--from", day, "--to", day]
        return CliRunner().invoke(main, [*args, "--dry-run"], env=env).output

    local_day = ended.astimezone(settings.report_zone).date()
    assert local_day != ended.date()
    assert "scheduled again 1" in dry_run(local_day.isoformat())
    assert "scheduled again 0" in dry_run(ended.date().isoformat())
