"""Liveness and readiness, as a load balancer sees them."""

from __future__ import annotations

import pytest

from tests.conftest import make_test_app


def test_healthz_answers_without_a_key(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_ready_on_embedded_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200


def test_ready_with_real_redis_broker(pg_database_url, redis_url, tmp_path):
    app = make_test_app(pg_database_url, tmp_path, redis_url=redis_url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.json
    app.extensions["database"].dispose()


@pytest.mark.parametrize("what", ["database", "broker"])
def test_not_ready_when_a_dependency_is_down(pg_database_url, tmp_path, what):
    unreachable = {
        "database": {"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"},
        "broker": {"redis_url": "redis://127.0.0.1:1/0"},
    }[what]
    overrides = {"database_url": pg_database_url, **unreachable}
    app = make_test_app(overrides.pop("database_url"), tmp_path, **overrides)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert what in " ".join(response.json["problems"]) or (
        what == "broker" and "redis" in " ".join(response.json["problems"])
    )
    app.extensions["database"].dispose()
