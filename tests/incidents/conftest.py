"""Incidents from low scores, made as real traffic makes them: a contact reported through the
API, its survey answered and finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import survey_state
from gateway.models import Incident, SurveySession, SurveyStatus
from gateway.surveys import record_answer
from ivr_flows.engine import RecordedAnswer
from tests.factories import interaction_payload


@dataclass(frozen=True)
class LowScore:
    interaction_id: int
    survey_id: int
    incident_id: int | None


@pytest.fixture
def low_score(app: Flask, client: FlaskClient, auth: dict[str, str]) -> Callable[..., LowScore]:
    """Report a contact and answer its survey with these scores at `now`; the incident."""

    def make(
        now: datetime,
        overall: int = 1,
        team: str = "Front office",
        operator: str = "op-7",
        channel: str = "office_visit",
        survey: str | None = None,
        comment: str | None = None,
        customer: dict[str, Any] | None = None,
        **parameters: int,
    ) -> LowScore:
        payload = interaction_payload(
            channel=channel,
            survey=survey,
            ended_at=now.isoformat(),
            operator={"external_id": operator, "name": f"Оператор {operator}", "team": team},
            **({"customer": customer} if customer else {}),
        )
        created = client.post("/api/v1/interactions", json=payload, headers=auth)
        assert created.status_code == 201, created.json
        body = created.json
        with app.app_context():
            session = app.extensions["database"].session()
            row = session.get(SurveySession, body["survey"]["id"])
            row.status = SurveyStatus.ACTIVE
            settings = app.config["SETTINGS"]
            record_answer(
                session, row, RecordedAnswer("overall", overall, str(overall)), settings, now
            )
            for key, value in parameters.items():
                record_answer(session, row, RecordedAnswer(key, value, str(value)), settings, now)
            if comment:
                record_answer(session, row, RecordedAnswer("comment", None, comment), settings, now)
            survey_state.finish(row, now, completed=True)
            session.commit()
            incident = session.query(Incident).filter_by(session_id=row.id).one_or_none()
            return LowScore(body["id"], row.id, incident.id if incident else None)

    return make


@pytest.fixture
def headers(make_api_key: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """Authorization headers of a new key of this role (and team)."""

    def make(role: str, team: str | None = None, name: str = "test") -> dict[str, str]:
        return {"Authorization": f"Bearer {make_api_key(role, team=team, name=name)}"}

    return make
