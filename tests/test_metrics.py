"""GET /metrics: the figures an on-call engineer watches, in Prometheus' text format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from gateway import circuit
from gateway.config import Settings
from gateway.db import utcnow
from sms.providers import TwilioSmsProvider
from sms.service import send_first_sms
from tests.fake_twilio import FakeTwilio
from tests.sms.conftest import minutes, record_visit


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, object]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": "+15005550006",
        "sms_rate_per_second": 100.0,
        "quiet_hours": None,
    }


def scrape(
    client: FlaskClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_show_the_backlog_its_age_the_circuit_and_the_sends(
    client: FlaskClient, session: Session, fake: FakeTwilio
) -> None:
    settings: Settings = client.application.config["SETTINGS"]
    now = utcnow()
    for n in range(3):
        record_visit(session, settings, ended_at=now - minutes(75 + n), phone=f"+7916123450{n}")
    record_visit(session, settings, ended_at=now - minutes(5), phone="+79161234509")
    sent = (
        "survey_gateway_sends_total",
        (("channel", "sms"), ("error_class", "none"), ("outcome", "sent")),
    )

    before = scrape(client)
    assert before[("survey_gateway_due_backlog", ())] == 3
    assert 14 * 60 < before[("survey_gateway_oldest_due_age_seconds", ())] < 20 * 60
    scheduled = ("survey_gateway_surveys", (("channel", "sms"), ("status", "scheduled")))
    assert before[scheduled] == 4
    assert before[("survey_gateway_provider_circuit_open", (("provider", "twilio"),))] == 0

    from gateway.dispatch import sweep

    report = sweep(session, settings, now)
    session.commit()
    provider = TwilioSmsProvider(settings)
    try:
        for _, survey_id in report.handed_over:
            send_first_sms(session, settings, provider, survey_id, now, lambda _s: None)
    finally:
        provider.close()
    circuit.trip(session, "twilio", "twilio 20003: authentication failed", "20003", now, 60)
    session.commit()

    after = scrape(client)
    assert after[("survey_gateway_due_backlog", ())] == 0, "the backlog drained"
    assert after[("survey_gateway_oldest_due_age_seconds", ())] == 0
    assert after[sent] - before.get(sent, 0) == 3
    assert after[("survey_gateway_provider_circuit_open", (("provider", "twilio"),))] == 1
    latency = (
        "survey_gateway_request_duration_seconds_count",
        (("method", "GET"), ("route", "/metrics")),
    )
    assert latency not in after, "the scrape does not time itself"
    client.get("/healthz")
    health = (
        "survey_gateway_request_duration_seconds_count",
        (("method", "GET"), ("route", "/healthz")),
    )
    assert scrape(client)[health] >= 1


def test_metrics_are_for_loopback_or_the_token_holder(app, client: FlaskClient) -> None:
    remote = app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    assert remote.get("/metrics").status_code == 403
    assert client.get("/metrics").status_code == 200  # a Prometheus on this machine

    import dataclasses

    app.config["SETTINGS"] = dataclasses.replace(
        app.config["SETTINGS"], metrics_token="s3cret-token"
    )
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert (
        remote.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    )
