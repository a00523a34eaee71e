"""Ready-made mappings: an event turned into the body a known receiver expects.

A subscription's `format` names one. `event` sends the event envelope as it is; the others
render a body from it, signed the same way (a receiver that cannot check signatures, such as
a Bitrix24 incoming webhook, is protected by the secret in its URL instead). Rendering is a
pure function of the stored event, so every retry sends the same body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway.webhooks.events import (
    CUSTOMER_NPS_CHANGED,
    INCIDENT_OPENED,
    SURVEY_COMMENTED,
    SURVEY_COMPLETED,
)

# format: the events it can render (None: any).
FORMATS: Mapping[str, tuple[str, ...] | None] = {
    "event": None,
    "crm.contact": (SURVEY_COMPLETED, SURVEY_COMMENTED, CUSTOMER_NPS_CHANGED),
    "bitrix24.task": (INCIDENT_OPENED,),
}

# What each format needs in the subscription's options, and their defaults.
OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "event": {},
    "crm.contact": {},
    "bitrix24.task": {"responsible_id": None, "group_id": None, "deadline_hours": 24},
}


class MappingError(ValueError):
    """A format's options are missing or wrong; the message names them."""


def check_options(format: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of `format` with defaults filled in; MappingError for a missing or unknown
    one."""
    known = OPTIONS.get(format, {})
    given = dict(options or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise MappingError(f"the {format} format has no option {', '.join(unknown)}")
    merged = {**known, **given}
    if format == "bitrix24.task":
        try:
            merged["responsible_id"] = int(merged["responsible_id"])
            merged["deadline_hours"] = int(merged["deadline_hours"])
            if merged["group_id"] is not None:
                merged["group_id"] = int(merged["group_id"])
        except (TypeError, ValueError) as exc:
            raise MappingError(
                "bitrix24.task needs options responsible_id (the Bitrix24 user id who gets "
                "the task), optional group_id and deadline_hours, all integers"
            ) from exc
    return {k: v for k, v in merged.items() if v is not None}


def render(format: str, envelope: Mapping[str, Any], options: Mapping[str, Any]) -> bytes:
    """The request body of `format` for one event envelope."""
    if format == "crm.contact":
        body = crm_contact(envelope)
    elif format == "bitrix24.task":
        body = bitrix24_task(envelope, options)
    else:
        raise MappingError(f"unknown format {format!r}")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def crm_contact(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """A contact update: who the customer is, their NPS class and their last scores.

    Keyed by the customer's id in the CRM (`external_id`) and phone, so the CRM can match
    the contact whichever it has.
    """
    data = envelope["data"]
    customer = data.get("customer") or {}
    survey = data.get("survey") or {}
    nps = data.get("nps") or customer.get("nps")
    fields: dict[str, Any] = {
        "last_survey_id": survey.get("id"),
        "last_survey_at": survey.get("finished_at") or (nps or {}).get("answered_at"),
        "last_scores": survey.get("scores", {}),
    }
    if survey.get("comment"):
        fields["last_comment"] = survey["comment"]
    if nps:
        fields["nps_score"] = nps["score"]
        fields["nps_class"] = nps["class"]
    return {
        "event_id": envelope["id"],
        "event": envelope["type"],
        "contact": {
            "external_id": customer.get("external_id"),
            "phone": customer.get("phone"),
            "name": customer.get("name"),
        },
        "fields": fields,
    }


_TITLES = {
    "ru": "Низкая оценка {score} из 5: {who}",
    "en": "Low score {score} of 5: {who}",
}


def bitrix24_task(envelope: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """`tasks.task.add` parameters: a task for the responsible person to call the customer."""
    data = envelope["data"]
    incident = data["incident"]
    interaction = data.get("interaction") or {}
    operator = interaction.get("operator") or {}
    customer = data.get("customer") or {}
    scores = (data.get("survey") or {}).get("scores", {})
    who = customer.get("name") or customer.get("phone") or customer.get("external_id") or "—"
    opened = datetime.fromisoformat(incident["opened_at"])
    deadline = opened + timedelta(hours=int(options.get("deadline_hours", 24)))
    lines = [
        f"Инцидент №{incident['id']}: оценка {incident['score']} из 5.",
        f"Клиент: {customer.get('name') or '—'}, телефон {customer.get('phone') or '—'}"
        + (f", id {customer['external_id']}" if customer.get("external_id") else ""),
        f"Обращение: {interaction.get('channel', '—')} {interaction.get('external_id', '')}"
        f", завершено {interaction.get('ended_at') or '—'}",
        f"Оператор: {operator.get('name') or operator.get('external_id') or '—'}"
        + (f" ({operator['team']})" if operator.get("team") else ""),
        "Оценки: " + (", ".join(f"{k} {v}" for k, v in scores.items()) or "—"),
        f"Событие {envelope['id']}",
    ]
    fields: dict[str, Any] = {
        "TITLE": _TITLES["ru"].format(score=incident["score"], who=who),
        "DESCRIPTION": "\n".join(lines),
        "RESPONSIBLE_ID": options["responsible_id"],
        "PRIORITY": "2",  # high
        "DEADLINE": deadline.isoformat(),
    }
    if options.get("group_id"):
        fields["GROUP_ID"] = options["group_id"]
    return {"fields": fields}
