"""Survey links: the token, the URL, its QR code and the ready text that carries it.

The token is 128 random bits (`secrets.token_urlsafe(16)`, 22 characters): unguessable,
bound to one survey, short enough for an SMS or a receipt. It grants one thing only:
answering that survey until it expires. It is stored as it is, so the API can hand the same
link out again, and a QR code can be printed at any time.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import segno

TOKEN_BYTES = 16

_TEXT = {
    "ru": "Оцените, пожалуйста, наше обслуживание — это займёт меньше минуты: {url}",
    "en": "Please rate our service, it takes less than a minute: {url}",
}


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def survey_url(public_base_url: str, token: str, score: int | None = None) -> str:
    """`{PUBLIC_BASE_URL}/r/<token>`, or `/r/<token>/<score>` for a one-tap first answer."""
    url = f"{public_base_url.rstrip('/')}/r/{token}"
    return url if score is None else f"{url}/{score}"


def qr_svg_data_uri(url: str) -> str:
    """The URL as a QR code, an SVG `data:` URI that a page or a receipt printer can use."""
    return str(segno.make(url, error="m").svg_data_uri(scale=4, border=2))


def ready_text(url: str, language: str) -> str:
    return _TEXT.get(language, _TEXT["ru"]).format(url=url)


def link_resource(
    public_base_url: str, token: str, language: str, expires_at: datetime | None
) -> Mapping[str, Any]:
    """What the API returns for a survey's link."""
    url = survey_url(public_base_url, token)
    return {
        "url": url,
        "expires_at": expires_at,
        "text": ready_text(url, language),
        "qr_svg": qr_svg_data_uri(url),
    }
