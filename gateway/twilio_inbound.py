"""Requests Twilio sends the gateway (its voice and SMS webhooks): the signature check, the
form's limits, the URL Twilio signed, and the TwiML answer.

What the gateway sends Twilio is `gateway.twilio_client`; the webhooks the gateway itself
sends its subscribers are `gateway.webhooks`.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, request
from twilio.request_validator import RequestValidator

from gateway.config import current_settings

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Twilio's ids are two letters and 32 hex digits; anything unlike an id is refused before a
# service stores it (the columns hold 64 characters).
_SID = re.compile(r"[A-Za-z0-9]{1,64}")
SID_FIELDS = (
    "AccountSid",
    "CallSid",
    "ParentCallSid",
    "DialCallSid",
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "MessagingServiceSid",
    "RecordingSid",
)
MAX_FIELD_CHARS = 500  # the longest Twilio field we store is a recording URL
MAX_QUERY_CHARS = 200  # operator and interaction ids in our own callback URLs
# Free text a customer typed may carry a NUL; it is dropped there (see `form_text`).
_FREE_TEXT = frozenset({"Body"})


def signed_url() -> str:
    """The URL as Twilio called it: PUBLIC_BASE_URL (what is behind a TLS proxy is not)
    with this request's path and query string."""
    base = current_settings().public_base_url.rstrip("/")
    query = request.query_string.decode()
    return f"{base}{request.path}" + (f"?{query}" if query else "")


class _SignedFields(dict[str, list[str]]):
    """A webhook's form as the SDK's signature reads it: every value of a field, by the
    `getall` it looks up first (then `getlist`). Werkzeug's form has no `getall`: the
    AttributeError raised and caught on each of a call's some 25 fields cost about 40 % of
    the signature's time."""

    getall = getlist = dict.__getitem__


def signature_is_valid() -> bool:
    settings = current_settings()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    validator = RequestValidator(settings.webhook_auth_token())
    url = signed_url()
    fields = _SignedFields(request.form.lists())
    # Twilio signs the URL as configured; the SDK's `validate` also tries it with the port
    # added or removed, computing the signature twice. The URL as configured is tried first.
    if "bodySHA256" not in request.args and hmac.compare_digest(
        validator.compute_signature(url, fields), signature
    ):
        return True
    return bool(validator.validate(url, fields, signature))


def twilio_signed(view: F) -> F:
    """403 and nothing done unless X-Twilio-Signature is Twilio's signature of this request."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        settings = current_settings()
        if not settings.insecure_skip_twilio_signature and not (signature_is_valid()):
            logger.warning("rejected %s: missing or wrong X-Twilio-Signature", request.path)
            return Response("invalid or missing X-Twilio-Signature", 403, mimetype="text/plain")
        ours = settings.twilio_account_sid
        if ours and form_fields().get("AccountSid") != ours:
            # Signed with our token yet for another account: a sub-account or a replay.
            logger.warning("rejected %s: AccountSid is not this gateway's", request.path)
            return Response("the webhook is for another Twilio account", 403, mimetype="text/plain")
        problem = malformed_field()
        if problem:
            return Response(problem, 400, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]


_SID_FIELDS = frozenset(SID_FIELDS)


def malformed_field() -> str | None:
    """Why the webhook's form cannot be stored (an id unlike Twilio's, a NUL), or None."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    bad_sids: list[str] = []
    problem: str | None = None
    # One pass over the form; an id unlike Twilio's is told first, as SID_FIELDS order them.
    for name, values in req.form.lists():
        if name in _SID_FIELDS and values[0] and not _SID.fullmatch(values[0]):
            bad_sids.append(name)
        if problem is not None or name in _FREE_TEXT:
            continue
        for value in values:
            if "\x00" in value:
                problem = f"{name} contains a NUL character"
                break
            if len(value) > MAX_FIELD_CHARS:
                problem = f"{name} is longer than {MAX_FIELD_CHARS} characters"
                break
    if bad_sids:
        first = min(bad_sids, key=SID_FIELDS.index)
        return f"{first} is not a Twilio id (letters and digits, at most 64)"
    if problem is not None:
        return problem
    if req.query_string:
        for name, value in req.args.items(multi=True):
            if len(value) > MAX_QUERY_CHARS:
                return f"{name} is longer than {MAX_QUERY_CHARS} characters"
    return None


def form_fields() -> dict[str, str]:
    """The webhook's form, each field's first value, as a plain dict, made once a request
    (kept on the request: not in `g`, which requests share while an app context is pushed).
    Werkzeug's form raises and catches a BadRequestKeyError (an HTTP exception, costly to
    make) for each field looked up that Twilio did not send, and a call's webhooks look up
    half a dozen such fields each."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    fields = getattr(req, _FIELDS, None)
    if fields is None:
        fields = req.form.to_dict()
        setattr(req, _FIELDS, fields)
    return cast(dict[str, str], fields)


_FIELDS = "_twilio_fields"


def form_text(name: str) -> str:
    """A free-text field as stored: without NUL characters, which no database column holds."""
    return request.form.get(name, "").replace("\x00", "")


def twiml(body: Any) -> Response:
    """A TwiML document (a VoiceResponse or MessagingResponse) as the webhook's answer."""
    return Response(str(body), mimetype="application/xml")
