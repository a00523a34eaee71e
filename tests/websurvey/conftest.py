"""Helpers of the web survey tests: interactions posted through the API with a web survey."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import PUBLIC_BASE_URL
from tests.factories import interaction_payload


@pytest.fixture
def post_web(client: FlaskClient, auth: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """Record a completed request with `"survey": "web"`; returns the API's answer."""

    def post(**overrides: Any) -> dict[str, Any]:
        payload = interaction_payload(channel="request", survey="web", **overrides)
        response = client.post("/api/v1/interactions", json=payload, headers=auth)
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    return post


def path_of(resource: dict[str, Any]) -> str:
    """The survey page's path, from the link the API returned."""
    url = resource["survey"]["link"]["url"]
    assert url.startswith(PUBLIC_BASE_URL + "/r/")
    return url.removeprefix(PUBLIC_BASE_URL)


def buttons(html: str) -> list[str]:
    return re.findall(r'<button type="submit" name="value" value="(\d+)"', html)


def question_key(html: str) -> str:
    found = re.search(r'name="question" value="([^"]+)"', html)
    assert found, html
    return found.group(1)
