"""The SIP channel's way to the database: each call's steps, one short transaction each.

Runs in worker threads (SQLAlchemy sessions are blocking), so the event loop keeps sending
RTP while a step commits. The survey's position is committed with every answer: a restart
of the SIP process loses at most the call in progress, never an answer already given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.db import Database, utcnow
from gateway.models import SurveyAttempt, SurveyChannel, SurveyKind, SurveySession, SurveyStatus
from gateway.phone_surveys import (
    SIP_QUEUED,
    HandedOverCall,
    OpenedSurvey,
    apply_given,
    begin,
    close_call_survey,
    locked_survey,
    open_handed_over_survey,
    settle_callback_try,
)
from gateway.recordings import store_recording
from gateway.surveys import flow_of, flow_state
from ivr_flows import FlowState
from ivr_flows.engine import Given, Step

logger = logging.getLogger(__name__)


DIALLING = "dialling"  # delivery_status of a try a SIP agent has claimed and dials


@dataclass(frozen=True)
class StepTaken:
    step: Step
    state: FlowState


@dataclass(frozen=True)
class Dial:
    """A call-back try a SIP agent claimed: whom to call, and the rows to settle after."""

    survey_id: int
    attempt_id: int
    phone: str
    provider_id: str  # the agent's name for the call (handover.held_by + "out-<attempt>")


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

    def save_recording(
        self, survey_id: int, provider_id: str, question_key: str, pcm: bytes
    ) -> tuple[str, int] | None:
        """Keep the caller's voice comment; its URL and seconds (None: not this call's)."""
        with self._app.app_context(), self._database.session_scope() as session:
            survey = locked_survey(session, survey_id)
            if survey is None or survey.provider_id != provider_id:
                return None
            return store_recording(session, survey_id, question_key, pcm)

    def end(self, survey_id: int, provider_id: str) -> str | None:
        """The call is over; the survey's final status, or None if it was not this call's."""
        with self._app.app_context(), self._database.session_scope() as session:
            survey = locked_survey(session, survey_id)
            if survey is None or survey.provider_id != provider_id:
                return None
            close_call_survey(survey, utcnow())
            return survey.status.value

    def close_left_over(self, held_by: str) -> list[tuple[int, str]]:
        """Close the surveys of calls named `held_by...`: those of this SIP process before it
        was restarted. A call-back that was answered closes by its answers; one still ringing
        counts as a failed try and is called again later. Returns (survey id, status) each."""
        with self._app.app_context(), self._database.session_scope() as session:
            surveys = session.scalars(
                select(SurveySession)
                .where(
                    SurveySession.channel == SurveyChannel.IVR,
                    SurveySession.status.in_((SurveyStatus.ACTIVE, SurveyStatus.SENDING)),
                    SurveySession.provider_id.startswith(held_by, autoescape=True),
                )
                .order_by(SurveySession.id)
                .with_for_update(skip_locked=True)
            ).all()
            now = utcnow()
            for survey in surveys:
                attempt = self._attempt(session, survey)
                if survey.kind is SurveyKind.IVR_CALLBACK and attempt is not None:
                    answered = survey.status is SurveyStatus.ACTIVE
                    outcome = "answered" if answered else "failed"
                    settle_callback_try(session, self.settings, now, survey, attempt, outcome)
                    attempt.detail = attempt.detail or "the SIP agent was restarted"
                elif survey.status is SurveyStatus.ACTIVE:
                    close_call_survey(survey, now)
            return [(survey.id, survey.status.value) for survey in surveys]

    # --- call-back surveys through the PBX ----------------------------------------------

    @staticmethod
    def _attempt(session: Session, survey: SurveySession) -> SurveyAttempt | None:
        """The try in flight of a call-back survey (named by the survey's provider id)."""
        if survey.provider_id is None:
            return None
        return session.scalar(
            select(SurveyAttempt).where(
                SurveyAttempt.provider_id == survey.provider_id,
                SurveyAttempt.session_id == survey.id,
                SurveyAttempt.finished_at.is_(None),
            )
        )

    def claim_dials(self, held_by: str, limit: int) -> list[Dial]:
        """Up to `limit` call-back tries queued for a SIP agent, now this one's to dial.

        SKIP LOCKED: several agents (processes, machines) share the queue, each try once.
        """
        with self._app.app_context(), self._database.session_scope() as session:
            surveys = session.scalars(
                select(SurveySession)
                .where(
                    SurveySession.kind == SurveyKind.IVR_CALLBACK,
                    SurveySession.status == SurveyStatus.SENDING,
                    SurveySession.delivery_status == SIP_QUEUED,
                )
                .order_by(SurveySession.last_sent_at, SurveySession.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            dials = []
            for survey in surveys:
                attempt = self._attempt(session, survey)
                phone = survey.customer.phone if survey.customer else None
                if attempt is None or not phone:
                    survey.delivery_status = "lost"  # not ours to dial; the lease recovers it
                    logger.warning("survey %s: queued for SIP without its try", survey.id)
                    continue
                provider_id = f"{held_by}out-{attempt.id}"
                survey.provider_id = attempt.provider_id = provider_id
                survey.delivery_status = DIALLING
                dials.append(Dial(survey.id, attempt.id, phone, provider_id))
            return dials

    def begin_callback(self, survey_id: int, provider_id: str) -> OpenedSurvey | None:
        """The customer answered: the survey begins (None if the try is no longer current)."""
        with self._app.app_context(), self._database.session_scope() as session:
            survey = locked_survey(session, survey_id)
            if (
                survey is None
                or survey.provider_id != provider_id
                or survey.status is not SurveyStatus.SENDING
            ):
                return None
            survey.delivery_status = "answered"
            step = begin(survey, utcnow())
            session.flush()
            return OpenedSurvey(survey.id, flow_of(survey), survey.language, step)

    def end_callback(
        self,
        survey_id: int,
        provider_id: str,
        outcome: str,
        code: str | None = None,
        *,
        give_back: bool = False,
    ) -> str | None:
        """A call-back try is over; the survey's status after it (None if not this call's).

        `give_back`: the PBX refused the gateway itself (credentials): the try does not count
        against the customer's IVR_CALLBACK_MAX_ATTEMPTS.
        """
        with self._app.app_context(), self._database.session_scope() as session:
            survey = locked_survey(session, survey_id)
            if survey is None or survey.provider_id != provider_id:
                return None
            attempt = self._attempt(session, survey)
            if attempt is None:
                return survey.status.value  # settled already
            if give_back:
                survey.attempts = max(survey.attempts - 1, 0)
            survey.delivery_status = outcome[:20]
            settle_callback_try(session, self.settings, utcnow(), survey, attempt, outcome, code)
            return survey.status.value
