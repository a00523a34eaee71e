"""Delivery from the outbox to a real HTTP receiver on loopback that is down, then up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.webhooks.events import emit
from gateway.webhooks.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from gateway.webhooks.service import (
    LEASE_SECONDS,
    DeliveryReport,
    Outcome,
    Request,
    create_subscription,
    deliver_due,
    post,
)
from tests.webhooks.conftest import Clock, subscribe
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_signature import verify_signature


def test_a_receiver_down_for_ten_minutes_then_up_gets_every_event_once_and_signed(
    client: FlaskClient,
    admin: dict[str, str],
    receiver: Receiver,
    answer_by_sms: Callable[..., Any],
    deliver: Callable[[], DeliveryReport],
    clock: Clock,
    session: Session,
) -> None:
    subscription = subscribe(client, admin, receiver.url, ["survey.completed"])
    visits = [answer_by_sms([score], phone=f"+7916123456{score}") for score in "543"]

    # Down: every try is refused, nothing is lost, the log says why.
    for _ in range(5):
        clock.advance(minutes=2)
        report = deliver()
        assert report.delivered == []
    log = client.get(
        f"/api/v1/webhooks/subscriptions/{subscription['id']}/deliveries", headers=admin
    ).get_json()
    assert [d["status"] for d in log] == ["pending"] * 3
    assert all(d["attempts"] >= 2 and "ConnectionError" in d["last_error"] for d in log)

    # Up again: within the next sweeps every event arrives, once.
    receiver.start()
    for _ in range(40):
        clock.advance(minutes=1)
        deliver()
        if len(receiver.received) >= 3:
            break
    clock.advance(hours=30)
    deliver()  # nothing is left to send: no event comes twice

    events = receiver.events()
    assert len(events) == 3
    assert Counter(e["id"] for e in events).most_common(1)[0][1] == 1
    assert {e["data"]["interaction"]["id"] for e in events} == {v.id for v in visits}
    assert sorted(e["data"]["survey"]["scores"]["overall"] for e in events) == [3, 4, 5]
    assert {e["type"] for e in events} == {"survey.completed"}
    for request in receiver.received:
        assert request.headers["Survey-Gateway-Event"] == "survey.completed"
        assert request.headers["Survey-Gateway-Event-Id"] == request.json()["id"]
        assert verify_signature(
            subscription["secret"], request.headers["Survey-Gateway-Signature"], request.body
        )
    statuses = session.scalars(select(WebhookDelivery.status)).all()
    assert statuses == ["delivered"] * 3


def test_a_receiver_failing_for_a_day_pauses_its_subscription_and_loses_nothing(
    client: FlaskClient,
    admin: dict[str, str],
    receiver: Receiver,
    answer_by_sms: Callable[..., Any],
    deliver: Callable[[], DeliveryReport],
    clock: Clock,
    settings: Any,
) -> None:
    receiver.status = 503
    receiver.start()
    subscription = subscribe(client, admin, receiver.url, ["survey.completed"])
    path = f"/api/v1/webhooks/subscriptions/{subscription['id']}"
    answer_by_sms(["2"])

    sweeps = 0
    while client.get(path, headers=admin).get_json()["status"] == "active":
        clock.advance(hours=1)
        deliver()
        sweeps += 1
        assert sweeps < 60
    paused = client.get(path, headers=admin).get_json()
    assert "24 h" in paused["paused_reason"]
    assert paused["deliveries"] == {"pending": 0, "delivered": 0, "failed": 1}
    (failed,) = client.get(path + "/deliveries", headers=admin).get_json()
    detail = client.get(path + f"/deliveries/{failed['id']}", headers=admin).get_json()
    assert len(detail["attempt_log"]) == failed["attempts"]
    assert failed["attempts"] > settings.webhook_retry_hours  # retried the whole day, not less
    assert {a["status_code"] for a in detail["attempt_log"]} == {503}

    # While paused, new events collect and nothing is sent.
    answer_by_sms(["5"])
    sent_before = len(receiver.received)
    deliver()
    assert len(receiver.received) == sent_before

    # The receiver is fixed; resuming sends what waited, re-delivery the failed one.
    receiver.status = 200
    assert client.patch(path, json={"status": "active"}, headers=admin).status_code == 200
    deliver()
    assert [e["data"]["survey"]["scores"]["overall"] for e in receiver.events()[sent_before:]] == [
        5
    ]
    response = client.post(path + "/redeliver-failed", headers=admin)
    assert response.get_json() == {"count": 1}
    deliver()
    redelivered = receiver.events()[-1]
    assert redelivered["id"] == failed["event_id"]  # the same event, under its own id
    assert client.get(path, headers=admin).get_json()["deliveries"] == {
        "pending": 0,
        "delivered": 2,
        "failed": 0,
    }


def test_one_delivery_can_be_sent_again_by_hand_under_the_same_event_id(
    client: FlaskClient,
    admin: dict[str, str],
    receiver: Receiver,
    answer_by_sms: Callable[..., Any],
    deliver: Callable[[], DeliveryReport],
) -> None:
    receiver.start()
    subscription = subscribe(client, admin, receiver.url, ["survey.completed"])
    answer_by_sms(["4"])
    deliver()
    (delivery,) = client.get(
        f"/api/v1/webhooks/subscriptions/{subscription['id']}/deliveries", headers=admin
    ).get_json()
    assert delivery["status"] == "delivered"

    response = client.post(
        f"/api/v1/webhooks/subscriptions/{subscription['id']}/deliveries/{delivery['id']}"
        "/redeliver",
        headers=admin,
    )
    assert response.status_code == 202
    deliver()
    first, again = receiver.received
    assert first.body == again.body
    assert again.headers["Survey-Gateway-Event-Id"] == delivery["event_id"]


def test_no_subscription_no_outbox_rows(
    answer_by_sms: Callable[..., Any], session: Session
) -> None:
    answer_by_sms(["5"])
    assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_a_sweep_whose_lease_ran_out_leaves_to_the_next_sweep_what_it_took_over(
    live_app: Flask, receiver: Receiver
) -> None:
    """Sweep A claims two deliveries, then stalls on the first receiver's answer past its
    lease; sweep B, in another process, takes the second over and sends it. A, resuming,
    must not send it again (the second would reach the receiver twice)."""
    receiver.start()
    settings = live_app.config["SETTINGS"]
    database = live_app.extensions["database"]
    start = utcnow()
    with live_app.app_context():
        setup = database.session_factory()
        subscription = create_subscription(
            setup, url=receiver.url, events=["survey.completed"], actor="test", now=start
        )
        for n in (1, 2):
            emit(setup, "survey.completed", {"n": n}, start, subscriptions=[subscription])
        setup.commit()
        setup.close()

        a_times = iter([start, *(start + timedelta(seconds=10) for _ in range(20))])
        b_now = start + timedelta(seconds=LEASE_SECONDS + 5)  # A's claim has run out
        other_sweep: list[DeliveryReport] = []

        def stalling_send(request: Request, timeout: float) -> Outcome:
            outcome = post(request, timeout)
            if not other_sweep:  # the answer takes longer than the lease: B sweeps meanwhile
                b_session = database.session_factory()
                other_sweep.append(deliver_due(b_session, settings, lambda: b_now))
                b_session.close()
            return outcome

        a_session = database.session_factory()
        report = deliver_due(a_session, settings, lambda: next(a_times), send=stalling_send)
        a_session.close()

    assert len(report.delivered) == 1 and len(other_sweep[0].delivered) == 1
    sent = Counter(r.json()["data"]["n"] for r in receiver.received)
    assert sent == {1: 1, 2: 1}


def test_metrics_show_what_waits_for_a_receiver_that_is_down(
    client: FlaskClient,
    admin: dict[str, str],
    receiver: Receiver,
    session: Session,
    deliver: Callable[[], DeliveryReport],
    clock: Clock,
) -> None:
    subscription = subscribe(client, admin, receiver.url, ["survey.completed"])
    row = session.get(WebhookSubscription, subscription["id"])
    for n in (1, 2):
        emit(
            session,
            "survey.completed",
            {"n": n},
            utcnow() - timedelta(minutes=10),
            subscriptions=[row],
        )
    session.commit()
    deliver()  # refused: the receiver is down

    def figure(name: str) -> float | None:
        text = client.get("/metrics").get_data(as_text=True)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels.get("subscription") in (
                    None,
                    str(subscription["id"]),
                ):
                    return float(sample.value)
        return None

    assert figure("survey_gateway_webhook_deliveries_pending") == 2
    age = figure("survey_gateway_webhook_oldest_pending_age_seconds")
    assert age is not None and age >= 600
    assert figure("survey_gateway_webhook_subscriptions_paused") == 0

    receiver.start()
    clock.advance(minutes=5)
    assert len(deliver().delivered) == 2
    assert figure("survey_gateway_webhook_deliveries_pending") is None


def test_the_beats_delivery_task_posts_what_is_due_and_says_so(
    app: Flask, client: FlaskClient, admin: dict[str, str], receiver: Receiver, session: Session
) -> None:
    from gateway.webhooks.tasks import deliver_webhooks

    receiver.start()
    subscribe(client, admin, receiver.url, ["incident.opened"])
    emit(session, "incident.opened", {"incident": {"id": 3}}, utcnow())
    session.commit()
    with app.app_context():
        summary = deliver_webhooks.run()
    assert summary == "delivered 1, to retry 0, failed 0, subscriptions paused 0"
    assert [event["data"] for event in receiver.events()] == [{"incident": {"id": 3}}]
