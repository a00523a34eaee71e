"""`/r/<token>`: the web survey page, and `/r/<token>/<score>`, the one-tap first answer.

Thin views: find the survey by its token, ask the service what to show or apply what was
posted, render. Every POST redirects back to the page (post/redirect/get), so a reload
never posts twice. No login: the unguessable token is the customer's key to this survey.

One-tap links and prefetching: mail filters and messengers fetch links before (or without)
the customer tapping them. A GET therefore never records anything. `GET /r/<token>/<score>`
shows a page whose small static script (`onetap.js`, no inline code under the CSP) posts the
score at once when a browser really displays it; without scripts the customer taps the
button. Scanners that only fetch pages record nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.config import current_settings
from gateway.db import current_session, utcnow
from gateway.models import SurveySession
from gateway.websurvey import service
from gateway.websurvey.service import Page, PageKind
from gateway.websurvey.texts import LANGUAGES, TEXTS
from ivr_flows import QuestionType

bp = Blueprint(
    "websurvey",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/r/static",
)


def _language(survey: SurveySession | None) -> str:
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        return chosen
    if survey is not None and survey.language in LANGUAGES:
        return survey.language
    return current_settings().default_language


def _with_lang(endpoint: str, lang: str, **values: Any) -> str:
    return url_for(endpoint, lang=lang, **values)


def _render(page: Page, token: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    lang = _language(page.survey)
    other = "en" if lang == "ru" else "ru"
    t = TEXTS[lang]
    context: dict[str, Any] = {
        "lang": lang,
        "t": t,
        "page": page,
        "other_lang": other,
        "other_lang_url": (
            url_for(request.endpoint or "websurvey.show", lang=other, **(request.view_args or {}))
            if page.kind is not PageKind.UNKNOWN
            else None
        ),
        **extra,
    }
    if page.kind is PageKind.QUESTION and page.question is not None:
        question = page.question
        low, high = question.value_range or (1, 5)
        nps = question.type is QuestionType.NPS
        flow_language = lang if lang in question.text else next(iter(question.text))
        context.update(
            question_text=question.text_for("web", flow_language),
            values=list(range(low, high + 1)),
            low=t["low_nps"] if nps else t["low_rating"],
            high=t["high_nps"] if nps else t["high_rating"],
            action=_with_lang("websurvey.answer", lang, token=token),
        )
        return render_template("websurvey/question.html", **context), status
    if page.kind is PageKind.THANKS:
        context.update(
            comment_action=_with_lang("websurvey.comment", lang, token=token),
            again_action=_with_lang("websurvey.again", lang, token=token),
        )
        return render_template("websurvey/thanks.html", **context), status
    if page.kind is PageKind.CLOSED:
        context.update(heading=t["closed_title"], text=t["closed_text"])
        return render_template("websurvey/message.html", **context), 410
    context.update(heading=t["unknown_title"], text=t["unknown_text"])
    return render_template("websurvey/message.html", **context), 404


def _back(token: str) -> Response:
    lang = request.args.get("lang")
    target = url_for("websurvey.show", token=token, lang=lang if lang in LANGUAGES else None)
    return redirect(target, code=303)


@bp.get("/r/<token>")
def show(token: str) -> tuple[str, int]:
    session = current_session()
    survey = service.find_survey(session, token)
    return _render(service.page_for(session, survey, current_settings(), utcnow()), token)


@bp.get("/r/<token>/<int:score>")
def one_tap(token: str, score: int) -> Response | tuple[str, int]:
    session = current_session()
    survey = service.find_survey(session, token)
    page = service.page_for(session, survey, current_settings(), utcnow())
    if not service.one_tap_allowed(page, score):
        if page.kind is PageKind.UNKNOWN:
            return _render(page, token)
        return _back(token)  # answered already, or a score the question does not take
    lang = _language(survey)
    return render_template(
        "websurvey/confirm.html",
        lang=lang,
        t=TEXTS[lang],
        page=page,
        score=score,
        action=_with_lang("websurvey.one_tap_post", lang, token=token, score=score),
        other_lang=None,
        other_lang_url=None,
    ), 200


@bp.post("/r/<token>/<int:score>")
def one_tap_post(token: str, score: int) -> Response | tuple[str, int]:
    session = current_session()
    settings, now = current_settings(), utcnow()
    survey = service.find_survey(session, token, lock=True)
    if survey is None:
        return _render(Page(PageKind.UNKNOWN), token)
    page = service.page_for(session, survey, settings, now)
    if service.one_tap_allowed(page, score) and page.question is not None:
        service.answer(session, survey, page.question.key, score, settings, now)
        session.commit()
    return _back(token)


@bp.post("/r/<token>")
def answer(token: str) -> Response | tuple[str, int]:
    session = current_session()
    settings, now = current_settings(), utcnow()
    survey = service.find_survey(session, token, lock=True)
    if survey is None:
        return _render(Page(PageKind.UNKNOWN), token)
    key = request.form.get("question", "")
    raw = request.form.get("value")
    value: int | None = None
    if not request.form.get("skip"):
        try:
            value = int(raw or "")
        except ValueError:
            page = service.page_for(session, survey, settings, now)
            return _render(page, token, 400, error=True)
    try:
        service.answer(session, survey, key, value, settings, now)
    except service.BadAnswer:
        session.rollback()
        page = service.page_for(session, survey, settings, now)
        return _render(page, token, 400, error=True)
    session.commit()
    return _back(token)


@bp.post("/r/<token>/comment")
def comment(token: str) -> Response | tuple[str, int]:
    session = current_session()
    survey = service.find_survey(session, token, lock=True)
    if survey is None:
        return _render(Page(PageKind.UNKNOWN), token)
    text = request.form.get("comment", "")
    if service.add_comment(session, survey, text, current_settings(), utcnow()):
        session.commit()
    return _back(token)


@bp.get("/r/<token>/unsubscribe")
def unsubscribe_page(token: str) -> tuple[str, int]:
    """A page with the button: a GET (a mail scanner's) unsubscribes nobody."""
    survey = service.find_survey(current_session(), token)
    if survey is None:
        return _render(Page(PageKind.UNKNOWN), token)
    lang = _language(survey)
    action = _with_lang("websurvey.unsubscribe", lang, token=token)
    return render_template(
        "websurvey/unsubscribe.html", lang=lang, t=TEXTS[lang], done=False, action=action,
        other_lang=None, other_lang_url=None,
    ), 200  # fmt: skip


@bp.post("/r/<token>/unsubscribe")
def unsubscribe(token: str) -> tuple[str, int]:
    """The button, or a mail client's one-click POST (RFC 8058): no more surveys, anywhere."""
    session = current_session()
    survey = service.find_survey(session, token, lock=True)
    if survey is None:
        return _render(Page(PageKind.UNKNOWN), token)
    service.unsubscribe(session, survey, utcnow())
    session.commit()
    lang = _language(survey)
    return render_template(
        "websurvey/unsubscribe.html", lang=lang, t=TEXTS[lang], done=True, action=None,
        other_lang=None, other_lang_url=None,
    ), 200  # fmt: skip


@bp.post("/r/<token>/again")
def again(token: str) -> Response | tuple[str, int]:
    session = current_session()
    survey = service.find_survey(session, token, lock=True)
    if survey is None:
        return _render(Page(PageKind.UNKNOWN), token)
    if service.answer_again(session, survey, current_settings(), utcnow()):
        session.commit()
    return _back(token)
