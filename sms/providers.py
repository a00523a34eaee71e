"""SMS providers behind one interface: `twilio` (the real SDK), `smsc` (SMSC.ru, sms.smsc)
and `console` (development).

A provider sends one message and either returns its id and status, or raises `ProviderError`
with the error's class (gateway.provider_errors: transient, account, permanent, unknown), which
decides what the gateway does next (sms.service).
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from gateway.config import Settings
from gateway.phones import mask_phone
from gateway.provider_errors import FailureKind, classify, describe
from gateway.twilio_client import make_twilio_client

logger = logging.getLogger(__name__)

# Messages to one number since the attempt's day: a handful for a survey number.
LIST_LIMIT = 50


def first_message_ref(attempt_id: int) -> int:
    """The id a provider that takes the client's own id knows a survey's first message by.
    Even for first messages, odd for replies: the two never share an id."""
    return 2 * attempt_id


def reply_ref(message_id: int) -> int:
    return 2 * message_id + 1


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


@dataclass(frozen=True)
class ListedMessage:
    """A message the provider lists as sent to a number (for reconciliation)."""

    sid: str
    status: str
    body: str
    created_at: datetime | None
    # Found by the id the gateway gave the message (SMSC), not by its text.
    same_request: bool = False


class SmsProvider(Protocol):
    name: str

    @property
    def sender(self) -> str:
        """Who sends: the rate limit is per sender."""
        ...

    def send(
        self, to: str, body: str, status_callback: str | None, client_id: int | None = None
    ) -> SentMessage:
        """Send one SMS or raise ProviderError; `client_id` (the attempt) identifies it at
        providers that take the client's own id."""
        ...

    def sent_messages(
        self, to: str, since: datetime, client_id: int | None = None
    ) -> list[ListedMessage]:
        """Messages sent to `to` from the day of `since` on, newest first, or ProviderError;
        a provider that knows messages by the client's id looks `client_id` up instead."""
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

    def send(
        self, to: str, body: str, status_callback: str | None, client_id: int | None = None
    ) -> SentMessage:
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
            raise ProviderError(connection_failure_kind(exc), f"connection error: {exc}") from exc
        logger.info(
            "sms %s sent to %s via twilio (%s)", message.sid, mask_phone(to), message.status
        )
        return SentMessage(str(message.sid), str(message.status or "queued"))

    def sent_messages(
        self, to: str, since: datetime, client_id: int | None = None
    ) -> list[ListedMessage]:
        # GET /Messages.json?To=&DateSent>=YYYY-MM-DD: Twilio filters by GMT day; the caller
        # narrows it down by creation time and body.
        try:
            listed = self.client.messages.list(
                to=to, date_sent_after=since.astimezone(UTC).date().isoformat(), limit=LIST_LIMIT
            )
        except TwilioRestException as exc:
            kind = classify(exc.status, exc.code)
            raise ProviderError(
                kind, describe(exc.code, f"HTTP {exc.status}"), exc.code, exc.status
            ) from exc
        except (TwilioException, requests.exceptions.RequestException) as exc:
            # A page the SDK could not fetch (it raises a plain TwilioException), or the network.
            raise ProviderError(FailureKind.TRANSIENT, f"message list failed: {exc}") from exc
        return [
            ListedMessage(str(m.sid), str(m.status), m.body or "", m.date_created)
            for m in listed
            if str(m.direction or "").startswith("outbound")
        ]

    def close(self) -> None:
        session = self.client.http_client.session  # type: ignore[attr-defined]
        if session is not None:
            session.close()


def connection_failure_kind(exc: requests.exceptions.ConnectionError) -> FailureKind:
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

    def send(
        self, to: str, body: str, status_callback: str | None, client_id: int | None = None
    ) -> SentMessage:
        sid = "SM" + uuid.uuid4().hex
        masked = mask_phone(to)
        banner = f"----- SMS to {masked} ({sid}) -----"
        print(f"{banner}\n{body}\n{'-' * len(banner)}", file=sys.stdout, flush=True)
        logger.info("console sms %s to %s: %s", sid, masked, body.replace("\n", " / "))
        return SentMessage(sid, "sent")

    def sent_messages(
        self, to: str, since: datetime, client_id: int | None = None
    ) -> list[ListedMessage]:
        return []  # what the console printed, it sent

    def close(self) -> None:
        pass
