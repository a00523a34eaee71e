"""Who is signed in to the dashboard, and what they may see.

Sign-in is by a supervisor or admin API key. The login cookie (Flask's signed session)
carries a session token whose session lives in the database (gateway.sessions): signing out
ends it on every worker, and revoking or expiring the key ends it too. Every form, the
sign-in form included, carries a CSRF token; failed sign-ins are slowed down as failed API
keys are (gateway.throttle).

The other page groups ask this module only: `viewer()`, `actor()`, `own_team()`,
`own_operator()`, `visible_team()`, `selectable_teams()`.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from gateway import throttle
from gateway.apikeys import authenticate, sees_own_team_only
from gateway.db import current_session, utcnow
from gateway.models import ApiKey, ApiRole, Team
from gateway.sessions import end_session, session_key, start_session

bp = Blueprint("auth", __name__)

# Pages anyone may open: the sign-in form, the language switch, the style sheets.
OPEN_PAGES = {"dashboard.auth.login", "dashboard.language.switch", "dashboard.static"}


def _signed_in_key() -> ApiKey | None:
    return session_key(current_session(), session.get("sid"), utcnow())


def _check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, _("The form has expired. Reload the page and send it again."))


def require_viewer() -> ResponseReturnValue | None:
    """Before every dashboard page: a signed-in supervisor or admin, and a CSRF token on
    every form sent."""
    if request.endpoint in OPEN_PAGES:
        return None
    key = _signed_in_key()
    if key is None:
        return redirect(url_for("dashboard.auth.login", next=request.full_path))
    if key.role not in (ApiRole.SUPERVISOR, ApiRole.ADMIN):
        abort(403, _("The dashboard is for supervisors and administrators."))
    g.api_key = key
    if request.method == "POST":
        _check_csrf()
    return None


def template_globals() -> dict[str, Any]:
    signed_in = g.get("api_key")
    return {
        "csrf_token": session.get("csrf_token", ""),
        "signed_in": signed_in,
        "own_operator": own_operator() if signed_in is not None else None,
    }


def viewer() -> ApiKey:
    """The signed-in person (their key) of this request."""
    return g.api_key  # type: ignore[no-any-return]


def actor() -> str:
    """How the signed-in person is named in the audit log."""
    key = viewer()
    return f"{key.role.value}:{key.name}"


def own_team() -> str | None:
    """The one team the viewer is limited to; None: every team."""
    key = viewer()
    if sees_own_team_only(key):
        return key.team.name if key.team else ""
    return None


def own_operator() -> str | None:
    """The one operator (external id) whose figures alone the viewer may see; None: any
    operator of the viewer's teams. (Supervisors and admins see every operator.)"""
    return None


def visible_team(asked: str | None) -> str | None:
    """The team a page is limited to: what was asked for, within what the viewer may see.

    Another team than a supervisor's own is a 403; a team that does not exist a 404.
    """
    own = own_team()
    if own is not None and asked and asked != own:
        abort(403, _("You can see your own team only (%(team)s).", team=own))
    team = own if own is not None else (asked or None)
    if team and current_session().scalar(select(Team.id).where(Team.name == team)) is None:
        abort(404, _("There is no team named “%(team)s”. Choose one from the list.", team=team))
    return team


def selectable_teams() -> list[str]:
    """The teams the viewer may choose between in a filter."""
    own = own_team()
    if own is not None:
        return [own] if own else []
    return list(current_session().scalars(select(Team.name).order_by(Team.name)))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Sign in with a supervisor or admin API key."""
    error, status, wait = None, 200, None
    if request.method == "POST":
        _check_csrf()
        db = current_session()
        presented = request.form.get("api_key", "").strip()
        subjects = throttle.subjects(request.remote_addr, presented)
        wait = throttle.retry_after(db, subjects, utcnow())
        key = None if wait is not None else authenticate(db, presented)
        if wait is not None:
            error = _("Too many failed attempts. Try again in %(seconds)s s.", seconds=wait)
            status = 429
        elif key is None or key.role not in (ApiRole.SUPERVISOR, ApiRole.ADMIN):
            throttle.record_failure(db, subjects, utcnow())
            db.commit()
            error = _("That is not a valid supervisor or administrator key. Check it and retry.")
            status = 401
        else:
            token = start_session(db, key, utcnow())
            db.commit()
            session.clear()
            session["sid"] = token
            session["csrf_token"] = secrets.token_urlsafe(32)
            flash(_("You are signed in as %(name)s.", name=key.name), "success")
            target = request.args.get("next", "")
            # Only paths of this dashboard: never an open redirect elsewhere.
            if not target.startswith("/dashboard/") or target.startswith("/dashboard//"):
                target = url_for("dashboard.index")
            return redirect(target)
    # A token before sign-in too: a forged cross-site sign-in (login CSRF) is refused.
    session.setdefault("csrf_token", secrets.token_urlsafe(32))
    response = current_app.make_response(
        (render_template("dashboard/auth/login.html", error=error), status)
    )
    if status == 429 and wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out: the session ends in the database, so a copy of the cookie is worthless."""
    db = current_session()
    end_session(db, session.get("sid"), utcnow())
    db.commit()
    session.clear()
    flash(_("You are signed out."), "success")
    return redirect(url_for("dashboard.auth.login"))
