"""Low-score incidents: the open (or closed) ones of the viewer's scope, closed with a note."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from gateway.apikeys import team_scope
from gateway.dashboard import auth
from gateway.db import current_session, utcnow
from gateway.incidents import IncidentError, close_incident, list_incidents, team_of
from gateway.models import Incident
from gateway.phones import mask_phone

bp = Blueprint("incidents", __name__, url_prefix="/incidents")


def _team_id() -> int | None:
    return team_scope(auth.viewer())


@bp.get("")
def index() -> ResponseReturnValue:
    """Open (or closed) low-score incidents of the viewer's scope."""
    status = "closed" if request.args.get("status") == "closed" else "open"
    rows = list_incidents(current_session(), status=status, team_id=_team_id(), limit=200)
    return render_template(
        "dashboard/incidents/list.html",
        rows=rows,
        status=status,
        mask_phone=mask_phone,
        since=utcnow() - timedelta(days=1),
    )


@bp.post("/<int:incident_id>/close")
def close(incident_id: int) -> ResponseReturnValue:
    """Close an incident with the resolution typed in the form."""
    db = current_session()
    incident = db.get(Incident, incident_id)
    team = _team_id()
    if incident is None or (team is not None and team_of(incident) != team):
        abort(404, _("There is no such incident in your teams."))
    resolution = request.form.get("resolution", "").strip()
    if not resolution:
        flash(_("Write what was done before closing the incident."), "error")
        return redirect(url_for("dashboard.incidents.index"))
    try:
        close_incident(db, incident, auth.actor(), resolution, utcnow())
    except IncidentError as exc:
        abort(409, str(exc))
    db.commit()
    flash(_("Incident %(id)s is closed.", id=incident_id), "success")
    return redirect(url_for("dashboard.incidents.index"))
