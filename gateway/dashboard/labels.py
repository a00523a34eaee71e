"""What the dashboard shows instead of a stored code (`office_visit`, `not_reached`, `cost`).

Templates write `value | label("channel")`; a code missing from its table is shown as it is
(so a new code is visible, never hidden). A page group with codes of its own adds a table here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import lazy_gettext as _l

LABELS: dict[str, dict[str, Any]] = {
    "channel": {
        "call": _l("Call"),
        "office_visit": _l("Office visit"),
        "request": _l("Request"),
    },
    "survey_channel": {
        "ivr": _l("Phone (IVR)"),
        "sms": _l("SMS"),
        "web": _l("Web link"),
        "email": _l("Email"),
    },
    "survey_kind": {
        "post_call": _l("On the same call"),
        "ivr_callback": _l("Call-back"),
        "sms": _l("SMS"),
        "web": _l("Web link"),
        "email": _l("Email"),
    },
    "survey_status": {
        "scheduled": _l("Scheduled"),
        "sending": _l("Sending"),
        "active": _l("In progress"),
        "completed": _l("Completed"),
        "partial": _l("Partly answered"),
        "expired": _l("No answer"),
        "not_sent": _l("Not sent"),
        "not_reached": _l("Not reached"),
        "failed": _l("Failed"),
    },
    "question": {
        "overall": _l("Overall"),
        "cost": _l("Cost"),
        "speed": _l("Speed"),
        "politeness": _l("Politeness"),
        "quality": _l("Quality"),
        "nps": _l("Would recommend (0-10)"),
        "importance_cost": _l("Importance of cost"),
        "importance_speed": _l("Importance of speed"),
        "importance_politeness": _l("Importance of politeness"),
        "importance_quality": _l("Importance of quality"),
        "comment": _l("Voice comment"),
    },
    "role": {
        "integration": _l("Integration"),
        "supervisor": _l("Supervisor"),
        "admin": _l("Administrator"),
        "operator": _l("Operator"),
    },
    "vs_team": {
        "above": _l("above the team"),
        "below": _l("below the team"),
        "no_difference": _l("as the team"),
    },
    "nps_class": {
        "promoter": _l("Promoter"),
        "passive": _l("Passive"),
        "detractor": _l("Detractor"),
    },
    "disposition": {
        "transferred": _l("Transferred"),
        "operator_hangup": _l("Operator hung up"),
    },
    "message_status": {  # Twilio's (and SMSC's) message statuses
        "accepted": _l("Accepted"),
        "scheduled": _l("Scheduled"),
        "queued": _l("Queued"),
        "pending": _l("Waiting"),
        "sending": _l("Sending"),
        "sent": _l("Sent"),
        "delivered": _l("Delivered"),
        "undelivered": _l("Not delivered"),
        "failed": _l("Failed"),
        "received": _l("Received"),
        "read": _l("Read"),
        "canceled": _l("Cancelled"),
    },
    "direction": {
        "outbound": _l("Sent to the customer"),
        "inbound": _l("From the customer"),
    },
    "attempt_outcome": {
        "answered": _l("Answered"),
        "completed": _l("Answered"),
        "busy": _l("Busy"),
        "no-answer": _l("No answer"),
        "failed": _l("Failed"),
        "canceled": _l("Cancelled"),
        "machine": _l("Answering machine"),
        "hangup": _l("Hung up before the survey"),
        "error": _l("Error"),
        "refused": _l("Refused by the provider"),
        "unknown": _l("Unknown"),
    },
    "measure": {  # what the trend chart draws
        "csat": _l("CSAT"),
        "overall_mean": _l("Mean"),
        "csi": _l("CSI"),
        "nps": _l("NPS"),
    },
    "granularity": {
        "day": _l("By day"),
        "week": _l("By week"),
        "month": _l("By month"),
    },
}


def label(code: Any, kind: str) -> str:
    """The reader's-language name of `code` in table `kind` (the code itself if unknown)."""
    if code is None:
        return "–"
    text = str(getattr(code, "value", code))
    found = LABELS.get(kind, {}).get(text)
    return str(found) if found is not None else text


def init_app(app: Flask) -> None:
    app.jinja_env.filters["label"] = label
