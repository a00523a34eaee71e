"""The dashboard's language and local time: Russian unless the person chose English.

Texts are gettext messages with English source. Each page group keeps its own Russian
catalogue, `translations/<group>/` (its `babel.cfg` names the group's files), so groups change
their texts without touching each other's; the catalogues are merged at run time. Compiled
`.mo` files are committed beside their `.po` (a test checks they match). The choice is a
cookie, so it holds before sign-in and across sessions. Dates and times are shown in
REPORT_TIMEZONE.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from babel.dates import format_date as babel_format_date
from babel.numbers import format_decimal, format_percent
from flask import Flask, has_request_context, request
from flask_babel import Babel, format_datetime, get_locale

from gateway.dashboard import labels

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
COOKIE = "dashboard_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
TRANSLATIONS = Path(__file__).parent / "translations"


def catalogue_directories() -> list[str]:
    """Every page group's catalogue folder, in a fixed order."""
    return sorted(str(p.parent) for p in TRANSLATIONS.glob("*/babel.cfg"))


def chosen_language() -> str:
    """The language of this request: the person's choice (cookie), else Russian."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    asked = request.cookies.get(COOKIE, "")
    return asked if asked in LANGUAGES else DEFAULT_LANGUAGE


def language() -> str:
    """The language the page is being rendered in (`ru` or `en`)."""
    return str(get_locale() or DEFAULT_LANGUAGE)


def local_datetime(value: datetime | None, format: str = "short") -> str:
    """A moment in REPORT_TIMEZONE, written the way the reader's language writes it."""
    if value is None:
        return "–"
    return format_datetime(value, format)


def local_date(value: date | str | None, format: str = "medium") -> str:
    """A calendar day (already a local day of REPORT_TIMEZONE) in the reader's language."""
    if value is None:
        return "–"
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return babel_format_date(value, format, locale=language())


def percent(value: float | None, digits: int = 0) -> str:
    """A share (0.873) as the reader writes a percentage (87 %, 87,3 %); – when unknown."""
    if value is None:
        return "–"
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return format_percent(value, pattern, locale=language())


def number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """A figure with `digits` decimals in the reader's writing (4,25); – when unknown."""
    if value is None:
        return "–"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    if signed:
        pattern = "+" + pattern + ";-" + pattern
    return format_decimal(value, pattern, locale=language())


def init_app(app: Flask) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LANGUAGE
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["SETTINGS"].report_zone.key
    Babel(
        app,
        locale_selector=chosen_language,
        default_translation_directories=";".join(catalogue_directories()),
    )
    labels.init_app(app)
    app.jinja_env.filters["local_datetime"] = local_datetime
    app.jinja_env.filters["local_date"] = local_date
    app.jinja_env.filters["percent"] = percent
    app.jinja_env.filters["number"] = number
    app.jinja_env.globals["page_language"] = language
