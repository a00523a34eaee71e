"""Dashboard errors are pages in the reader's language that say what to do, never JSON.

A view aborts with a sentence already translated (`abort(404, _("..."))`); an error without
one of its own (an unknown address, a failure) gets the general sentence of its status.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, InternalServerError

TITLES = {
    400: _l("The request cannot be read"),
    403: _l("Not available to you"),
    404: _l("Not found"),
    405: _l("Not available this way"),
    409: _l("Already changed"),
    413: _l("Too large"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong"),
}
ADVICE = {
    400: _l("Check what you entered and try again."),
    403: _l("Ask an administrator if you need access to this page."),
    404: _l("The address may be mistyped or out of date. Start again from the menu."),
    405: _l("Go back and use the buttons of the page."),
    409: _l("Someone changed it meanwhile. Reload the page to see it as it is now."),
    413: _l("Send a shorter text."),
    429: _l("Wait a minute, then try again."),
    500: _l("The error is logged. Try again in a minute; if it persists, tell an administrator."),
}


def _page(status: int, message: str | None) -> ResponseReturnValue:
    title = TITLES.get(status) or TITLES[500 if status >= 500 else 400]
    advice = ADVICE.get(status) or ADVICE[500 if status >= 500 else 400]
    return render_template(
        "dashboard/error.html", status=status, title=title, message=message, advice=advice
    ), status


def http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    own = error.description if error.description != type(error).description else None
    response = _page(status, own)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        rendered = current_app.make_response(response)
        rendered.headers["Retry-After"] = str(retry_after)
        return rendered
    return response


def unexpected_error(error: Exception) -> ResponseReturnValue:
    if isinstance(error, HTTPException):
        return http_error(error)
    current_app.logger.exception("dashboard page failed")
    return _page(InternalServerError.code, None)


def _unknown_page(rest: str) -> ResponseReturnValue:
    abort(404)


def register(bp: Blueprint) -> None:
    """Error pages for every page of `bp` and its groups, and a 404 page for unknown paths."""
    bp.register_error_handler(HTTPException, http_error)
    bp.register_error_handler(Exception, unexpected_error)
    bp.add_url_rule("/<path:rest>", "unknown_page", _unknown_page, methods=["GET", "POST"])
