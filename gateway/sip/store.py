"""The SIP channel's way to the database: each call's steps, one short transaction each.

Runs in worker threads (SQLAlchemy sessions are blocking), so the event loop keeps sending
RTP while a step commits. The survey's position is committed with every answer: a restart
of the SIP process loses at most the call in progress, never an answer already given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from gateway.config import Settings
from gateway.db import Database, utcnow
from gateway.models import SurveyStatus
from gateway.phone_surveys import (
    HandedOverCall,
    OpenedSurvey,
    apply_given,
    close_call_survey,
    locked_survey,
    open_handed_over_survey,
)
from gateway.surveys import flow_state
from ivr_flows import FlowState
from ivr_flows.engine import Given, Step

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepTaken:
    step: Step
    state: FlowState


class SurveyStore:
    def __init__(self, app: Flask) -> None:
        self._app = app
        self._database: Database = app.extensions["database"]
        self.settings: Settings = app.config["SETTINGS"]

    def open(self, call: HandedOverCall) -> OpenedSurvey | None:
        with self._app.app_context(), self._database.session_scope() as session:
            return open_handed_over_survey(session, self.settings, utcnow(), call)

    def give(self, survey_id: int, provider_id: str, given: Given) -> StepTaken | None:
        """Apply the caller's input; None when the survey is no longer this call's to run."""
        with self._app.app_context(), self._database.session_scope() as session:
            survey = locked_survey(session, survey_id)
            if (
                survey is None
                or survey.provider_id != provider_id
                or survey.status is not SurveyStatus.ACTIVE
            ):
                return None
            step = apply_given(session, self.settings, utcnow(), survey, given)
            return StepTaken(step, flow_state(survey))

    def end(self, survey_id: int, provider_id: str) -> str | None:
        """The call is over; the survey's final status, or None if it was not this call's."""
        with self._app.app_context(), self._database.session_scope() as session:
            survey = locked_survey(session, survey_id)
            if survey is None or survey.provider_id != provider_id:
                return None
            close_call_survey(survey, utcnow())
            return survey.status.value
