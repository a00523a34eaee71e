"""Unknown send outcomes reconciled with Twilio's message list: found means sent (once), not
found after the safe delay means sent again (once). Through the real SDK to the fake Twilio."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.dispatch import RECONCILE_SMS_TASK, SEND_SMS_TASK, sweep
from gateway.models import Message, SurveyStatus
from sms.providers import TwilioSmsProvider
from sms.reconcile import reconcile_survey
from sms.service import send_first_sms
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import NOON_MSK, minutes, record_visit, survey_of
from tests.twilio_openapi import (
    assert_matches_twilio_openapi,
    openapi_available,
    require_twilio_openapi,
    response_problems,
)

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
        "twilio_timeout_seconds": 0.5,
        "sms_rate_per_second": 1000.0,
        "sms_reconcile_after_seconds": 120.0,
    }


def handed(session: Session, settings: Settings, now: datetime, task: str) -> list[int]:
    report = sweep(session, settings, now)
    session.commit()
    return [survey_id for name, survey_id in report.handed_over if name == task]


def test_timeouts_with_and_without_acceptance_end_with_each_customer_getting_it_once(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    phones = [f"+7916123460{n}" for n in range(6)]
    visits = {
        p: record_visit(session, settings, ended_at=NOON_MSK - minutes(61), phone=p) for p in phones
    }
    provider = TwilioSmsProvider(settings)
    try:
        ids = handed(session, settings, NOON_MSK, SEND_SMS_TASK)
        assert len(ids) == 6
        for n, survey_id in enumerate(ids):
            # Every answer comes after the client gave up; every other one is a refusal that
            # the client never sees: Twilio did not accept that message.
            fake.hold_next("messages", cap_seconds=0.8)
            if n % 2:
                fake.fail_next("messages", 500)
            result = send_first_sms(session, settings, provider, survey_id, NOON_MSK, lambda _: 0)
            assert result.result == "unknown"
        fake.wait_idle()
        accepted = {r.params["To"] for r in fake.messages() if r.sid}
        assert len(accepted) == 3
        assert {survey_of(session, v).delivery_status for v in visits.values()} == {"unknown"}

        # Not before the safe delay; then once per survey, whoever sweeps.
        assert handed(session, settings, NOON_MSK + minutes(1), RECONCILE_SMS_TASK) == []
        later = NOON_MSK + minutes(3)
        checks = handed(session, settings, later, RECONCILE_SMS_TASK)
        assert sorted(checks) == sorted(ids)
        assert handed(session, settings, later, RECONCILE_SMS_TASK) == []
        outcomes = Counter(
            reconcile_survey(session, settings, provider, survey_id, later) for survey_id in checks
        )
        assert outcomes == {"found": 3, "resend": 3}

        for phone in accepted:
            survey = survey_of(session, visits[phone])
            assert survey.status is SurveyStatus.ACTIVE and survey.provider_id
            assert [a.outcome for a in survey.attempt_log] == ["sent"]
            message = session.scalar(
                select(Message).where(Message.provider_sid == survey.provider_id)
            )
            assert message is not None and message.phone == phone

        resend = handed(session, settings, later, SEND_SMS_TASK)
        assert len(resend) == 3
        for survey_id in resend:
            outcome = send_first_sms(session, settings, provider, survey_id, later, lambda _: 0)
            assert outcome.result == "sent"
    finally:
        provider.close()

    delivered = Counter(r.params["To"] for r in fake.messages() if r.sid)
    assert delivered == Counter(phones), "0 twice, 0 never"
    for phone in set(phones) - accepted:
        survey = survey_of(session, visits[phone])
        assert [a.outcome for a in survey.attempt_log] == ["not_accepted", "sent"]
    listing = fake.requests_to("message_list")[0]
    assert listing.query["To"] and "DateSent>" in listing.query
    if openapi_available():
        assert_matches_twilio_openapi(listing)
        # The description calls the page links URIs, and its own examples (like Twilio) give
        # them relative: only that is let through.
        problems = response_problems(listing, require_twilio_openapi())
        assert [p for p in problems if "_uri=" not in p and "uri=" not in p] == []


def test_an_unavailable_message_list_asks_again_at_the_next_sweep(
    session: Session, settings: Settings, fake: FakeTwilio
) -> None:
    visit = record_visit(session, settings, ended_at=NOON_MSK - minutes(61))
    provider = TwilioSmsProvider(settings)
    try:
        [survey_id] = handed(session, settings, NOON_MSK, SEND_SMS_TASK)
        fake.hold_next("messages", cap_seconds=0.8)
        send_first_sms(session, settings, provider, survey_id, NOON_MSK, lambda _: 0)
        fake.wait_idle()
        later = NOON_MSK + minutes(3)
        assert handed(session, settings, later, RECONCILE_SMS_TASK) == [survey_id]
        fake.fail_next("message_list", 503)
        assert reconcile_survey(session, settings, provider, survey_id, later) == "later"
        assert survey_of(session, visit).delivery_status == "unknown"
        again = later + timedelta(seconds=5)
        assert handed(session, settings, again, RECONCILE_SMS_TASK) == [survey_id]
        assert reconcile_survey(session, settings, provider, survey_id, again) == "found"
    finally:
        provider.close()
    assert len([r for r in fake.messages() if r.sid]) == 1
