"""SMS webhooks. Twilio Messaging: /sms/inbound and /sms/status (signature, form, service,
TwiML). SMSC.ru: /sms/smsc/<secret>, one handler URL for delivery statuses and incoming SMS,
authenticated by the secret in it and, when configured, SMSC's md5 checksum (sms.smsc).

Thin, as every webhook of the gateway: the request is checked and parsed into a typed value,
the service decides on the request's session, the view commits (an error rolls back when the
request ends) and answers.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.twilio_inbound import form_text, twilio_signed, twiml
from sms.conversation import InboundSms, handle_inbound
from sms.service import StatusUpdate, record_status

logger = logging.getLogger(__name__)

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
    session = current_session()
    reply = handle_inbound(session, current_settings(), sms, utcnow())
    session.commit()
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
    session = current_session()
    record_status(session, current_settings(), update, utcnow())
    session.commit()
    return twiml(MessagingResponse())


MAX_SMSC_FIELD_CHARS = 64
MAX_SMSC_TEXT_CHARS = 1600
REPLY_TASK = "sms.tasks.send_pending_replies"


def _smsc_field(*names: str) -> str:
    for name in names:
        value = request.values.get(name)
        if value is not None:
            return value.strip()
    return ""


@bp.route("/smsc/<secret>", methods=["GET", "POST"])
def smsc_callback(secret: str) -> Response:
    """SMSC's handler: a delivery status (`id`, `phone`, `status`, `err`) or an incoming SMS
    (`sms_id`, `phone`, `mes`, `to`). 403 and nothing done unless the URL carries
    SMSC_CALLBACK_SECRET and, with SMSC_CHECKSUM_SECRET set, the form SMSC's md5 checksum;
    a repeated delivery changes nothing."""
    from gateway.tasking import publish_task
    from sms.conversation import InboundSms, handle_inbound
    from sms.smsc import NAME, checksum_matches, message_sid, status_meaning

    settings = current_settings()
    expected = settings.smsc_callback_secret
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        logger.warning("rejected an SMSC callback: wrong or missing secret in its URL")
        return Response("unknown handler", 403, mimetype="text/plain")
    checksum_secret = settings.smsc_checksum_secret
    if checksum_secret:
        # The handler URL's own md5=<secret> arrives in the query string beside SMSC's md5.
        offered = [v for v in request.values.getlist("md5") if v != checksum_secret]
        if not checksum_matches(request.values, offered, checksum_secret):
            logger.warning(
                "rejected an SMSC callback: its md5 checksum is %s (SMSC_CHECKSUM_SECRET must "
                "be the md5= of the handler URL in SMSC's account settings)",
                "wrong" if offered else "missing",
            )
            return Response("checksum mismatch", 403, mimetype="text/plain")
    text = request.values.get("mes")
    if text is None:
        text = request.values.get("message")
    fields = [v for k, v in request.values.items(multi=True) if k not in {"mes", "message"}]
    if any(len(v) > MAX_SMSC_FIELD_CHARS or "\x00" in v for v in fields):
        return Response("a field is too long or holds a NUL", 400, mimetype="text/plain")
    phone = _smsc_field("phone")
    if phone.isdigit() and len(phone) > 10:
        phone = "+" + phone  # SMSC gives numbers in international format without the "+"
    if text is not None:
        sms_id = _smsc_field("sms_id", "id")
        if not sms_id.isdigit() or not phone:
            return Response("sms_id and phone are required", 400, mimetype="text/plain")
        sms = InboundSms(
            message_sid=f"smsc-in:{sms_id}",
            from_number=phone,
            to_number=_smsc_field("to", "to_phone"),
            body=text.replace("\x00", "")[:MAX_SMSC_TEXT_CHARS],
            reply_status="pending",
        )
        session = current_session()
        reply = handle_inbound(session, settings, sms, utcnow())
        session.commit()  # before the reply's task is queued: it sends what is committed
        if reply:
            try:
                publish_task(REPLY_TASK)
            except Exception:  # the reply stays pending; the next callback's task sends it
                logger.exception("could not queue the reply to an SMSC incoming SMS")
        return Response("OK", mimetype="text/plain")
    sms_id, status_text = _smsc_field("id"), _smsc_field("status")
    status_code = _error_code(status_text.lstrip("-")) if status_text else None
    if not sms_id.isdigit() or status_code is None:
        return Response("id and status are required", 400, mimetype="text/plain")
    status_code = -status_code if status_text.startswith("-") else status_code
    err = _error_code(_smsc_field("err"))
    meaning = status_meaning(status_code, err)
    update = StatusUpdate(
        message_sid(int(sms_id)),
        meaning.status,
        err,
        failure=meaning.failure,
        reason=meaning.reason,
        blacklisted=meaning.blacklisted,
        provider=NAME,
    )
    session = current_session()
    record_status(session, settings, update, utcnow())
    session.commit()
    return Response("OK", mimetype="text/plain")
