"""Helpers of the SMS tests: visits recorded through the service, a fixed clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.interactions import CustomerInput, InteractionInput, OperatorInput, record_interaction
from gateway.models import Interaction, InteractionChannel, SurveySession

# 12:00 in Moscow, 19:00 in Vladivostok, 11:00 in Kaliningrad: outside 21:00-09:00 everywhere.
NOON_MSK = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def new_sid(prefix: str = "SM") -> str:
    return f"{prefix}{next(_ids):032x}"


def record_visit(
    session: Session,
    settings: Settings,
    *,
    ended_at: datetime,
    phone: str | None = "+79161234567",
    office: str | None = "central",
    language: str = "ru",
    survey: str | None = None,
    customer_id: str | None = None,
    flow: str | None = None,
    channel: InteractionChannel = InteractionChannel.OFFICE_VISIT,
) -> Interaction:
    """An office visit (or call) as the API records it; its survey is planned as in production."""
    n = next(_ids)
    given = InteractionInput(
        external_id=f"visit-{n}",
        channel=channel,
        ended_at=ended_at,
        operator=OperatorInput("op-1", "Anna", "Front office"),
        customer=CustomerInput(phone=phone, external_id=customer_id, language=language),
        office=office,
        survey=survey,
        flow=flow,
    )
    interaction, _ = record_interaction(session, given, settings, ended_at)
    session.commit()
    return interaction


def survey_of(session: Session, interaction: Interaction) -> SurveySession:
    """The interaction's survey as the database has it now (webhooks close the test's session,
    so rows are looked up again rather than refreshed)."""
    survey = session.scalar(
        select(SurveySession)
        .where(SurveySession.interaction_id == interaction.id)
        .execution_options(populate_existing=True)
    )
    assert survey is not None
    return survey


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def settings(app: Any) -> Settings:
    return app.config["SETTINGS"]  # type: ignore[no-any-return]
