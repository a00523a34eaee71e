"""What every Twilio webhook shares: the signature check and the URL Twilio signed."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, request
from twilio.request_validator import RequestValidator

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def signed_url() -> str:
    """The URL as Twilio called it: PUBLIC_BASE_URL (what is behind a TLS proxy is not)
    with this request's path and query string."""
    base = current_app.config["SETTINGS"].public_base_url.rstrip("/")
    query = request.query_string.decode()
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def signature_is_valid() -> bool:
    settings = current_app.config["SETTINGS"]
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    validator = RequestValidator(settings.webhook_auth_token())
    return bool(validator.validate(signed_url(), request.form, signature))


def twilio_signed(view: F) -> F:
    """403 and nothing done unless X-Twilio-Signature is Twilio's signature of this request."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not current_app.config["SETTINGS"].insecure_skip_twilio_signature and not (
            signature_is_valid()
        ):
            logger.warning("rejected %s: missing or wrong X-Twilio-Signature", request.path)
            return Response("invalid or missing X-Twilio-Signature", 403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]


def twiml(body: Any) -> Response:
    """A TwiML document (a VoiceResponse or MessagingResponse) as the webhook's answer."""
    return Response(str(body), mimetype="application/xml")
