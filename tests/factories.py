"""Realistic payloads and rows for tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

_counter = itertools.count(1)


def interaction_payload(**overrides: Any) -> dict[str, Any]:
    """A POST /api/v1/interactions body as a PBX or office queue would send it."""
    n = next(_counter)
    ended = datetime.now(UTC) - timedelta(minutes=5)
    payload: dict[str, Any] = {
        "external_id": f"visit-{n:06d}",
        "channel": "office_visit",
        "ended_at": ended.isoformat(),
        "operator": {"external_id": "op-7", "name": "Анна Петрова", "team": "Front office"},
        "customer": {"phone": "8 (916) 123-45-67", "name": "Иван", "language": "ru"},
        "office": "central",
    }
    for key, value in overrides.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload
