"""Idempotency under concurrency: PBXs retry, and retries race."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway.apikeys import create_api_key
from gateway.db import utcnow
from gateway.models import ApiRole, Customer, Interaction, Operator, SurveySession
from tests.factories import interaction_payload

pytestmark = pytest.mark.both_databases


def test_ten_simultaneous_identical_posts_make_one_row_one_201_and_nine_200s(live_app: Flask):
    with live_app.app_context(), live_app.extensions["database"].session_scope() as session:
        _row, key = create_api_key(session, "pbx", ApiRole.INTEGRATION, None, utcnow())
    payload = interaction_payload()
    start = threading.Barrier(10)
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def post() -> None:
        client = live_app.test_client()
        start.wait()
        response = client.post(
            "/api/v1/interactions", json=payload, headers={"Authorization": f"Bearer {key}"}
        )
        with lock:
            results.append((response.status_code, response.json["id"]))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 9 + [201]
    assert len({interaction_id for _, interaction_id in results}) == 1
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        for model in (Interaction, SurveySession, Customer, Operator):
            assert session.scalar(select(func.count()).select_from(model)) == 1, model
