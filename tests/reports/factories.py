"""Rows for report tests: operators, teams, customers, interactions and surveys with answers.

Written through the ORM as the gateway writes them, so the reports' rollup follows them; an
ended survey's score is frozen as `survey_state.finish` freezes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import (
    Answer,
    Customer,
    Interaction,
    InteractionChannel,
    Operator,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
    Team,
)
from gateway.reports.scoring import freeze_score
from ivr_flows import Flow, load_flows, parse_flow

_numbers = itertools.count(1)

# A flow with an NPS question and the importance set, for the figures that need them.
NPS_FLOW = parse_flow(
    {
        "key": "test_nps",
        "languages": ["en"],
        "prompts": {
            "greeting": {"en": "Hello"},
            "thanks": {"en": "Thanks"},
            "reprompt_rating": {"en": "1 to 5"},
            "reprompt_importance": {"en": "1 to 5"},
            "reprompt_nps": {"en": "0 to 10"},
        },
        "settings": {"ask_importance": True},
        "questions": [
            {"key": "overall", "type": "rating", "text": {"en": "Overall?"}},
            {
                "key": "cost",
                "parameter": True,
                "operator_controlled": False,
                "weight": 2.0,
                "text": {"en": "Cost?"},
            },
            {"key": "speed", "parameter": True, "weight": 1.0, "text": {"en": "Speed?"}},
            {"key": "politeness", "parameter": True, "weight": 3.0, "text": {"en": "Polite?"}},
            {
                "key": "importance_cost",
                "type": "importance",
                "importance_of": "cost",
                "text": {"en": "Cost matters?"},
            },
            {
                "key": "importance_speed",
                "type": "importance",
                "importance_of": "speed",
                "text": {"en": "Speed matters?"},
            },
            {
                "key": "importance_politeness",
                "type": "importance",
                "importance_of": "politeness",
                "text": {"en": "Politeness matters?"},
            },
            {"key": "nps", "type": "nps", "text": {"en": "Recommend us, 0 to 10?"}},
        ],
    }
)


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    """A UTC moment on an ISO date."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


class Seeder:
    """Creates related rows with sensible defaults; every method flushes."""

    def __init__(self, session: Session, numbers: Iterator[int] = _numbers) -> None:
        """`numbers` number the customers and contacts (unique keys): the tests of one
        process share one count; a database made in another process and copied (the
        seeded month) needs a range of its own."""
        self.session = session
        self.numbers = numbers

    def team(self, name: str) -> Team:
        found = self.session.scalar(select(Team).where(Team.name == name))
        if found is None:
            found = Team(name=name)
            self.session.add(found)
            self.session.flush()
        return found

    def operator(
        self, external_id: str, team: str | None = None, name: str | None = None
    ) -> Operator:
        operator = Operator(
            external_id=external_id,
            name=name or f"Operator {external_id}",
            team=self.team(team) if team else None,
        )
        self.session.add(operator)
        self.session.flush()
        return operator

    def customer(
        self, external_id: str | None = None, phone: str | None = None, *, flush: bool = True
    ) -> Customer:
        n = next(self.numbers)
        customer = Customer(
            external_id=external_id or f"crm-{n}", phone=phone or f"+7916{n:07d}", language="ru"
        )
        self.session.add(customer)
        if flush:
            self.session.flush()
        return customer

    def contact(
        self,
        operator: Operator | None,
        ended_at: datetime,
        *,
        channel: str = "call",
        office: str | None = None,
        customer: Customer | None = None,
        disposition: str | None = None,
        flush: bool = True,
    ) -> Interaction:
        """An interaction with no survey."""
        interaction = Interaction(
            channel=InteractionChannel(channel),
            external_id=f"contact-{next(self.numbers)}",
            ended_at=ended_at,
            operator=operator,
            team=operator.team if operator else None,
            customer=customer,
            office=office,
            disposition=disposition,
        )
        self.session.add(interaction)
        if flush:
            self.session.flush()
        return interaction

    def survey(
        self,
        operator: Operator | None,
        answers: Mapping[str, int | None],
        ended_at: datetime,
        *,
        status: str = "completed",
        channel: str = "call",
        office: str | None = None,
        customer: Customer | None = None,
        flow: str = "post_call",
        disposition: str | None = None,
        excluded: str | None = None,
        flush: bool = True,
    ) -> SurveySession:
        """An interaction and its survey with these answers (None: asked and skipped)."""
        customer = customer or self.customer(flush=False)
        interaction = self.contact(
            operator,
            ended_at,
            channel=channel,
            office=office,
            customer=customer,
            disposition=disposition,
            flush=False,
        )
        survey = SurveySession(
            interaction=interaction,
            customer=customer,
            channel=SurveyChannel.SMS if channel == "office_visit" else SurveyChannel.IVR,
            kind=SurveyKind.SMS if channel == "office_visit" else SurveyKind.POST_CALL,
            flow=flow,
            language="ru",
            status=SurveyStatus(status),
            attempts=1,
            started_at=ended_at if answers else None,
            finished_at=ended_at if SurveyStatus(status).is_final else None,
            answers=[
                Answer(question_key=key, value=value, answered_at=ended_at)
                for key, value in answers.items()
            ],
        )
        self.session.add(survey)  # scored with the flows of the session's app
        if survey.status.is_final:
            freeze_score(survey, ended_at, answers=answers)
        if excluded:
            survey.excluded_at, survey.excluded_by, survey.exclusion_reason = (
                ended_at,
                "admin:test",
                excluded,
            )
        if flush:
            self.session.flush()
        return survey


# The shipped flows and the test NPS flow: what an app runs that has its file too.
NPS_FLOWS: dict[str, Flow] = {**load_flows(), NPS_FLOW.key: NPS_FLOW}


def session_with_flows(app: Any, flows: Mapping[str, Flow]) -> Session:
    """A session in the test's transaction as an app built with `flows` makes it: the app
    restarted with other flow files, without leaving the transaction the test rolls back."""
    return cast(Session, app.extensions["database"].session_factory(info={"flows": flows}))


def report(
    client: Any, headers: dict[str, str], path: str = "/api/v1/reports/operators", **params: Any
) -> Any:
    query = {"from": "2026-09-01", "to": "2026-09-30", **params}
    return client.get(path, query_string=query, headers=headers)
