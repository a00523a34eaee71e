"""Celery tasks of the IVR: outbound survey calls."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from gateway.config import current_settings
from gateway.db import current_database, utcnow
from gateway.twilio_client import make_twilio_client
from gateway.voice import callback_surveys


def twilio_client(settings: Any) -> Any:
    return make_twilio_client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_api_base_url,
        settings.twilio_timeout_seconds,
    )


# Not acks_late: a worker lost mid-request must not re-send a call Twilio may have placed;
# the session's lease expires instead and the dispatcher claims it again.
@shared_task(name="gateway.voice.tasks.place_survey_call", ignore_result=True)
def place_survey_call(session_id: int) -> str | None:
    """Place the outbound call of a call-back survey the dispatcher claimed (status sending)."""
    database = current_database()
    return callback_surveys.place_survey_call(
        database.session_scope, current_settings(), session_id, utcnow, twilio_client
    )
