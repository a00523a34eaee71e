"""The supervisor's workspace: server-rendered pages in Russian (English by choice).

One parent blueprint, `dashboard` (url prefix `/dashboard`), holds the layout, the static
files, the sign-in check that every page passes (`auth.require_viewer`) and the error pages;
each group of pages is a blueprint of its own module nested in it, so its endpoints read
`dashboard.<group>.<view>`:

| module | pages |
| --- | --- |
| `auth` | sign-in, sign-out, who is signed in and what they may see |
| `reports` | operators' ranking, an operator, teams, the company, an interaction |
| `incidents` | low-score incidents |
| `language` | the language switch |

Translations are Flask-Babel catalogues under `translations/` (`make translations`).
"""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, url_for
from flask.typing import ResponseReturnValue


def _home() -> ResponseReturnValue:
    """`/`: the dashboard (its sign-in page when nobody is signed in)."""
    return redirect(url_for("dashboard.index"))


def _index() -> ResponseReturnValue:
    return redirect(url_for("dashboard.reports.operators"))


def create_blueprint() -> Blueprint:
    """The parent blueprint with every page group in it (a new one for each app)."""
    from gateway.dashboard import auth, errors, incidents, language, reports

    bp = Blueprint(
        "dashboard",
        __name__,
        url_prefix="/dashboard",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    bp.before_request(auth.require_viewer)
    bp.context_processor(auth.template_globals)
    errors.register(bp)
    bp.add_url_rule("/", "index", _index)
    for group in (auth.bp, language.bp, reports.bp, incidents.bp):
        bp.register_blueprint(group)
    return bp


def init_app(app: Flask) -> None:
    """Translations, the dashboard's pages and error pages, and `/` leading to them."""
    from gateway.dashboard import i18n, reasons

    i18n.init_app(app)
    reasons.init_app(app)
    app.register_blueprint(create_blueprint())
    app.add_url_rule("/", "home", _home)
