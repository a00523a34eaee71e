"""The one place a Twilio REST client is built: with a timeout, and with a base URL from settings.

Why a function rather than `twilio.rest.Client(sid, token)` at each call site:

* Timeout. The SDK's default `TwilioHttpClient` has no timeout at all: a Twilio (or network)
  stall would hold a Celery worker forever. `TwilioHttpClient(timeout=...)` applies the value to
  both connecting and reading, for every request the client makes. A request that times out
  raises `requests.exceptions.ConnectTimeout` / `ReadTimeout` (both `requests.Timeout`); the SDK
  does not wrap them into `TwilioRestException`. A read timeout does NOT mean Twilio refused the
  request: it may have been accepted, so callers must not blindly re-send a message or a call.
* Base URL (setting TWILIO_API_BASE_URL). Every product of the SDK is a `twilio.base.domain.Domain`
  whose `base_url` attribute is the only place the host is spelled ("https://api.twilio.com" for
  `client.api`); all request and pagination URLs are built from it. Setting `client.api.base_url`
  therefore re-points the whole 2010-04-01 API (Messages, Calls, ...) without patching the SDK or
  rewriting URLs in a custom HTTP client. The tests point it at a fake on loopback
  (tests/fake_twilio.py); production leaves the default.
* Edge/region. `Client` reads TWILIO_EDGE / TWILIO_REGION from the process environment and then
  rewrites the request host into `api.{edge}.{region}.twilio.com` form, which mangles any other
  host (with TWILIO_REGION=au1, 127.0.0.1:8080 becomes 127.au1.0.1:8080). With a non-default
  base URL both are cleared, so the URL from settings is the URL used.
* Credentials are passed explicitly, so TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN in the
  environment are never picked up behind the settings' back.
* Proxy and CA bundle. `requests` reads the proxy variables (HTTPS_PROXY, NO_PROXY...: two
  scans of the whole environment) and REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE again on every
  request, about a third of the CPU of a send. They are read once here, for the base URL's
  host, and the session no longer looks at the environment: the same proxy and bundle, as a
  process's environment does not change while it runs.

The returned client keeps a `requests.Session` (connection pooling); close it with
`client.http_client.session.close()` when it is thrown away.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from requests.utils import get_environ_proxies
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

TWILIO_API_BASE_URL = "https://api.twilio.com"


def make_twilio_client(
    account_sid: str,
    auth_token: str,
    api_base_url: str = TWILIO_API_BASE_URL,
    timeout_seconds: float = 10.0,
) -> Client:
    """A Twilio REST client for `account_sid`, talking to `api_base_url` with a request timeout.

    `api_base_url` is scheme and host (and optionally a path prefix) standing in for
    "https://api.twilio.com"; `timeout_seconds` bounds connecting and each read, and must be
    positive. Raises ValueError for an unusable base URL or timeout.
    """
    if not timeout_seconds > 0:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
    base_url = api_base_url.strip().rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"api_base_url must be an http(s) URL with a host, got {api_base_url!r}")

    http_client = TwilioHttpClient(timeout=timeout_seconds, proxy=get_environ_proxies(base_url))
    session = http_client.session
    if session is not None:
        session.trust_env = False  # the environment's proxy and bundle are read just above
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
    client = Client(
        username=account_sid,
        password=auth_token,
        account_sid=account_sid,
        http_client=http_client,
    )
    if base_url != TWILIO_API_BASE_URL:
        client.api.base_url = base_url
        client.edge = None
        client.region = None
    return client
