"""A fake of Twilio's REST API (api.twilio.com, 2010-04-01) on loopback, inside the test process.

The gateway's real Twilio SDK client talks HTTP to it: point the client at `fake.base_url` (the
setting TWILIO_API_BASE_URL, or `twilio_client_for(fake)`) and every request is recorded and
answered the way Twilio answers it: form-encoded POST bodies in, Twilio's JSON resources and error
bodies out, HTTP Basic auth with the account SID and auth token.

    with FakeTwilio() as fake:
        client = twilio_client_for(fake)
        fake.fail_next("messages", 400, 21610)            # the next send hits an opted-out number
        ...
        assert fake.messages()[0].params["To"] == "+79161234567"

Endpoints (what `fail_next`, `hold_next` and `delay_next` take):

    "messages"       POST /2010-04-01/Accounts/{AccountSid}/Messages.json       create, 201
    "message_list"   GET  /2010-04-01/Accounts/{AccountSid}/Messages.json       list, 200
                     (To, From, DateSent, DateSent<, DateSent> filters; PageSize, Page)
    "message_fetch"  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json fetch, 200
    "calls"          POST /2010-04-01/Accounts/{AccountSid}/Calls.json          create, 201
    "call_update"    POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json    update, 200
    "call_fetch"     GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json    fetch, 200

Scripted answers are queued per endpoint and used in order, one per request; a hold or a delay and
a failure are separate queues, so `hold_next` plus `fail_next` make one slow failing answer.
Authentication is checked before any script is used: a 401 consumes nothing.
A held or delayed request is processed after the wait, even if the client has given up: like
Twilio, the fake may have created the message a timed-out client thinks failed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import http
import json
import logging
import math
import re
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.rest import Client

from gateway.twilio_client import make_twilio_client
from tests.serving import POLL_SECONDS

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "test-auth-token-0123456789abcdef"

MESSAGES = "messages"
MESSAGE_LIST = "message_list"
MESSAGE_FETCH = "message_fetch"
CALLS = "calls"
CALL_UPDATE = "call_update"
CALL_FETCH = "call_fetch"
RECORDING_DELETE = "recording_delete"
RECORDING_MEDIA = "recording_media"
ENDPOINTS = frozenset(
    {
        MESSAGES,
        MESSAGE_LIST,
        MESSAGE_FETCH,
        CALLS,
        CALL_UPDATE,
        CALL_FETCH,
        RECORDING_DELETE,
        RECORDING_MEDIA,
    }
)

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json"), MESSAGES),
    ("GET", re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json"), MESSAGE_LIST),
    (
        "GET",
        re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json"),
        MESSAGE_FETCH,
    ),
    ("POST", re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Calls\.json"), CALLS),
    (
        "POST",
        re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json"),
        CALL_UPDATE,
    ),
    (
        "GET",
        re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json"),
        CALL_FETCH,
    ),
    (
        "DELETE",
        re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Recordings/(?P<sid>[^/]+)\.json"),
        RECORDING_DELETE,
    ),
    (
        "GET",
        re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Recordings/(?P<sid>[^/]+)\.mp3"),
        RECORDING_MEDIA,
    ),
)

# Twilio's wording for the error codes tests script most; other codes default to the HTTP phrase.
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required. For more information, see http://www.twilio.com/docs/api/twiml",
    21211: "Invalid 'To' Phone Number",
    21213: "No 'From' number is specified",
    21215: "Geo Permission configuration is not permitting call",
    21217: "Phone number does not appear to be valid",
    21220: "Call is not in-progress. Cannot redirect.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number "
    "for this destination/account",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
}

_LIVE_CALL_STATUSES = frozenset({"queued", "ringing", "in-progress"})
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def twilio_error(status: int, code: int | None, message: str | None = None) -> dict[str, Any]:
    """Twilio's JSON error body; without a code, just message and status."""
    if message is None:
        message = ERROR_MESSAGES.get(code or 0) or _http_phrase(status)
    if code is None:
        return {"message": message, "status": status}
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _http_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def rfc2822(moment: datetime) -> str:
    """A UTC moment as Twilio writes dates: "Thu, 24 Aug 2023 05:01:45 +0000"."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def num_segments(body: str) -> int:
    """How many SMS segments Twilio bills `body` as: GSM-7 160/153, else UCS-2 70/67."""
    if all(char in _GSM7_BASIC or char in _GSM7_EXTENSION for char in body):
        units = sum(2 if char in _GSM7_EXTENSION else 1 for char in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


def _formatted(number: str) -> str:
    digits = number[2:]
    if number.startswith("+1") and len(digits) == 10 and digits.isdigit():
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return number


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass
class RecordedRequest:
    """One HTTP request the fake received, and what it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]
    auth_user: str | None
    authenticated: bool
    endpoint: str | None
    received_at: datetime
    status: int | None = None
    response: dict[str, Any] | None = None

    @property
    def params(self) -> dict[str, str]:
        """The form's first value of each parameter (see `form` for repeated keys)."""
        return {key: values[0] for key, values in self.form.items() if values}

    @property
    def sid(self) -> str | None:
        """The SID of the resource answered with a 2xx, else None."""
        if self.status is None or not 200 <= self.status < 300 or self.response is None:
            return None
        sid = self.response.get("sid")
        return sid if isinstance(sid, str) else None

    def header(self, name: str) -> str | None:
        """A request header, whatever its case."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class _Failure:
    status: int
    code: int | None
    message: str | None
    body: str | None
    headers: Mapping[str, str]


@dataclass(eq=False)  # hashed by identity: the fake keeps a set of active holds
class _Hold:
    release: threading.Event
    cap_seconds: float


@dataclass
class _Answer:
    status: int
    body: bytes
    payload: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


def _json_answer(status: int, payload: dict[str, Any], **headers: str) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), payload, dict(headers))


class FakeTwilio:
    """Twilio's REST API on 127.0.0.1:<free port>, served by a daemon thread.

    Use as a context manager, or `start()` and `stop()`. Thread-safe: the SDK may call it from
    several threads at once, and the test may script it while requests are in flight.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        hold_cap_seconds: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.hold_cap_seconds = hold_cap_seconds
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._requests: list[RecordedRequest] = []
        self._failures: dict[str, deque[_Failure]] = {name: deque() for name in ENDPOINTS}
        self._holds: dict[str, deque[_Hold]] = {name: deque() for name in ENDPOINTS}
        self._active_holds: set[_Hold] = set()
        self._resources: dict[str, dict[str, Any]] = {}
        self._audio: dict[str, bytes] = {}
        self._clients: list[Client] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        if self._server is not None or self._stopped:
            raise RuntimeError("a FakeTwilio starts once")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name=f"fake-twilio-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release every hold, stop serving, wait for in-flight answers, close SDK clients."""
        if self._server is None or self._stopped:
            return
        self._stopped = True
        with self._lock:
            holds = [hold for queue in self._holds.values() for hold in queue]
            holds.extend(self._active_holds)
        for hold in holds:
            hold.release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.wait_idle(timeout=5):
            logger.warning("fake Twilio stopped with requests still being answered")
        for client in self._clients:
            session = client.http_client.session
            if session is not None:
                session.close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The fake's root, "http://127.0.0.1:PORT", standing in for "https://api.twilio.com"."""
        return f"http://127.0.0.1:{self.port}"

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered (e.g. a released hold); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def wait_for_requests(
        self, endpoint: str, count: int = 1, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Block until `count` requests to `endpoint` have arrived (answered or not, e.g. held).

        Raises TimeoutError with what did arrive otherwise.
        """
        _check_endpoint(endpoint)

        def arrived() -> list[RecordedRequest]:
            return [r for r in self._requests if r.endpoint == endpoint]

        with self._idle:
            if not self._idle.wait_for(lambda: len(arrived()) >= count, timeout=timeout):
                raise TimeoutError(
                    f"{len(arrived())} of {count} requests to {endpoint} after {timeout}s"
                )
            return arrived()

    def track_client(self, client: Client) -> Client:
        """Close `client`'s HTTP session when the fake stops (no leaked sockets)."""
        with self._lock:
            self._clients.append(client)
        return client

    # -- what was received --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        _check_endpoint(endpoint)
        with self._lock:
            return [r for r in self._requests if r.endpoint == endpoint]

    def messages(self) -> list[RecordedRequest]:
        """Message create requests, whatever they were answered."""
        return self.requests_to(MESSAGES)

    def calls(self) -> list[RecordedRequest]:
        """Call create requests, whatever they were answered."""
        return self.requests_to(CALLS)

    def call_updates(self) -> list[RecordedRequest]:
        return self.requests_to(CALL_UPDATE)

    def add_recording(self, sid: str, audio: bytes = b"ID3 a voice comment") -> str:
        """A recording the account holds (as a <Record> of a call would leave); its URL.
        Its media (`<URL>.mp3`) answers `audio`."""
        with self._lock:
            self._resources[sid] = {"sid": sid, "account_sid": self.account_sid}
            self._audio[sid] = audio
        return f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}"

    def has_recording(self, sid: str) -> bool:
        with self._lock:
            return sid in self._resources

    def resource(self, sid: str) -> dict[str, Any]:
        """The current JSON of a message or call the fake created (KeyError if unknown)."""
        with self._lock:
            return copy.deepcopy(self._resources[sid])

    def set_call_status(self, call_sid: str, status: str, **fields: Any) -> None:
        """Move a call along as Twilio would (e.g. "in-progress", answered_by="human")."""
        with self._lock:
            call = self._resources[call_sid]
            call["status"] = status
            call["date_updated"] = rfc2822(datetime.now(UTC))
            call.update(fields)

    def reset(self) -> None:
        """Forget recorded requests and unused scripts (resources are kept)."""
        with self._lock:
            self._requests.clear()
            for queue in self._failures.values():
                queue.clear()
            for hold_queue in self._holds.values():
                for hold in hold_queue:
                    hold.release.set()
                hold_queue.clear()

    # -- scripting ----------------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        status: int,
        code: int | None = None,
        message: str | None = None,
        *,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next unused request to `endpoint` with Twilio's error JSON.

        `message` defaults to Twilio's wording for `code` (ERROR_MESSAGES) or the HTTP phrase;
        with `code` None the body carries no code (the SDK then reports the HTTP status as
        the code). `body` replaces the JSON with raw text (e.g. a proxy's HTML 502).
        """
        _check_endpoint(endpoint)
        failure = _Failure(status, code, message, body, dict(headers or {}))
        with self._lock:
            self._failures[endpoint].append(failure)

    def hold_next(self, endpoint: str, cap_seconds: float | None = None) -> threading.Event:
        """Hold the next request to `endpoint` until the returned Event is set.

        The request is recorded at once and answered after the release (or after
        `cap_seconds`, default `hold_cap_seconds`, so a forgotten hold cannot hang a run).
        `stop()` releases every hold.
        """
        _check_endpoint(endpoint)
        release = threading.Event()
        cap = self.hold_cap_seconds if cap_seconds is None else cap_seconds
        with self._lock:
            self._holds[endpoint].append(_Hold(release, cap))
        return release

    def delay_next(self, endpoint: str, seconds: float) -> None:
        """Answer the next request to `endpoint` after `seconds` (cut short by `stop()`)."""
        self.hold_next(endpoint, cap_seconds=seconds)

    def pending(self, endpoint: str) -> int:
        """Scripted failures and holds not used yet for `endpoint`."""
        _check_endpoint(endpoint)
        with self._lock:
            return len(self._failures[endpoint]) + len(self._holds[endpoint])

    # -- serving (called by the handler threads) ---------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def _record(self, record: RecordedRequest) -> None:
        with self._idle:
            self._requests.append(record)
            self._idle.notify_all()

    def _answer(self, record: RecordedRequest, match: re.Match[str] | None) -> _Answer:
        if not record.authenticated:
            return _json_answer(
                401,
                {
                    **twilio_error(401, 20003),
                    "detail": "Your AccountSid or AuthToken was incorrect.",
                },
                **{"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if match is None or record.endpoint is None:
            if any(pattern.fullmatch(record.path) for _, pattern, _ in _ROUTES):
                return _json_answer(405, twilio_error(405, 20004, "Method not allowed"))
            return self._not_found(record.path)
        if match["account"] != self.account_sid:
            return self._not_found(record.path)

        with self._lock:
            hold = self._holds[record.endpoint].popleft() if self._holds[record.endpoint] else None
            failure = (
                self._failures[record.endpoint].popleft()
                if self._failures[record.endpoint]
                else None
            )
            if hold is not None:
                self._active_holds.add(hold)
        if hold is not None:
            released = hold.release.wait(hold.cap_seconds)
            with self._lock:
                self._active_holds.discard(hold)
            if not released:
                logger.debug(
                    "fake Twilio: hold on %s ended after %ss", record.path, hold.cap_seconds
                )
        if failure is not None:
            return _failure_answer(failure)

        handlers: dict[str, Callable[[RecordedRequest, re.Match[str]], _Answer]] = {
            MESSAGES: self._create_message,
            MESSAGE_LIST: self._list_messages,
            MESSAGE_FETCH: self._fetch,
            CALLS: self._create_call,
            CALL_UPDATE: self._update_call,
            CALL_FETCH: self._fetch,
            RECORDING_DELETE: self._delete_recording,
            RECORDING_MEDIA: self._recording_media,
        }
        return handlers[record.endpoint](record, match)

    def _not_found(self, path: str) -> _Answer:
        return _json_answer(
            404, twilio_error(404, 20404, f"The requested resource {path} was not found")
        )

    def _create_message(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        params = record.params
        media = [url for url in record.form.get("MediaUrl", []) if url]
        if not params.get("To"):
            return _json_answer(400, twilio_error(400, 21604))
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return _json_answer(400, twilio_error(400, 21603))
        if not params.get("Body") and not media and not params.get("ContentSid"):
            return _json_answer(400, twilio_error(400, 21602))
        body = params.get("Body", "")
        sid = _new_sid("MM" if media else "SM")
        now = rfc2822(datetime.now(UTC))
        if params.get("ScheduleType") == "fixed" and params.get("SendAt"):
            status = "scheduled"
        elif params.get("MessagingServiceSid") and not params.get("From"):
            status = "accepted"  # the service has yet to pick a sender
        else:
            status = "queued"
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From") or None,
            "messaging_service_sid": params.get("MessagingServiceSid") or None,
            "num_media": str(len(media)),
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": params["To"],
            "uri": f"{uri}.json",
        }
        with self._lock:
            self._resources[sid] = message
        return _json_answer(201, copy.deepcopy(message))

    def _list_messages(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        """Twilio's message list, newest first: To, From and DateSent (=, <=, >=) filters,
        PageSize (default 50) and Page. A message not sent yet is listed by its creation date
        (Twilio sets date_sent within seconds of accepting a message)."""
        query = {key: values[0] for key, values in record.query.items() if values}
        try:
            bounds = [
                (name, _list_date(query[name]))
                for name in ("DateSent", "DateSent<", "DateSent>")
                if name in query
            ]
            size = int(query.get("PageSize", "50"))
            page = int(query.get("Page", "0"))
        except ValueError:
            return _json_answer(400, twilio_error(400, 20001, "Invalid query parameter"))
        with self._lock:
            found = [
                copy.deepcopy(resource)
                for resource in self._resources.values()
                if resource["sid"].startswith(("SM", "MM"))
                and query.get("To", resource["to"]) == resource["to"]
                and query.get("From", resource["from"]) == resource["from"]
                and all(_date_within(resource, name, day) for name, day in bounds)
            ]
        found.sort(key=lambda m: parsedate_to_datetime(m["date_created"]), reverse=True)
        chunk = found[page * size : (page + 1) * size]
        path = record.path

        def page_uri(number: int) -> str:
            params = {**query, "PageSize": str(size), "Page": str(number)}
            return f"{path}?{urlencode(params)}"

        return _json_answer(
            200,
            {
                "end": page * size + max(len(chunk) - 1, 0),
                "first_page_uri": page_uri(0),
                "messages": chunk,
                "next_page_uri": page_uri(page + 1) if len(found) > (page + 1) * size else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "start": page * size,
                "uri": page_uri(page),
            },
        )

    def _create_call(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        params = record.params
        if not params.get("To"):
            return _json_answer(400, twilio_error(400, 21201))
        if not params.get("From"):
            return _json_answer(400, twilio_error(400, 21213))
        if not any(params.get(key) for key in ("Url", "Twiml", "ApplicationSid")):
            return _json_answer(400, twilio_error(400, 21205))
        sid = _new_sid("CA")
        now = rfc2822(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}"
        to, from_ = params["To"], params["From"]
        subresources = (
            "notifications",
            "recordings",
            "payments",
            "events",
            "siprec",
            "streams",
            "transcriptions",
            "user_defined_message_subscriptions",
            "user_defined_messages",
        )
        call = {
            "account_sid": self.account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": from_,
            "from_formatted": _formatted(from_),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": _new_sid("PN") if from_.startswith("+") else None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {
                name: f"{uri}/{''.join(p.title() for p in name.split('_'))}.json"
                for name in subresources
            },
            "to": to,
            "to_formatted": _formatted(to),
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }
        with self._lock:
            self._resources[sid] = call
        return _json_answer(201, copy.deepcopy(call))

    def _update_call(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        params = record.params
        now = rfc2822(datetime.now(UTC))
        with self._lock:
            call = self._resources.get(match["sid"])
            if call is None or not match["sid"].startswith("CA"):
                return self._not_found(record.path)
            live = call["status"] in _LIVE_CALL_STATUSES
            if (params.get("Url") or params.get("Twiml")) and not live:
                return _json_answer(400, twilio_error(400, 21220))
            new_status = params.get("Status")
            # "canceled" only hangs up calls not yet answered; "completed" hangs up any live call.
            if live and (
                new_status == "completed"
                or (new_status == "canceled" and call["status"] != "in-progress")
            ):
                call["status"] = new_status
                call["end_time"] = now
                call["duration"] = call["duration"] or "0"
            call["date_updated"] = now
            return _json_answer(200, copy.deepcopy(call))

    def _delete_recording(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        """Twilio answers 204 with no body; a recording already deleted is a 404."""
        with self._lock:
            if not match["sid"].startswith("RE") or self._resources.pop(match["sid"], None) is None:
                return self._not_found(record.path)
        return _Answer(204, b"", None)

    def _recording_media(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        """The recording's MP3; a deleted (or never made) recording is a 404."""
        with self._lock:
            if match["sid"] not in self._resources or match["sid"] not in self._audio:
                return self._not_found(record.path)
            return _Answer(200, self._audio[match["sid"]], None, content_type="audio/mpeg")

    def _fetch(self, record: RecordedRequest, match: re.Match[str]) -> _Answer:
        prefixes = ("SM", "MM") if record.endpoint == MESSAGE_FETCH else ("CA",)
        with self._lock:
            resource = self._resources.get(match["sid"])
            if resource is None or not match["sid"].startswith(prefixes):
                return self._not_found(record.path)
            return _json_answer(200, copy.deepcopy(resource))


def _list_date(text: str) -> date:
    """A DateSent filter value: "2026-03-10" (Twilio's form) or an ISO 8601 date-time."""
    return (
        datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        if "T" in text
        else date.fromisoformat(text)
    )


def _date_within(resource: dict[str, Any], name: str, day: date) -> bool:
    sent = parsedate_to_datetime(resource["date_sent"] or resource["date_created"]).date()
    if name == "DateSent<":
        return sent <= day
    if name == "DateSent>":
        return sent >= day
    return sent == day


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINTS)}")


def _failure_answer(failure: _Failure) -> _Answer:
    if failure.body is not None:
        return _Answer(
            failure.status,
            failure.body.encode(),
            None,
            dict(failure.headers),
            "text/html; charset=utf-8" if failure.body.lstrip().startswith("<") else "text/plain",
        )
    payload = twilio_error(failure.status, failure.code, failure.message)
    return _Answer(failure.status, json.dumps(payload).encode(), payload, dict(failure.headers))


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of connections (1 s SYN retries)
    fake: FakeTwilio

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("fake Twilio: client %s went away: %r", client_address, error)
        else:
            logger.exception("fake Twilio: error answering %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeTwilio/1.0"
    # Keep-alive, as Twilio's API: a client's pooled connection carries its next request too
    # (every answer has its Content-Length). Without Nagle's algorithm, as an answer written
    # in two parts (head, body) would otherwise wait for the client's delayed ACK (40 ms).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 10  # seconds a client may take to send its request, or keep an idle connection

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake Twilio: " + format, *args)

    def _handle(self) -> None:
        fake = self.server.fake
        fake._enter()
        try:
            record, match = self._read()
            fake._record(record)
            try:
                answer = fake._answer(record, match)
            except Exception as error:  # a bug in the fake: say so rather than drop the socket
                logger.exception("fake Twilio failed on %s %s", record.method, record.path)
                answer = _json_answer(500, twilio_error(500, None, f"fake Twilio bug: {error!r}"))
            record.status = answer.status
            record.response = answer.payload
            self._write(answer)
        finally:
            fake._leave()

    def _read(self) -> tuple[RecordedRequest, re.Match[str] | None]:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        form: dict[str, list[str]] = {}
        if raw and content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(raw.decode(), keep_blank_values=True)
        credentials = _basic_auth(self.headers.get("Authorization"))
        endpoint, match = None, None
        for method, pattern, name in _ROUTES:
            found = pattern.fullmatch(parts.path)
            if found and method == self.command:
                endpoint, match = name, found
                break
        record = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            form=form,
            headers=dict(self.headers.items()),
            auth_user=credentials[0] if credentials else None,
            authenticated=credentials == (fake.account_sid, fake.auth_token),
            endpoint=endpoint,
            received_at=datetime.now(UTC),
        )
        return record, match

    def _write(self, answer: _Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Twilio-Request-Id", _new_sid("RQ"))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except (ConnectionError, TimeoutError) as error:  # the client gave up (e.g. timed out)
            logger.debug("fake Twilio: could not answer %s: %r", self.path, error)


def twilio_client_for(fake: FakeTwilio, timeout_seconds: float = 5.0) -> Client:
    """A real SDK client pointed at `fake`, built as production builds it (make_twilio_client).

    Its HTTP session is closed when the fake stops.
    """
    client = make_twilio_client(
        fake.account_sid, fake.auth_token, fake.base_url, timeout_seconds=timeout_seconds
    )
    return fake.track_client(client)
