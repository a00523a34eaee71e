"""Twilio Voice webhooks: /voice/survey, its steps, and /voice/status.

Thin: the signature is checked, the form parsed into typed values, the service decides and
renders, the view commits. A webhook Twilio retries gets the stored answer (see service).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, request
from twilio.twiml.voice_response import VoiceResponse

from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.twilio_inbound import form_fields, twilio_signed
from gateway.voice import service, status_callbacks

bp = Blueprint("voice", __name__, url_prefix="/voice")
# The status callback's answer: nothing to do.
_NOTHING = str(VoiceResponse())


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _call() -> service.CallInput:
    form = form_fields()
    call_sid = form.get("CallSid", "").strip()
    if not call_sid:
        abort(400, "CallSid is missing")
    return service.CallInput(
        call_sid=call_sid,
        account_sid=form.get("AccountSid"),
        from_number=form.get("From") or form.get("Caller"),
        to_number=form.get("To") or form.get("Called"),
        direction=form.get("Direction"),
        call_status=form.get("CallStatus"),
        parent_call_sid=form.get("ParentCallSid") or None,
        dial_call_status=form.get("DialCallStatus") or None,
        answered_by=form.get("AnsweredBy") or None,
    )


def _reply(body: str) -> Response:
    current_session().commit()
    return Response(body, mimetype="application/xml")


@bp.post("/survey")
@twilio_signed
def survey() -> Response:
    args = request.args
    params = service.StartParams(
        operator=args.get("operator") or None,
        interaction=args.get("interaction") or None,
        flow=args.get("flow") or None,
        lang=args.get("lang") or None,
        session_id=_int(args.get("session")),
    )
    body = service.start_survey(current_session(), current_settings(), utcnow(), _call(), params)
    return _reply(body)


@bp.post("/survey/step")
@twilio_signed
def survey_step() -> Response:
    survey_id, number = _int(request.args.get("session")), _int(request.args.get("n"))
    if survey_id is None or number is None:
        abort(400, "session and n are required")
    form = form_fields()
    given = service.KeyInput(
        digits=form.get("Digits"),
        recording_url=form.get("RecordingUrl") or None,
        recording_duration=_int(form.get("RecordingDuration")),
    )
    body = service.answer_step(
        current_session(), current_settings(), utcnow(), _call(), survey_id, number, given
    )
    return _reply(body)


@bp.post("/status")
@twilio_signed
def status() -> Response:
    form = form_fields()
    status_callbacks.call_status(
        current_session(),
        current_settings(),
        utcnow(),
        status_callbacks.StatusInput(_call(), error_code=form.get("ErrorCode") or None),
    )
    current_session().commit()
    return Response(_NOTHING, mimetype="application/xml")
