"""Supervisor dashboard: sign in with an API key, read ratings, handle incidents.

The login cookie (Flask's signed session) carries a session token whose session lives in the
database (gateway.sessions): signing out ends it on every worker, and revoking or expiring
the key ends it too. Every form, the sign-in form included, carries a CSRF token; failed
sign-ins are slowed down as failed API keys are (gateway.throttle).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import date, timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import throttle
from gateway.apikeys import authenticate
from gateway.db import utcnow
from gateway.incidents import IncidentError, close_incident, list_incidents, team_of
from gateway.models import ApiKey, ApiRole, Incident, InteractionChannel, Team
from gateway.phones import mask_phone
from gateway.reports.service import ReportError, ReportFilter, operators_report
from gateway.sessions import end_session, session_key, start_session

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates")

OPEN_PAGES = {"dashboard.login"}


def _db() -> Session:
    return current_app.extensions["database"].session()  # type: ignore[no-any-return]


def _signed_in_key() -> ApiKey | None:
    return session_key(_db(), session.get("sid"), utcnow())


def _check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, "the form is stale; reload the page and try again")


@bp.before_request
def _require_supervisor() -> ResponseReturnValue | None:
    if request.endpoint in OPEN_PAGES:
        return None
    key = _signed_in_key()
    if key is None:
        return redirect(url_for("dashboard.login", next=request.full_path))
    if key.role not in (ApiRole.SUPERVISOR, ApiRole.ADMIN):
        abort(403, "the dashboard is for supervisor and admin keys")
    g.api_key = key
    if request.method == "POST":
        _check_csrf()
    return None


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": session.get("csrf_token", ""), "signed_in": g.get("api_key")}


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Sign in with a supervisor or admin API key."""
    error, status, wait = None, 200, None
    if request.method == "POST":
        _check_csrf()
        db = _db()
        presented = request.form.get("api_key", "").strip()
        subjects = throttle.subjects(request.remote_addr, presented)
        wait = throttle.retry_after(db, subjects, utcnow())
        key = None if wait is not None else authenticate(db, presented)
        if wait is not None:
            error, status = f"Too many failed attempts; try again in {wait} s.", 429
        elif key is None or key.role not in (ApiRole.SUPERVISOR, ApiRole.ADMIN):
            throttle.record_failure(db, subjects, utcnow())
            db.commit()
            error, status = "That is not a live supervisor or admin key.", 401
        else:
            token = start_session(db, key, utcnow())
            db.commit()
            session.clear()
            session["sid"] = token
            session["csrf_token"] = secrets.token_urlsafe(32)
            target = request.args.get("next", "")
            # Only paths of this dashboard: never an open redirect elsewhere.
            if not target.startswith("/dashboard/") or target.startswith("/dashboard//"):
                target = url_for("dashboard.operators")
            return redirect(target)
    # A token before sign-in too: a forged cross-site sign-in (login CSRF) is refused.
    session.setdefault("csrf_token", secrets.token_urlsafe(32))
    response = current_app.make_response(
        (render_template("dashboard/login.html", error=error), status)
    )
    if status == 429 and wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out: the session ends in the database, so a copy of the cookie is worthless."""
    db = _db()
    end_session(db, session.get("sid"), utcnow())
    db.commit()
    session.clear()
    return redirect(url_for("dashboard.login"))


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("dashboard.operators"))


def _team_choice(key: ApiKey) -> tuple[str | None, list[str]]:
    """The team shown and the teams the key may choose from."""
    if key.role is ApiRole.SUPERVISOR:
        name = key.team.name if key.team else None
        return name, [name] if name else []
    teams = list(_db().scalars(select(Team.name).order_by(Team.name)))
    asked = request.args.get("team") or None
    return (asked if asked in teams else None), teams


def _dates() -> tuple[date, date]:
    today = utcnow().astimezone(current_app.config["SETTINGS"].report_zone).date()
    try:
        start = date.fromisoformat(request.args.get("from") or today.replace(day=1).isoformat())
        end = date.fromisoformat(request.args.get("to") or today.isoformat())
    except ValueError:
        abort(400, "dates are written 2026-11-01")
    return start, end


@bp.get("/operators")
def operators() -> ResponseReturnValue:
    """Operator ratings for a period, ranked as the API ranks them."""
    key: ApiKey = g.api_key
    team, teams = _team_choice(key)
    start, end = _dates()
    channel_text = request.args.get("channel") or None
    channel = None
    if channel_text in {c.value for c in InteractionChannel}:
        channel = InteractionChannel(channel_text)
    try:
        rows = operators_report(
            _db(),
            ReportFilter(
                start,
                end,
                channel=channel,
                team=team,
                zone=current_app.config["SETTINGS"].report_zone,
            ),
            current_app.config["SETTINGS"],
        )
    except ReportError as exc:
        abort(400, str(exc))
    return render_template(
        "dashboard/operators.html",
        rows=rows,
        start=start,
        end=end,
        team=team,
        teams=teams,
        channel=channel_text,
        channels=[c.value for c in InteractionChannel],
        fixed_team=key.role is ApiRole.SUPERVISOR,
        minimum=current_app.config["SETTINGS"].report_min_responses,
    )


def _team_id(key: ApiKey) -> int | None:
    return key.team_id if key.role is ApiRole.SUPERVISOR else None


@bp.get("/incidents")
def incidents() -> ResponseReturnValue:
    """Open (or closed) low-score incidents of the key's scope."""
    status = "closed" if request.args.get("status") == "closed" else "open"
    rows = list_incidents(_db(), status=status, team_id=_team_id(g.api_key), limit=200)
    return render_template(
        "dashboard/incidents.html",
        rows=rows,
        status=status,
        mask_phone=mask_phone,
        since=utcnow() - timedelta(days=1),
    )


@bp.post("/incidents/<int:incident_id>/close")
def close(incident_id: int) -> ResponseReturnValue:
    """Close an incident with the resolution typed in the form."""
    key: ApiKey = g.api_key
    db = _db()
    incident = db.get(Incident, incident_id)
    team = _team_id(key)
    if incident is None or (team is not None and team_of(incident) != team):
        abort(404)
    try:
        close_incident(
            db,
            incident,
            f"{key.role.value}:{key.name}",
            request.form.get("resolution", ""),
            utcnow(),
        )
    except IncidentError as exc:
        abort(409, str(exc))
    db.commit()
    return redirect(url_for("dashboard.incidents"))
