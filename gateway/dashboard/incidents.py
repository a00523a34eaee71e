"""Incident pages: the list (filtered, paged) and the card, where a supervisor assigns,
comments, resolves with a cause, reopens, archives and surveys the customer again.

Every change goes through gateway.incidents (and gateway.resurvey), as the API's do; each
action ends with a message and the card again.
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from gateway.config import Settings, current_settings
from gateway.dashboard import auth, labels, reasons
from gateway.db import current_session, utcnow
from gateway.incidents import (
    IncidentError,
    IncidentFilter,
    archive_incident,
    assign_incident,
    close_incident,
    comment_incident,
    count_incidents,
    find_incident,
    follow_ups_of,
    history,
    is_overdue,
    list_incidents,
    low_parameters,
    may_call_back,
    reopen_incident,
    resolve_incident,
)
from gateway.models import ApiRole, Incident, IncidentStatus, InteractionChannel
from gateway.phones import mask_phone
from gateway.privacy import audit_number_reads
from gateway.resurvey import ResurveyError, request_follow_up

PAGE_SIZE = 25
# The list's status choice: the codes of IncidentStatus, the older `closed`, or every
# incident not archived.
ACTIVE = "active"


bp = Blueprint("incidents", __name__, url_prefix="/incidents")

# The codes of these pages, as the `label` filter shows them (gateway.dashboard.labels).
INCIDENT_LABELS: dict[str, dict[str, Any]] = {
    "incident_status": {
        ACTIVE: _l("Open and resolved"),
        "open": _l("Open"),
        "resolved": _l("Resolved"),
        "archived": _l("Archived"),
    },
    "incident_cause": {  # the default INCIDENT_CAUSES; other codes are shown as they are
        "operator_conduct": _l("Operator's conduct"),
        "wrong_information": _l("Wrong information"),
        "long_wait": _l("Long wait"),
        "tariff_or_price": _l("Tariff or price"),
        "technical_fault": _l("Technical fault"),
        "process": _l("Process"),
        "customer_expectation": _l("Customer's expectation"),
        "other": _l("Other"),
    },
    "alert_kind": {
        "opened": _l("new incident"),
        "overdue": _l("overdue"),
    },
    "alert_outcome": {
        "sent": _l("sent"),
        "failed": _l("not sent"),
        "no_recipient": _l("nobody to send it to"),
    },
    "incident_action": {
        "incident.assign": _l("Assigned"),
        "incident.comment": _l("Commented"),
        "incident.resolve": _l("Resolved"),
        "incident.close": _l("Closed"),
        "incident.reopen": _l("Reopened"),
        "incident.archive": _l("Archived it"),
        "incident.alert": _l("Alert sent"),
    },
}


@bp.record_once
def _add_labels(_state: Any) -> None:
    labels.LABELS.update(INCIDENT_LABELS)


def _db() -> Session:
    return current_session()


def _settings() -> Settings:
    return current_settings()


def _scope() -> frozenset[int] | None:
    """The ids of the teams the viewer sees (None: every team), by gateway.access: an
    operator sees no incident (customers' numbers are in them); a supervisor sees all their
    teams at once and narrows the list with the team filter."""
    scope = auth.scope()
    if scope.role is ApiRole.ADMIN:
        return None
    if scope.role is not ApiRole.SUPERVISOR:
        abort(403, _("This page is not open to your role."))
    return scope.team_ids or frozenset()


def _incident(incident_id: int) -> Incident:
    incident = find_incident(_db(), incident_id, _scope())
    if incident is None:
        abort(404, _("There is no such incident in your teams."))
    return incident


@bp.get("")
def index() -> ResponseReturnValue:
    """Incidents of the viewer's teams, newest first, filtered and paged."""
    args = request.args
    status = args.get("status") or IncidentStatus.OPEN.value
    if status == "closed":
        status = IncidentStatus.RESOLVED.value
    if status not in {s.value for s in IncidentStatus} | {ACTIVE}:
        abort(400, _("Choose a status from the list."))
    channel = args.get("channel") or None
    if channel is not None and channel not in {c.value for c in InteractionChannel}:
        abort(400, _("Choose a channel from the list."))
    try:
        page = max(1, int(args.get("page") or 1))
    except ValueError:
        abort(400, _("The page number must be a whole number."))
    team = auth.visible_team(args.get("team") or None)
    now = utcnow()
    flt = IncidentFilter(
        status=None if status == ACTIVE else status,
        team_ids=_scope(),
        team=team,
        operator_external_id=args.get("operator") or None,
        channel=InteractionChannel(channel) if channel else None,
        overdue=True if args.get("overdue") == "1" else None,
        assignee=args.get("assignee") or None,
    )
    session = _db()
    total = count_incidents(session, flt, now)
    pages = max(1, ceil(total / PAGE_SIZE))
    rows = list_incidents(
        session, flt=flt, limit=PAGE_SIZE, offset=(min(page, pages) - 1) * PAGE_SIZE, now=now
    )
    threshold = _settings().low_score_threshold
    chosen = {k: v for k, v in args.items() if k != "page" and v}
    return render_template(
        "dashboard/incidents/list.html",
        rows=[
            {
                "incident": row,
                "overdue": is_overdue(row, now),
                "low": low_parameters(row.session, threshold),
            }
            for row in rows
        ],
        status=status,
        statuses=[ACTIVE, *(s.value for s in IncidentStatus)],
        chosen=chosen,
        team=team,
        teams=auth.selectable_teams(),
        fixed_team=auth.own_team() is not None,
        channels=[c.value for c in InteractionChannel],
        total=total,
        page=min(page, pages),
        pages=pages,
    )


@bp.get("/<int:incident_id>")
def card(incident_id: int) -> ResponseReturnValue:
    """An incident's card: the contact, the answers, the comment, the history, the actions."""
    incident = _incident(incident_id)
    session = _db()
    survey = incident.session
    customer = survey.interaction.customer
    full = may_call_back(auth.scope().role, _scope(), incident)
    phone = customer.phone if customer else None
    if customer is not None and phone and full:
        # Shown in full to call back: audited as the API's reads of numbers are.
        audit_number_reads(session, auth.actor(), [customer.id], request.path, utcnow())
        session.commit()
    return render_template(
        "dashboard/incidents/card.html",
        incident=incident,
        survey=survey,
        interaction=survey.interaction,
        overdue=is_overdue(incident, utcnow()),
        low=low_parameters(survey, _settings().low_score_threshold),
        phone=phone if full else mask_phone(phone),
        phone_full=bool(phone) and full,
        history=history(session, incident),
        follow_ups=follow_ups_of(session, survey),
        causes=_settings().incident_causes,
    )


def _back(incident_id: int) -> ResponseReturnValue:
    return redirect(url_for("dashboard.incidents.card", incident_id=incident_id))


def _refused(incident_id: int, message: str) -> ResponseReturnValue:
    flash(message, "error")
    return _back(incident_id)


def _change(
    incident: Incident, change: Callable[[Session, Incident, str], Any], done: str
) -> ResponseReturnValue:
    """Apply a change through the domain; its message, else the domain's refusal."""
    session = _db()
    try:
        change(session, incident, auth.actor())
    except ResurveyError as exc:
        session.rollback()
        return _refused(
            incident.id,
            _(
                "The customer cannot be surveyed again now: %(why)s",
                why=reasons.reason(str(exc)),
            ),
        )
    except IncidentError:
        session.rollback()
        return _refused(incident.id, _("Reload the card: the incident has changed meanwhile."))
    session.commit()
    flash(done, "success")
    return _back(incident.id)


def _form(name: str) -> str:
    return request.form.get(name, "").strip()


def _open(incident: Incident) -> bool:
    return incident.status == IncidentStatus.OPEN.value


@bp.post("/<int:incident_id>/assign")
def assign(incident_id: int) -> ResponseReturnValue:
    incident = _incident(incident_id)
    assignee = _form("assignee") or auth.viewer().name or auth.viewer().username
    if not _open(incident):
        return _refused(incident_id, _("Reopen the incident before you change it."))
    return _change(
        incident,
        lambda s, i, actor: assign_incident(s, i, actor, assignee, utcnow()),
        _("Incident %(id)s is assigned to %(who)s.", id=incident_id, who=assignee),
    )


@bp.post("/<int:incident_id>/comment")
def comment(incident_id: int) -> ResponseReturnValue:
    incident = _incident(incident_id)
    text = _form("text")
    if not text:
        return _refused(incident_id, _("Write a comment first."))
    return _change(
        incident,
        lambda s, i, actor: comment_incident(s, i, actor, text, utcnow()),
        _("Your comment is added to incident %(id)s.", id=incident_id),
    )


@bp.post("/<int:incident_id>/resolve")
def resolve(incident_id: int) -> ResponseReturnValue:
    incident = _incident(incident_id)
    cause, note = _form("cause"), _form("note")
    causes = _settings().incident_causes
    if not _open(incident):
        return _refused(incident_id, _("Reopen the incident before you change it."))
    if cause not in causes:
        return _refused(incident_id, _("Choose a cause from the list."))
    if not note:
        return _refused(incident_id, _("Write what was done."))
    return _change(
        incident,
        lambda s, i, actor: resolve_incident(s, i, actor, cause, note, utcnow(), causes),
        _("Incident %(id)s is resolved.", id=incident_id),
    )


@bp.post("/<int:incident_id>/close")
def close(incident_id: int) -> ResponseReturnValue:
    """Resolve with a note only (the list's quick form of earlier versions)."""
    incident = _incident(incident_id)
    resolution = _form("resolution")
    if not resolution:
        flash(_("Write what was done before closing the incident."), "error")
        return redirect(url_for("dashboard.incidents.index"))
    return _change(
        incident,
        lambda s, i, actor: close_incident(s, i, actor, resolution, utcnow()),
        _("Incident %(id)s is closed.", id=incident_id),
    )


@bp.post("/<int:incident_id>/reopen")
def reopen(incident_id: int) -> ResponseReturnValue:
    incident = _incident(incident_id)
    reason = _form("reason")
    settings = _settings()
    if _open(incident):
        return _refused(incident_id, _("The incident is open already."))
    if not reason:
        return _refused(incident_id, _("Say why the incident is reopened."))
    return _change(
        incident,
        lambda s, i, actor: reopen_incident(s, i, actor, reason, utcnow(), settings),
        _("Incident %(id)s is open again.", id=incident_id),
    )


@bp.post("/<int:incident_id>/archive")
def archive(incident_id: int) -> ResponseReturnValue:
    incident = _incident(incident_id)
    if incident.status != IncidentStatus.RESOLVED.value:
        return _refused(incident_id, _("Only a resolved incident can be archived."))
    return _change(
        incident,
        lambda s, i, actor: archive_incident(s, i, actor, utcnow()),
        _("Incident %(id)s is archived.", id=incident_id),
    )


@bp.post("/<int:incident_id>/resurvey")
def resurvey(incident_id: int) -> ResponseReturnValue:
    """Survey the customer again after the fix (gateway.resurvey)."""
    settings = _settings()
    return _change(
        _incident(incident_id),
        lambda s, i, actor: request_follow_up(s, i.session.interaction, actor, settings, utcnow()),
        _("The customer will be surveyed again (a follow-up, not a new contact)."),
    )
