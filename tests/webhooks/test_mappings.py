"""The ready-made mappings of docs/webhooks.md, delivered to local fakes of a CRM and of a
Bitrix24 portal's incoming webhook."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.webhooks.service import DeliveryReport
from tests.webhooks.conftest import subscribe
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_events import NPS_REPLIES
from tests.webhooks.test_signature import verify_signature


class FakeCrm(Receiver):
    """Contacts as a CRM would hold them after applying each update."""

    def contacts(self) -> dict[str, dict[str, Any]]:
        held: dict[str, dict[str, Any]] = {}
        for update in self.events():
            key = update["contact"]["external_id"] or update["contact"]["phone"]
            held.setdefault(key, {}).update(update["fields"])
        return held


@pytest.fixture
def crm() -> Iterator[FakeCrm]:
    fake = FakeCrm("/api/contacts/satisfaction")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def bitrix() -> Iterator[Receiver]:
    fake = Receiver("/rest/1/abcdef123456/tasks.task.add.json")
    fake.reply = b'{"result":{"task":{"id":"101"}},"time":{"duration":0.1}}'
    fake.start()
    yield fake
    fake.stop()


def test_the_crm_gets_each_customers_nps_class_and_last_scores(
    client: FlaskClient,
    admin: dict[str, str],
    crm: FakeCrm,
    answer_by_sms: Callable[..., Any],
    deliver: Callable[[], DeliveryReport],
) -> None:
    subscription = subscribe(
        client, admin, crm.url, ["survey.completed", "customer.nps_changed"], format="crm.contact"
    )
    answer_by_sms([*NPS_REPLIES, "6"], flow="post_call_nps", customer_id="crm-4411")
    answer_by_sms(["4"], customer_id="crm-4411", phone="+79161234568")
    answer_by_sms(["5"], phone="+79169990011")  # a walk-in the CRM knows by phone only
    deliver()

    contacts = crm.contacts()
    assert contacts["crm-4411"]["nps_class"] == "detractor"
    assert contacts["crm-4411"]["nps_score"] == 6
    assert contacts["crm-4411"]["last_scores"] == {"overall": 4}
    assert contacts["+79169990011"]["last_scores"] == {"overall": 5}
    assert "nps_class" not in contacts["+79169990011"]
    for request in crm.received:
        assert verify_signature(
            subscription["secret"], request.headers["Survey-Gateway-Signature"], request.body
        )


def test_a_score_of_one_becomes_a_bitrix24_task(
    client: FlaskClient,
    admin: dict[str, str],
    bitrix: Receiver,
    answer_by_sms: Callable[..., Any],
    deliver: Callable[[], DeliveryReport],
) -> None:
    subscribe(
        client,
        admin,
        bitrix.url,
        ["incident.opened"],
        format="bitrix24.task",
        options={"responsible_id": 17, "group_id": 4},
    )
    answer_by_sms(["1"], customer_id="crm-4411")
    answer_by_sms(["4"])  # no incident, no task
    deliver()

    (request,) = bitrix.received
    assert request.path == "/rest/1/abcdef123456/tasks.task.add.json"
    fields = request.json()["fields"]
    assert fields["TITLE"].startswith("Низкая оценка 1 из 5")
    assert fields["RESPONSIBLE_ID"] == 17
    assert fields["GROUP_ID"] == 4
    assert "+79161234567" in fields["DESCRIPTION"]
    assert "Anna" in fields["DESCRIPTION"]  # the operator
    incident = client.get("/api/v1/incidents", headers=admin).get_json()[0]
    opened = datetime.fromisoformat(incident["opened_at"])
    assert datetime.fromisoformat(fields["DEADLINE"]) == opened + timedelta(hours=24)
    assert f"Инцидент №{incident['id']}" in fields["DESCRIPTION"]
