"""The language switch: the choice is kept in a cookie for a year, before and after sign-in."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _

from gateway.dashboard.i18n import COOKIE, COOKIE_MAX_AGE, LANGUAGES

bp = Blueprint("language", __name__)


@bp.get("/language/<lang>")
def switch(lang: str) -> ResponseReturnValue:
    """Show the dashboard in `lang` from now on, back on the page the person was reading."""
    if lang not in LANGUAGES:
        abort(404)
    target = request.args.get("next", "")
    # Only paths of this dashboard: never an open redirect elsewhere.
    if not target.startswith("/dashboard/") or target.startswith("/dashboard//"):
        target = url_for("dashboard.index")
    with force_locale(lang):  # said in the language just chosen
        chosen = (
            _("The dashboard is now in Russian.")
            if lang == "ru"
            else _("The dashboard is now in English.")
        )
    flash(chosen, "success")
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        lang,
        max_age=COOKIE_MAX_AGE,
        samesite="Lax",
        secure=request.is_secure,
        httponly=True,
    )
    return response
