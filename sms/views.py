"""Twilio Messaging webhooks: /sms/inbound and /sms/status. Thin: signature, form, service,
TwiML."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from gateway.db import utcnow
from gateway.twilio_webhooks import form_text, twilio_signed, twiml
from sms.conversation import InboundSms, handle_inbound
from sms.service import StatusUpdate, record_status

bp = Blueprint("sms", __name__, url_prefix="/sms")


def _error_code(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


@bp.post("/inbound")
@twilio_signed
def inbound() -> Response:
    """A customer's SMS: answers, keywords; the reply is the TwiML <Message>."""
    form = request.form
    sms = InboundSms(
        message_sid=form.get("MessageSid") or form.get("SmsSid") or "",
        from_number=form.get("From", ""),
        to_number=form.get("To", ""),
        body=form_text("Body"),
    )
    if not sms.message_sid or not sms.from_number:
        return Response("MessageSid and From are required", 400, mimetype="text/plain")
    database = current_app.extensions["database"]
    with database.session_scope() as session:
        reply = handle_inbound(session, current_app.config["SETTINGS"], sms, utcnow())
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return twiml(response)


@bp.post("/status")
@twilio_signed
def status() -> Response:
    """A message status callback: delivery status, never moving backwards."""
    form = request.form
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status_text = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not sid or not status_text:
        return Response("MessageSid and MessageStatus are required", 400, mimetype="text/plain")
    update = StatusUpdate(sid, status_text, _error_code(form.get("ErrorCode")))
    database = current_app.extensions["database"]
    with database.session_scope() as session:
        record_status(session, current_app.config["SETTINGS"], update, utcnow())
    return twiml(MessagingResponse())
