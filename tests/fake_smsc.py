"""A fake of SMSC.ru's HTTP API on loopback, inside the test process, built from its
documentation (smsc.ru/api/http/): the gateway's real client talks HTTP to it.

    with FakeSmsc() as fake:                      # SMSC_API_BASE_URL = fake.base_url
        fake.fail_next(error_code=3)              # the next send: not enough funds
        ...
        fake.messages()[0].phone == "+79161234567"

Endpoints:

    GET|POST /sys/send.php    login+psw or apikey, phones, mes, sender, id, charset, fmt=3:
                              {"id": <id>, "cnt": <parts>} or {"error": ..., "error_code": N}
    GET|POST /sys/status.php  phone, id, fmt=3: {"status", "last_date", "last_timestamp",
                              "err"}; status -3 when it has no such message

As SMSC does, it refuses (error 9) the same send request (numbers, text, id) again within a
minute, and answers HTTP 200 with an error object for every refusal. Scripts are used one per
send request, in order: an error code, an HTTP status with no JSON, or a hold (the message is
created, the answer comes after the wait, so a client with a shorter timeout never sees it).

What SMSC would post to the handler URL of the account: `status_form` (a delivery status)
and `incoming_form` (an SMS a customer sent to the account's number). With a
`checksum_secret` (the handler URL's `md5=<secret>`) each form carries SMSC's `md5` of its
values, computed here independently of the gateway: an incoming SMS's phone, mes and to, a
status's id, phone and status, joined by ':' with the secret last (the rule the public
Laravel client C0deWiser/laravel-smscenter-mailer checks).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.serving import POLL_SECONDS

LOGIN = "survey-office"
PASSWORD = "fake-smsc-password"

ERROR_TEXTS = {
    1: "parameters error",
    2: "authorise error",
    3: "no money",
    4: "IP blocked",
    5: "wrong date format",
    6: "message denied",
    7: "invalid number",
    8: "message cannot be delivered",
    9: "duplicate request, wait a minute",
}


@dataclass
class SentSms:
    id: int
    phone: str
    text: str
    sender: str | None
    created_at: datetime
    status: int = 0  # handed to the operator
    err: int = 0


@dataclass
class Script:
    error_code: int | None = None
    http_status: int | None = None
    hold_seconds: float = 0.0


class FakeSmsc:
    def __init__(
        self, login: str = LOGIN, password: str = PASSWORD, checksum_secret: str | None = None
    ) -> None:
        self.login, self.password = login, password
        self.checksum_secret = checksum_secret
        self._lock = threading.Lock()
        self._sent: list[SentSms] = []
        self._scripts: deque[Script] = deque()
        self._recent: dict[tuple[str, str, str], float] = {}
        self._next_id = 1
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeSmsc:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()  # held answers stop waiting
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # -- scripting and inspection ----------------------------------------------------------

    def fail_next(self, error_code: int | None = None, http_status: int | None = None) -> None:
        self._scripts.append(Script(error_code=error_code, http_status=http_status))

    def hold_next(self, seconds: float) -> None:
        """The next send is taken, and answered only after `seconds`."""
        self._scripts.append(Script(hold_seconds=seconds))

    def messages(self) -> list[SentSms]:
        with self._lock:
            return list(self._sent)

    def set_status(self, sms: SentSms, status: int, err: int = 0) -> None:
        with self._lock:
            sms.status, sms.err = status, err

    def status_form(self, sms: SentSms, status: int, err: int = 0) -> dict[str, str]:
        """What SMSC posts to the handler when a message's status changes."""
        self.set_status(sms, status, err)
        form = {
            "id": str(sms.id),
            "phone": sms.phone.lstrip("+"),
            "status": str(status),
            "err": str(err),
            "ts": str(int(datetime.now(UTC).timestamp())),
        }
        return self._signed(form, form["id"], form["phone"], form["status"])

    def incoming_form(self, phone: str, text: str, to: str, sms_id: int) -> dict[str, str]:
        """What SMSC posts to the handler when a customer texts the account's number."""
        form = {
            "sms_id": str(sms_id),
            "phone": phone.lstrip("+"),
            "mes": text,
            "to": to.lstrip("+"),
            "sent": str(int(datetime.now(UTC).timestamp())),
        }
        return self._signed(form, form["phone"], form["mes"], form["to"])

    def _signed(self, form: dict[str, str], *values: str) -> dict[str, str]:
        if self.checksum_secret is not None:
            joined = ":".join([*values, self.checksum_secret])
            form["md5"] = hashlib.md5(joined.encode("utf-8")).hexdigest()
        return form

    # -- the API ---------------------------------------------------------------------------

    def _authorised(self, params: dict[str, str]) -> bool:
        if "apikey" in params:
            return params["apikey"] == self.password
        return params.get("login") == self.login and params.get("psw") == self.password

    def _send(self, params: dict[str, str]) -> tuple[int, Any, float]:
        if not self._authorised(params):
            return 200, _error(2), 0.0
        script = self._scripts.popleft() if self._scripts else Script()
        if script.http_status is not None:
            return script.http_status, None, 0.0
        if script.error_code is not None:
            return 200, _error(script.error_code), 0.0
        phones, text = params.get("phones", ""), params.get("mes", "")
        if not phones or not text:
            return 200, _error(1), 0.0
        phone = phones.split(",")[0].strip()
        if not phone.lstrip("+").isdigit() or not 10 <= len(phone.lstrip("+")) <= 15:
            return 200, _error(7), 0.0
        key = (phones, text, params.get("id", ""))
        now = time.monotonic()
        with self._lock:
            if now - self._recent.get(key, -1e9) < 60:
                return 200, _error(9), 0.0
            self._recent[key] = now
            given = params.get("id")
            sms_id = int(given) if given and given.isdigit() else self._next_id
            self._next_id = max(self._next_id, sms_id) + 1
            parts = 1 + (len(text) - 1) // 67
            self._sent.append(SentSms(sms_id, phone, text, params.get("sender"), datetime.now(UTC)))
        return 200, {"id": sms_id, "cnt": parts}, script.hold_seconds

    def _status(self, params: dict[str, str]) -> tuple[int, Any, float]:
        if not self._authorised(params):
            return 200, _error(2), 0.0
        phone, given = params.get("phone", "").lstrip("+"), params.get("id", "")
        with self._lock:
            found = next(
                (s for s in self._sent if str(s.id) == given and s.phone.lstrip("+") == phone),
                None,
            )
        if found is None:
            return 200, {"status": -3, "last_date": "", "last_timestamp": 0, "err": 0}, 0.0
        stamp = int(found.created_at.timestamp())
        return (
            200,
            {
                "status": found.status,
                "last_date": found.created_at.strftime("%d.%m.%Y %H:%M:%S"),
                "last_timestamp": stamp,
                "err": found.err,
            },
            0.0,
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _params(self) -> dict[str, str]:
                query = urlsplit(self.path).query
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                merged = {k: v[0] for k, v in parse_qs(query).items()}
                merged.update({k: v[0] for k, v in parse_qs(body).items()})
                return merged

            def _serve(self) -> None:
                path = urlsplit(self.path).path
                params = self._params()
                fake.requests.append((path, params))
                if path == "/sys/send.php":
                    status, payload, hold = fake._send(params)
                elif path == "/sys/status.php":
                    status, payload, hold = fake._status(params)
                else:
                    status, payload, hold = 404, None, 0.0
                if hold:
                    fake._stop.wait(hold)
                body = (
                    json.dumps(payload).encode() if payload is not None else b"<html>error</html>"
                )
                try:
                    self.send_response(status)
                    self.send_header(
                        "Content-Type",
                        "application/json; charset=utf-8" if payload is not None else "text/html",
                    )
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            do_GET = _serve
            do_POST = _serve

        return Handler


def _error(code: int) -> dict[str, Any]:
    return {"error": ERROR_TEXTS.get(code, "error"), "error_code": code}
