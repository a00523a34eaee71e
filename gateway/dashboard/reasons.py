"""The reader's-language form of the English texts the domain stores or raises: why a survey
was not sent or failed, why a re-survey is refused, why an incident was reopened, who did it.

The domain writes these once, in English, for logs, the API and the audit trail; the pages
show them translated. Templates write `text | reason` and `actor | actor`; a text no rule
knows (a provider's own error) is shown as it is, so nothing is hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from gateway.dashboard import labels

# Exact texts, as gateway.dispatch, gateway.interactions, the channels, gateway.privacy and
# gateway.resurvey write them.
EXACT: dict[str, Any] = {
    "customer opted out": _l("the customer opted out of surveys"),
    "the customer opted out of surveys": _l("the customer opted out of surveys"),
    "no valid mobile number": _l("no valid mobile number"),
    "no phone number for the customer": _l("the customer has no phone number"),
    "no phone number": _l("the customer has no phone number"),
    "the customer has no phone number": _l("the customer has no phone number"),
    "no email address for the customer": _l("the customer has no email address"),
    "no email address": _l("the customer has no email address"),
    "the customer has no email address": _l("the customer has no email address"),
    "visit older than SMS_SURVEY_MAX_LATENESS_HOURS": _l(
        "too late: the contact is older than the survey may be"
    ),
    "surveyed within SURVEY_COOLDOWN_DAYS": _l("the customer was surveyed recently (the cooldown)"),
    "call outcome unknown when its lease expired; not called again": _l(
        "the call's outcome is unknown; not called again, so as not to call twice"
    ),
    "the customer's personal data was erased": _l("the customer's personal data was erased"),
    "TWILIO_FROM_NUMBER is not set: outbound calls need a caller id": _l(
        "the gateway has no number to call from (TWILIO_FROM_NUMBER)"
    ),
    "this contact was never surveyed; there is nothing to ask again": _l(
        "this contact was never surveyed, so there is nothing to ask again"
    ),
    "the contact has no customer to ask": _l("the contact has no customer to ask"),
}


PROVIDERS = {"twilio": "Twilio", "smsc": "SMSC.ru"}


def _status(match: re.Match[str]) -> str:
    return labels.label(match.group("status"), "survey_status")


PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"not reached in (?P<n>\d+) call\(s\)"),
        lambda m: _("calls that did not reach the customer: %(num)s", num=int(m.group("n"))),
    ),
    (
        re.compile(r"the contact's survey is still (?P<status>\w+); wait until it ends"),
        lambda m: _(
            "the first survey is still “%(status)s”; wait until it ends", status=_status(m)
        ),
    ),
    (
        re.compile(
            r"a re-survey of this contact is already (?P<status>\w+) \(survey (?P<id>\d+)\)"
        ),
        lambda m: _(
            "a re-survey of this contact is under way already (“%(status)s”, survey %(id)s)",
            status=_status(m),
            id=m.group("id"),
        ),
    ),
    (
        re.compile(r"the re-survey after the fix scored (?P<score>\d+)"),
        lambda m: _("the re-survey after the fix scored %(score)s", score=m.group("score")),
    ),
    (
        # A provider's refusal, as gateway.provider_errors and sms.smsc write it: the code and
        # the provider's own words, which stay as they are.
        re.compile(r"(?P<provider>twilio|smsc) (?P<code>\d+): (?P<text>.+)", re.S),
        lambda m: _(
            "refused by %(provider)s, error %(code)s: %(text)s",
            provider=PROVIDERS[m.group("provider")],
            code=m.group("code"),
            text=m.group("text"),
        ),
    ),
    (
        re.compile(r"email: (?P<error>.+)", re.S),
        lambda m: _("the email was not accepted: %(error)s", error=m.group("error")),
    ),
]

ACTORS: dict[str, Any] = {
    "system:alerts": _l("Alerts"),
    "system:re-survey": _l("Re-survey after the fix"),
    "cli": _l("Command line"),
    "retention": _l("Data retention"),
}


def reason(text: str | None) -> str:
    """`text` in the reader's language when a rule knows it, else as it is."""
    if not text:
        return ""
    known = EXACT.get(text)
    if known is not None:
        return str(known)
    for pattern, render in PATTERNS:
        found = pattern.fullmatch(text)
        if found is not None:
            return render(found)
    return text


def actor(text: str | None) -> str:
    """Who did it, as the audit log names them (`supervisor:olga`): the role in the reader's
    language, then the account."""
    if not text:
        return "–"
    known = ACTORS.get(text)
    if known is not None:
        return str(known)
    role, sep, name = text.partition(":")
    if sep and role in labels.LABELS["role"]:
        return f"{labels.label(role, 'role')} {name}"
    return text


def init_app(app: Flask) -> None:
    app.jinja_env.filters["reason"] = reason
    app.jinja_env.filters["actor"] = actor
