"""Who is signed in to the dashboard, and what they may see.

People sign in with their own account (gateway.accounts): a supervisor, an operator or an
admin. The login cookie (Flask's signed session) carries a session token whose session lives
in the database (gateway.sessions): signing out ends it on every worker, and disabling the
account or resetting its password ends it too. Every form, the sign-in form included, carries
a CSRF token. Wrong passwords lock the account for a while; failed sign-ins from one address
are slowed down as failed API keys are (gateway.throttle).

What a person sees is the rule of gateway.access, the API's own: the other page groups ask
this module only (`scope()`, `visible_team()`, `actor()`, `require_role()`).
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

from gateway import access, throttle
from gateway.accounts import SignInResult, sign_in
from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.models import Account, ApiRole, Team
from gateway.sessions import end_session, session_account, start_account_session

bp = Blueprint("auth", __name__)

# Pages anyone may open: the sign-in form, the language switch, the style sheets.
OPEN_PAGES = {"dashboard.auth.login", "dashboard.language.switch", "dashboard.static"}


def _signed_in() -> Account | None:
    return session_account(current_session(), session.get("sid"), utcnow())


def _check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, _("The form has expired. Reload the page and send it again."))


def require_viewer() -> ResponseReturnValue | None:
    """Before every dashboard page: a signed-in person, and a CSRF token on every form sent."""
    if request.endpoint in OPEN_PAGES:
        return None
    account = _signed_in()
    if account is None:
        return redirect(url_for("dashboard.auth.login", next=request.full_path))
    g.account = account
    g.scope = access.scope_of_account(account)
    if request.method == "POST":
        _check_csrf()
    return None


def template_globals() -> dict[str, Any]:
    signed_in = g.get("account")
    return {
        "csrf_token": session.get("csrf_token", ""),
        "signed_in": signed_in,
        "own_operator": own_operator() if signed_in is not None else None,
    }


def viewer() -> Account:
    """The signed-in person of this request."""
    return g.account  # type: ignore[no-any-return]


def scope() -> access.Scope:
    """What the signed-in person may see (gateway.access)."""
    return g.scope  # type: ignore[no-any-return]


def actor() -> str:
    """How the signed-in person is named in the audit log."""
    return scope().actor


def require_role(*roles: ApiRole) -> None:
    """A 403 page unless the person has one of these roles (an admin always has)."""
    if scope().role not in (*roles, ApiRole.ADMIN):
        abort(403, _("This page is not open to your role."))


def own_team() -> str | None:
    """The one team the viewer is limited to (a supervisor of one team); None otherwise."""
    teams = scope().team_names
    return teams[0] if scope().role is ApiRole.SUPERVISOR and len(teams) == 1 else None


def own_operator() -> str | None:
    """The one operator (external id) whose figures alone the viewer may see (an operator's
    account); None: any operator of the viewer's teams."""
    return scope().operator_external_id if scope().role is ApiRole.OPERATOR else None


def report_limits(asked: str | None) -> access.ReportLimits:
    """The limits of a page's figures: the team asked for, within what the viewer may see.

    Another team than a supervisor's own is a 403; a team that does not exist a 404.
    """
    try:
        limits = access.report_limits(scope(), asked)
    except access.OutOfScope:
        teams = ", ".join(scope().team_names)
        abort(403, _("You can see your own teams only (%(teams)s).", teams=teams))
    team = limits.team
    if team and current_session().scalar(select(Team.id).where(Team.name == team)) is None:
        abort(404, _("There is no team named “%(team)s”. Choose one from the list.", team=team))
    return limits


def visible_team(asked: str | None) -> str | None:
    """The team a page is limited to (see `report_limits`)."""
    return report_limits(asked).team


def selectable_teams() -> list[str]:
    """The teams the viewer may choose between in a filter."""
    if scope().role is ApiRole.SUPERVISOR:
        return list(scope().team_names)
    if scope().role is ApiRole.OPERATOR:
        return []
    return list(current_session().scalars(select(Team.name).order_by(Team.name)))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Sign in with a username and password."""
    error, status, wait = None, 200, None
    username = ""
    if request.method == "POST":
        _check_csrf()
        db = current_session()
        settings = current_settings()
        username = request.form.get("username", "").strip()[:100]
        subjects = throttle.subjects(request.remote_addr, "")
        now = utcnow()
        wait = throttle.retry_after(db, subjects, now)
        if wait is not None:
            error = _("Too many failed attempts. Try again in %(seconds)s s.", seconds=wait)
            status = 429
        else:
            result = sign_in(db, username, request.form.get("password", ""), settings, now)
            if result.result is SignInResult.SIGNED_IN and result.account is not None:
                token = start_account_session(db, result.account, now)
                db.commit()
                session.clear()
                session["sid"] = token
                session["csrf_token"] = secrets.token_urlsafe(32)
                who = result.account.name or result.account.username
                flash(_("You are signed in as %(name)s.", name=who), "success")
                target = request.args.get("next", "")
                # Only paths of this dashboard: never an open redirect elsewhere.
                if not target.startswith("/dashboard/") or target.startswith("/dashboard//"):
                    target = url_for("dashboard.index")
                return redirect(target)
            throttle.record_failure(db, subjects, now)
            db.commit()
            if result.result is SignInResult.LOCKED and result.locked_until is not None:
                until = result.locked_until.astimezone(settings.report_zone)
                wait = max(1, int((result.locked_until - now).total_seconds()))
                error = _(
                    "Too many wrong passwords: this account is locked until %(time)s on "
                    "%(date)s. Try again then, or ask an administrator to reset the password.",
                    time=until.strftime("%H:%M"),
                    date=until.strftime("%d.%m.%Y"),
                )
                status = 429
            else:
                error = _("Wrong username or password. Check them and try again.")
                status = 401
    # A token before sign-in too: a forged cross-site sign-in (login CSRF) is refused.
    session.setdefault("csrf_token", secrets.token_urlsafe(32))
    response = current_app.make_response(
        (render_template("dashboard/auth/login.html", error=error, username=username), status)
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
