"""Twilio's side of a webhook, for the terminal simulators (`survey-gateway simulate ...`).

They post to a RUNNING gateway exactly as Twilio does: a form signed with the auth token,
answered with TwiML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import click
import requests
from twilio.request_validator import RequestValidator

HTTP_TIMEOUT_SECONDS = 15
DEMO_ACCOUNT_SID = "AC" + "0" * 32


class SimulationError(click.ClickException):
    """The gateway refused, or answered something Twilio would not accept."""


def post_signed(
    http: requests.Session, url: str, data: dict[str, str], auth_token: str
) -> ET.Element:
    """Post `data` to `url` signed as Twilio signs it; the TwiML document answered."""
    signature = RequestValidator(auth_token).compute_signature(url, data)
    try:
        response = http.post(
            url, data=data, headers={"X-Twilio-Signature": signature}, timeout=HTTP_TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        raise SimulationError(f"the gateway at {url} is unreachable: {exc}") from exc
    path = urlsplit(url).path
    if response.status_code == 403:
        raise SimulationError(
            f"403 from {path}: the signature was refused. The URL signed must be the "
            "gateway's PUBLIC_BASE_URL (--url) and the token its TWILIO_AUTH_TOKEN (--auth-token)"
        )
    if response.status_code != 200:
        raise SimulationError(f"{response.status_code} from {path}: {response.text[:300]}")
    try:
        return ET.fromstring(response.content)
    except ET.ParseError as exc:
        raise SimulationError(f"the gateway's answer to {path} is not TwiML: {exc}") from exc
