"""The signature on every outgoing webhook request.

`Survey-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC keyed with the
subscription's secret over `<t>.<raw body>`. Signing the timestamp with the body lets a
receiver refuse a request replayed later (docs/webhooks.md has its verification code).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Survey-Gateway-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh subscription secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
