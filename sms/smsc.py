"""SMS through SMSC.ru (SMS Centre), a Russian aggregator, over its HTTP API.

Sending is `POST {SMSC_API_BASE_URL}/sys/send.php` (form-encoded: login, psw, phones, mes,
sender, id, charset=utf-8, fmt=3 for JSON). SMSC answers HTTP 200 either way: `{"id", "cnt"}`
when it took the message, `{"error", "error_code"}` when it did not. The gateway gives every
message its own id (`id`, the attempt's number, 1 to 2147483647), so a message is known to
SMSC by (id, phone) before any answer comes back: an attempt whose answer was lost is looked
up by that id with `GET /sys/status.php?id=&phone=&fmt=3` (status -3: SMSC has no such
message, it was never accepted; sms.reconcile then sends it once).

Delivery statuses and incoming SMS reach the gateway at the handler URL set in SMSC's account
settings (`{PUBLIC_BASE_URL}/sms/smsc/{SMSC_CALLBACK_SECRET}?charset=utf-8`, and
`&md5={SMSC_CHECKSUM_SECRET}` with a checksum secret); see sms.views and callback_checksum.

Error codes, mapped onto the gateway's classes (gateway.provider_errors):

* send.php `error_code`: 1 parameters, 5 date, 7 number format, 8 cannot be delivered to this
  number: permanent; 2 login or password, 3 no funds, 4 IP blocked for frequent errors, 6 text
  or sender name forbidden: the account's (the circuit opens); 9 the same request again within
  a minute (or too many at once): unknown, since an earlier identical request may have gone
  through; HTTP 429 and 5xx, refused connections: transient; a read timeout: unknown.
* a delivery status (`status`, with the carrier's `err`): 1 delivered, 2 read, 4 link opened;
  -1 waiting and 0 handed to the operator are on the way; 3 expired and 20 undeliverable
  are retried when `err` says the handset was away (6, 12, 220, 246, 251) and final otherwise;
  22 wrong number and 25 unreachable number are final; 23 forbidden with `err` 250 or 252 is
  SMSC's (or the account's) blacklist: the number is opted out as a STOP would; 24 no funds,
  and `err` 238, 239, 243, 244, 247, 253, 254 (no template, IP, contract, mailing forbidden,
  limit, spam filter, unregistered sender name) are the account's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from gateway.config import Settings
from gateway.phones import mask_phone
from gateway.provider_errors import FailureKind
from sms.providers import ListedMessage, ProviderError, SentMessage, connection_failure_kind

logger = logging.getLogger(__name__)

NAME = "smsc"
MAX_CLIENT_ID = 2_147_483_647

# send.php error_code -> (class, reason)
SEND_ERRORS: dict[int, tuple[FailureKind, str]] = {
    1: (FailureKind.PERMANENT, "parameters rejected"),
    2: (FailureKind.ACCOUNT, "wrong login or password"),
    3: (FailureKind.ACCOUNT, "not enough funds on the account"),
    4: (FailureKind.ACCOUNT, "IP address blocked for frequent errors"),
    5: (FailureKind.PERMANENT, "wrong date format"),
    6: (FailureKind.ACCOUNT, "message forbidden (text or sender name)"),
    7: (FailureKind.PERMANENT, "wrong phone number format"),
    8: (FailureKind.PERMANENT, "message to this number cannot be delivered"),
    9: (FailureKind.UNKNOWN, "the same request again within a minute, or too many at once"),
}

# Delivery status -> the gateway's message status (sms.service.STATUS_ORDER).
STATUSES: dict[int, str] = {
    -3: "unknown",  # not found
    -2: "queued",  # stopped (a mailing paused)
    -1: "queued",  # waiting to be sent
    0: "sent",  # handed to the operator
    1: "delivered",
    2: "read",
    3: "undelivered",  # expired
    4: "read",  # a short link in it was opened
    20: "undelivered",
    22: "failed",  # wrong number
    23: "failed",  # forbidden
    24: "failed",  # no funds
    25: "failed",  # unreachable number
}
# err of a failed status -> reason; and how each is classed
STATUS_ERRORS: dict[int, str] = {
    1: "subscriber does not exist",
    6: "subscriber not in the network",
    11: "no SMS service",
    12: "handset error",
    13: "subscriber blocked",
    21: "handset does not support the service",
    219: "SIM card replaced",
    220: "operator queue full",
    238: "no operator template for this text",
    239: "IP address forbidden",
    241: "conversion error",
    243: "no contract with the operator",
    244: "mailing forbidden",
    245: "status not received",
    246: "time restriction",
    247: "message limit exceeded",
    248: "no route",
    249: "wrong number format",
    250: "number forbidden by the account's settings",
    251: "daily limit for this number exceeded",
    252: "number forbidden (blacklist)",
    253: "forbidden by the spam filter",
    254: "sender name not registered",
    255: "rejected by the operator",
}
TRANSIENT_STATUS_ERRORS = frozenset({6, 12, 220, 246, 251})
ACCOUNT_STATUS_ERRORS = frozenset({238, 239, 243, 244, 247, 253, 254})
BLACKLIST_STATUS_ERRORS = frozenset({250, 252})
NO_FUNDS_STATUS = 24


@dataclass(frozen=True)
class StatusMeaning:
    """A delivery status as the gateway acts on it."""

    status: str
    failure: FailureKind | None = None
    reason: str = ""
    blacklisted: bool = False


def status_meaning(status: int, err: int | None) -> StatusMeaning:
    """What a status callback (or status.php) means for the gateway."""
    mapped = STATUSES.get(status, "unknown")
    if mapped not in {"undelivered", "failed"}:
        return StatusMeaning(mapped)
    reason = f"smsc status {status}" + (
        f", err {err}: {STATUS_ERRORS.get(err, 'error')}" if err else ""
    )
    if err == 245:
        # The carrier never reported back: it may well have been delivered. Not a failure.
        return StatusMeaning("sent", None, reason)
    if status == NO_FUNDS_STATUS or err in ACCOUNT_STATUS_ERRORS:
        return StatusMeaning(mapped, FailureKind.ACCOUNT, reason)
    if err in BLACKLIST_STATUS_ERRORS:
        return StatusMeaning(mapped, FailureKind.PERMANENT, reason, blacklisted=True)
    if status == 3 or err in TRANSIENT_STATUS_ERRORS:
        return StatusMeaning(mapped, FailureKind.TRANSIENT, reason)
    return StatusMeaning(mapped, FailureKind.PERMANENT, reason)


def callback_checksum(fields: Mapping[str, str], secret: str) -> str:
    """The md5 SMSC adds to a callback when its handler URL carries `md5=<secret>`: of the
    values joined by ':', the secret last: an incoming SMS's phone, mes and to; a delivery
    status's id, phone and status. The rule is the one the public Laravel client
    C0deWiser/laravel-smscenter-mailer (src/SmsCenterService.php) checks; SMSC's page names
    the md5, sha1 and crc32 parameters of the handler URL but our copy of it ends there."""
    if "mes" in fields:
        parts = [fields.get("phone", ""), fields["mes"], fields.get("to", "")]
    else:
        parts = [fields.get("id", ""), fields.get("phone", ""), fields.get("status", "")]
    return hashlib.md5(":".join([*parts, secret]).encode("utf-8")).hexdigest()


def checksum_matches(fields: Mapping[str, str], offered: Iterable[str], secret: str) -> bool:
    """Whether any of the `offered` md5 values is SMSC's checksum of `fields`."""
    expected = callback_checksum(fields, secret).encode()
    return any(hmac.compare_digest(value.strip().lower().encode(), expected) for value in offered)


def message_sid(client_id: int) -> str:
    """How an outbound SMSC message is stored: SMSC knows it by our id (and the number)."""
    return f"smsc:{client_id}"


def client_id_of(sid: str) -> int | None:
    prefix, _, number = sid.partition(":")
    return int(number) if prefix == NAME and number.isdigit() else None


def _digits(phone: str) -> str:
    """SMSC takes numbers in international format; with "+" it does not reformat them."""
    return "+" + phone.lstrip("+")


class SmscSmsProvider:
    """SMSC.ru's HTTP API with `requests`: one session, an explicit timeout."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        if not settings.smsc_password:
            raise ValueError(
                "the smsc provider needs SMSC_PASSWORD (with SMSC_LOGIN) or an API key"
            )
        self.settings = settings
        self.base_url = settings.smsc_api_base_url.rstrip("/")
        self.http = requests.Session()

    @property
    def sender(self) -> str:
        return f"smsc:{self.settings.smsc_sender or 'default'}"

    def _auth(self) -> dict[str, str]:
        if self.settings.smsc_login:
            return {"login": self.settings.smsc_login, "psw": str(self.settings.smsc_password)}
        return {"apikey": str(self.settings.smsc_password)}

    def send(
        self, to: str, body: str, status_callback: str | None, client_id: int | None = None
    ) -> SentMessage:
        """Send one SMS; SMSC reports its status to the handler URL of the account, so
        `status_callback` is not sent. `client_id` becomes the message's id at SMSC."""
        if client_id is None or not 1 <= client_id <= MAX_CLIENT_ID:
            raise ValueError("an SMSC message needs an id from 1 to 2147483647")
        form = {
            **self._auth(),
            "phones": _digits(to),
            "mes": body,
            "id": str(client_id),
            "charset": "utf-8",
            "fmt": "3",
        }
        if self.settings.smsc_sender:
            form["sender"] = self.settings.smsc_sender
        data = self._call("POST", "/sys/send.php", form, sending=True)
        if "error_code" in data:
            code = _int(data.get("error_code"))
            kind, reason = SEND_ERRORS.get(code or 0, (FailureKind.PERMANENT, "refused"))
            raise ProviderError(kind, f"smsc {code}: {reason}", code, 200)
        if "id" not in data:
            raise ProviderError(FailureKind.UNKNOWN, "smsc answered without an id or an error")
        sid = message_sid(client_id)
        logger.info("sms %s sent to %s via smsc (%s parts)", sid, mask_phone(to), data.get("cnt"))
        return SentMessage(sid, "queued")

    def sent_messages(
        self, to: str, since: datetime, client_id: int | None = None
    ) -> list[ListedMessage]:
        """The message SMSC knows by (client_id, to), if any: status.php."""
        if client_id is None:
            return []
        params = {**self._auth(), "phone": _digits(to), "id": str(client_id), "fmt": "3"}
        data = self._call("GET", "/sys/status.php", params, sending=False)
        if "error_code" in data:
            code = _int(data.get("error_code"))
            kind, reason = SEND_ERRORS.get(code or 0, (FailureKind.TRANSIENT, "refused"))
            # Asking again later is always safe: nothing is sent.
            if kind is FailureKind.UNKNOWN:
                kind = FailureKind.TRANSIENT
            raise ProviderError(kind, f"smsc {code}: {reason}", code, 200)
        status = _int(data.get("status"))
        if status is None or status == -3:
            return []
        stamp = _int(data.get("last_timestamp"))
        created = datetime.fromtimestamp(stamp, UTC) if stamp else None
        meaning = status_meaning(status, _int(data.get("err")))
        return [
            ListedMessage(message_sid(client_id), meaning.status, "", created, same_request=True)
        ]

    def _call(self, method: str, path: str, form: dict[str, str], sending: bool) -> dict[str, Any]:
        timeout = self.settings.smsc_timeout_seconds
        try:
            if method == "POST":
                response = self.http.post(self.base_url + path, data=form, timeout=timeout)
            else:
                response = self.http.get(self.base_url + path, params=form, timeout=timeout)
        except requests.exceptions.ConnectTimeout as exc:
            raise ProviderError(FailureKind.TRANSIENT, "connection to smsc timed out") from exc
        except requests.exceptions.ReadTimeout as exc:
            kind = FailureKind.UNKNOWN if sending else FailureKind.TRANSIENT
            raise ProviderError(kind, "smsc did not answer in time; it may have sent it") from exc
        except requests.exceptions.ConnectionError as exc:
            kind = connection_failure_kind(exc) if sending else FailureKind.TRANSIENT
            raise ProviderError(kind, f"connection error: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderError(
                FailureKind.TRANSIENT,
                f"smsc HTTP {response.status_code}",
                http_status=response.status_code,
            )
        if 400 <= response.status_code < 500 and "json" not in response.headers.get(
            "Content-Type", ""
        ):
            # Not SMSC's API at that address (a wrong SMSC_API_BASE_URL): nothing goes out
            # until someone fixes it.
            raise ProviderError(
                FailureKind.ACCOUNT,
                f"smsc HTTP {response.status_code}: check SMSC_API_BASE_URL",
                http_status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError as exc:
            # Any other answer than its JSON: whether a send went through is not known.
            kind = FailureKind.UNKNOWN if sending else FailureKind.TRANSIENT
            raise ProviderError(
                kind, f"smsc HTTP {response.status_code} without JSON", None, response.status_code
            ) from exc
        if not isinstance(data, dict):
            kind = FailureKind.UNKNOWN if sending else FailureKind.TRANSIENT
            raise ProviderError(kind, "smsc answered with something other than an object")
        return data

    def close(self) -> None:
        self.http.close()


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
