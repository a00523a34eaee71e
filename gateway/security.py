"""What every request and response passes through: size limits, bounds, security headers.

* Size: `MAX_CONTENT_LENGTH` bounds every body, and a smaller limit holds for the Twilio
  webhooks and the dashboard's forms, which anyone may post to before they are authenticated.
  Werkzeug refuses a body over the limit from its Content-Length (or while reading a chunked
  one), before anything is parsed. Form fields are bounded one by one too.
* Bounds: integer path segments fit the database's integer, string segments fit its columns,
  and a NUL character (which PostgreSQL cannot store) in a path, query or JSON body is a 400.
* Headers: every response says nosniff, no framing, no referrer, HSTS behind https, a CSP
  (strict for HTML pages: styles and scripts only from this origin or with the page's nonce),
  and `Cache-Control: no-store` unless a view chose its own caching.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, Request, Response, abort, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

from gateway.config import current_settings

# The largest id PostgreSQL's integer holds; a larger one cannot name a row.
MAX_ID = 2**31 - 1
# Twilio's webhook forms are a few kilobytes; so is a sign-in form.
SMALL_FORM_BYTES = 64 * 1024
MAX_FORM_FIELD_BYTES = 16 * 1024
MAX_FORM_PARTS = 100
MAX_PATH_SEGMENT = 200
_SMALL_BODY_PREFIXES = ("/voice/", "/sms/", "/dashboard/")
# Where the providers' webhooks arrive: no cookie, no session.
_WEBHOOK_PREFIXES = ("/voice/", "/sms/")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def page_csp(nonce: str) -> str:
    """The CSP of an HTML page: nothing from elsewhere, inline code only with the nonce."""
    return (
        "default-src 'none'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; media-src 'self'; font-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


class BoundedInt(IntegerConverter):
    """`<int:...>` that only matches what fits a database id: a larger number is a 404."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value: str) -> Any:
        if len(value) > len(str(MAX_ID)):
            raise ValidationError()
        return super().to_python(value)


class BoundedString(UnicodeConverter):
    """`<string:...>` no longer than the columns it is looked up in."""

    def __init__(self, map: Any, minlength: int = 1, maxlength: int | None = None, **kw: Any):
        super().__init__(map, minlength, maxlength or MAX_PATH_SEGMENT, **kw)


def bounded_int_schema(converter: BoundedInt) -> dict[str, Any]:
    """How a bounded integer path parameter appears in the OpenAPI document."""
    return {"type": "integer", "minimum": 0, "maximum": converter.max}


def bounded_string_schema(converter: BoundedString) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_PATH_SEGMENT}


def install_converters(app: Flask) -> None:
    """Before any blueprint: every `<int:>` and `<string:>` route gets the bounded kind."""
    app.url_map.converters["int"] = BoundedInt
    app.url_map.converters["string"] = BoundedString
    app.url_map.converters["default"] = BoundedString


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _limit_and_check() -> None:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one lookup, not ten
    path = req.path
    if path.startswith(_SMALL_BODY_PREFIXES):
        req.max_content_length = SMALL_FORM_BYTES
    limit = req.max_content_length
    length = req.content_length
    if limit is not None and (length or 0) > limit:
        # Refused on the declared length, before any check that might read the body; a
        # chunked body is cut off by Werkzeug once it passes the same limit.
        abort(413, f"the request body is larger than {limit} bytes")
    if "\x00" in path:
        abort(400, "the request contains a NUL character")
    if req.query_string:  # without one the arguments are empty: nothing to parse or look at
        args = req.args
        if any(_has_nul(k) or _has_nul(v) for k, v in args.items(multi=True)):
            abort(400, "the request contains a NUL character")
        if "" in args and path.startswith("/api/"):
            # `?=x`: the API refuses parameters it does not know, and one without a name is one.
            abort(400, "a query parameter has no name")
    # Reading the body here is bounded by the limits above; the view gets the cached value.
    if length and req.is_json and _has_nul(req.get_json(silent=True)):
        abort(400, "the request contains a NUL character")


# Set on every response that does not set them itself.
_ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
# Reports, interactions and dashboard pages carry personal data: never cached.
_NOT_CACHED = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


# The same with each name lower-cased once, as `_headers` compares them.
_ALWAYS_LOWER = tuple((name.lower(), (name, value)) for name, value in _ALWAYS)


def _headers(response: Response) -> Response:
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    added = [header for lower, header in _ALWAYS_LOWER if lower not in present]
    if "content-security-policy" not in present:
        csp = page_csp(csp_nonce()) if response.mimetype == "text/html" else API_CSP
        added.append(("Content-Security-Policy", csp))
    if "strict-transport-security" not in present and (
        request.scheme == "https" or _public_https()
    ):
        added.append(_HSTS)
    if "cache-control" not in present:
        added.extend(h for h in _NOT_CACHED if h[0].lower() not in present)
    headers.extend(added)
    return response


def _public_https() -> bool:
    return str(current_settings().public_base_url).startswith("https://")


def csp_nonce() -> str:
    """This request's CSP nonce; templates put it on their inline <style> and <script>."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session (the dashboard's sign-in), not opened for a provider's
    webhook: it carries no cookie and needs none, and opening one costs a signer each time."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(_WEBHOOK_PREFIXES):
            return None  # Flask puts a null session in its place, which is never saved
        return super().open_session(app, request)


def init_app(app: Flask, max_content_length: int) -> None:
    app.config.update(
        MAX_CONTENT_LENGTH=max_content_length,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_FIELD_BYTES,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
    )
    install_converters(app)
    app.session_interface = CookieSessions()
    app.before_request(_limit_and_check)
    app.after_request(_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
