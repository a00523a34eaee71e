"""The core's intake of interactions, as the voice hand-over, the demo and the API call it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.intake import report_interactions
from gateway.interactions import (
    CustomerInput,
    EndedInFuture,
    InteractionInput,
    record_interaction,
)
from gateway.models import Customer, Interaction, InteractionChannel, SurveySession

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def visit(external_id: str, ended_at: datetime) -> InteractionInput:
    return InteractionInput(
        external_id=external_id,
        channel=InteractionChannel.OFFICE_VISIT,
        ended_at=ended_at,
        customer=CustomerInput(phone="+79161234567"),
    )


def rows(session: Session) -> tuple[int | None, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Interaction, Customer, SurveySession)
    )


def test_an_end_in_the_future_is_refused_by_the_core_and_writes_nothing(
    app, session: Session
) -> None:
    settings = app.config["SETTINGS"]
    before = rows(session)

    with pytest.raises(EndedInFuture, match=r"'v-2030'.*in the future.*5 minutes"):
        record_interaction(
            session, visit("v-2030", datetime(2030, 1, 1, tzinfo=UTC)), settings, NOW
        )
    with pytest.raises(EndedInFuture, match="'v-later'"):
        record_interaction(session, visit("v-later", NOW + timedelta(minutes=6)), settings, NOW)
    # A batch (the demo's path) is refused whole, even when only its last item is late.
    batch = [visit("v-ok", NOW - timedelta(hours=1)), visit("v-late", NOW + timedelta(hours=2))]
    with pytest.raises(EndedInFuture, match="'v-late'"):
        report_interactions(session, batch, settings, NOW)

    assert rows(session) == before


def test_a_clock_a_few_minutes_fast_is_tolerated(app, session: Session) -> None:
    settings = app.config["SETTINGS"]

    interaction, created = record_interaction(
        session, visit("v-skew", NOW + timedelta(minutes=4)), settings, NOW
    )
    [result] = report_interactions(
        session, [visit("v-skew-batch", NOW + timedelta(minutes=5))], settings, NOW
    )

    assert created and interaction.ended_at == NOW + timedelta(minutes=4)
    assert result.interaction is not None and result.status == "created"
