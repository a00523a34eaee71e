"""SMS providers behind one interface: `twilio` (the real SDK) and `console` (development).

A provider sends one message and either returns its id and status, or raises `ProviderError`
saying what kind of failure it was, which decides what the gateway does next:

* TRANSIENT: the message was certainly not accepted and may be sent again later (HTTP 429 /
  20429, 5xx, a refused or timed-out connection, delivery errors 30001 queue overflow and
  30003 unreachable handset);
* PERMANENT: sending again cannot help (21211 invalid number, 21614 not a mobile, 21610
  unsubscribed, 30006 landline, 30007 filtered, any other 4xx);
* UNKNOWN: the request may have been accepted and the answer lost (a read timeout, a
  connection dropped after the request was written). Never re-sent: see gateway.dispatch.
"""

from __future__ import annotations

import enum
import logging
import sys
import uuid
from dataclasses import dataclass
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioRestException
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from gateway.config import Settings
from gateway.phones import mask_phone
from gateway.twilio_client import make_twilio_client

logger = logging.getLogger(__name__)


class FailureKind(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


# Twilio error codes: https://www.twilio.com/docs/api/errors
PERMANENT_CODES: dict[int, str] = {
    21211: "invalid phone number",
    21214: "number cannot be reached",
    21408: "sending to this region is not enabled",
    21610: "the recipient unsubscribed (STOP)",
    21612: "number not reachable by SMS",
    21614: "not a mobile number",
    30004: "message blocked",
    30005: "unknown or inactive handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
}
TRANSIENT_CODES: dict[int, str] = {
    20429: "too many requests",
    20500: "provider internal error",
    20503: "provider unavailable",
    30001: "provider queue overflow",
    30003: "unreachable handset",
}
UNSUBSCRIBED = 21610


def classify(http_status: int | None, code: int | None) -> FailureKind:
    """Transient or permanent, from Twilio's error code, else from the HTTP status."""
    if code in TRANSIENT_CODES:
        return FailureKind.TRANSIENT
    if code in PERMANENT_CODES:
        return FailureKind.PERMANENT
    if http_status is not None and (http_status == 429 or http_status >= 500):
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def describe(code: int | None, fallback: str = "") -> str:
    """A short reason for a person: "twilio 21211: invalid phone number"."""
    text = PERMANENT_CODES.get(code or 0) or TRANSIENT_CODES.get(code or 0) or fallback
    return f"twilio {code}: {text}" if code else text or "provider error"


class ProviderError(Exception):
    """A send that failed; `kind` says whether it may be tried again."""

    def __init__(
        self,
        kind: FailureKind,
        reason: str,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.code = code
        self.http_status = http_status


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str


class SmsProvider(Protocol):
    name: str

    @property
    def sender(self) -> str:
        """Who sends: the rate limit is per sender."""
        ...

    def send(self, to: str, body: str, status_callback: str | None) -> SentMessage:
        """Send one SMS or raise ProviderError."""
        ...

    def close(self) -> None: ...


class TwilioSmsProvider:
    """Twilio Programmable Messaging through the SDK's Client (make_twilio_client: an explicit
    timeout, TWILIO_API_BASE_URL honoured)."""

    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            raise ValueError("the twilio provider needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        if not settings.twilio_messaging_service_sid and not settings.twilio_from_number:
            raise ValueError(
                "the twilio provider needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
            )
        self.settings = settings
        self.client = make_twilio_client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_base_url,
            settings.twilio_timeout_seconds,
        )

    @property
    def sender(self) -> str:
        return str(self.settings.twilio_messaging_service_sid or self.settings.twilio_from_number)

    def send(self, to: str, body: str, status_callback: str | None) -> SentMessage:
        sender: dict[str, str] = (
            {"messaging_service_sid": self.settings.twilio_messaging_service_sid}
            if self.settings.twilio_messaging_service_sid
            else {"from_": str(self.settings.twilio_from_number)}
        )
        try:
            message = self.client.messages.create(
                to=to, body=body, status_callback=status_callback or None, **sender
            )
        except TwilioRestException as exc:
            kind = classify(exc.status, exc.code)
            raise ProviderError(
                kind, describe(exc.code, f"HTTP {exc.status}"), exc.code, exc.status
            ) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise ProviderError(
                FailureKind.TRANSIENT, "connection to the provider timed out"
            ) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise ProviderError(
                FailureKind.UNKNOWN, "the provider did not answer in time; it may have sent it"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise ProviderError(_connection_failure_kind(exc), f"connection error: {exc}") from exc
        logger.info(
            "sms %s sent to %s via twilio (%s)", message.sid, mask_phone(to), message.status
        )
        return SentMessage(str(message.sid), str(message.status or "queued"))

    def close(self) -> None:
        session = self.client.http_client.session  # type: ignore[attr-defined]
        if session is not None:
            session.close()


def _connection_failure_kind(exc: requests.exceptions.ConnectionError) -> FailureKind:
    """Refused or unresolvable before the request went out: transient; dropped after: unknown."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NewConnectionError | ConnectTimeoutError):
        return FailureKind.TRANSIENT
    return FailureKind.UNKNOWN


class ConsoleSmsProvider:
    """Development: prints the message to stdout and logs it, the number masked."""

    name = "console"

    @property
    def sender(self) -> str:
        return "console"

    def send(self, to: str, body: str, status_callback: str | None) -> SentMessage:
        sid = "SM" + uuid.uuid4().hex
        masked = mask_phone(to)
        banner = f"----- SMS to {masked} ({sid}) -----"
        print(f"{banner}\n{body}\n{'-' * len(banner)}", file=sys.stdout, flush=True)
        logger.info("console sms %s to %s: %s", sid, masked, body.replace("\n", " / "))
        return SentMessage(sid, "sent")

    def close(self) -> None:
        pass


def provider_for(settings: Settings) -> SmsProvider:
    """The configured provider: `twilio` with credentials, else `console`."""
    if settings.provider == "twilio":
        return TwilioSmsProvider(settings)
    return ConsoleSmsProvider()
