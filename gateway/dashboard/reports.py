"""The figures pages: the operators' ranking, one operator, the teams, the company, one
interaction. Thin views over gateway.reports.service: the same functions answer the API, so
a page shows exactly the API's figures."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from gateway import access, recordings
from gateway.config import current_settings
from gateway.dashboard import auth, i18n
from gateway.db import current_session, utcnow
from gateway.flows import current_flows
from gateway.models import ApiRole, InteractionChannel
from gateway.phones import mask_phone
from gateway.reports import export, service

bp = Blueprint("reports", __name__)

DEFAULT_DAYS = 30  # the default period: the last 30 days, today included
SURVEYS_PER_PAGE = 25
PARAMETERS = ("cost", "speed", "politeness", "quality")


@dataclass(frozen=True)
class Measure:
    """A figure the trend chart can draw: its scale and how a trend point gives it."""

    key: str
    low: float
    high: float
    suffix: str = ""


MEASURES = {
    m.key: m
    for m in (
        Measure("csat", 0, 100, " %"),
        Measure("overall_mean", 1, 5),
        Measure("csi", 0, 100),
        Measure("nps", -100, 100),
    )
}


@dataclass(frozen=True)
class Filters:
    """The filters of a page as asked, checked, and the report filter they make."""

    report: service.ReportFilter
    team: str | None
    channel: str | None
    office: str | None

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query arguments that show the same filters (for links and exports)."""
        args: dict[str, Any] = {
            "from": self.report.start.isoformat(),
            "to": self.report.end.isoformat(),
            "team": self.team,
            "channel": self.channel,
            "office": self.office,
        }
        args.update(changes)
        return {k: v for k, v in args.items() if v}


def _today() -> date:
    return utcnow().astimezone(current_settings().report_zone).date()


def _day(name: str, default: date) -> date:
    text = request.args.get(name) or ""
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        abort(400, _("“%(value)s” is not a date. Write dates as 2026-11-01.", value=text))


def page_filters(*, team: bool = True) -> Filters:
    """The period (the last 30 days unless asked), team, channel and office of this page."""
    today = _today()
    end = _day("to", today)
    start = _day("from", end - timedelta(days=DEFAULT_DAYS - 1))
    if end < start:
        abort(400, _("The period starts after it ends. Swap the two dates."))
    limits = auth.report_limits(request.args.get("team") or None if team else None)
    chosen_team = limits.team
    channel = request.args.get("channel") or None
    if channel is not None and channel not in {c.value for c in InteractionChannel}:
        abort(
            400,
            _("There is no channel “%(channel)s”. Choose one from the list.", channel=channel),
        )
    office = request.args.get("office") or None
    if office is not None and office not in service.known_offices(current_session()):
        abort(
            404,
            _("There is no office named “%(office)s”. Choose one from the list.", office=office),
        )
    try:
        report = service.ReportFilter(
            start,
            end,
            channel=InteractionChannel(channel) if channel else None,
            team=chosen_team,
            office=office,
            team_ids=limits.team_ids,
            operator_id=limits.operator_id,
            zone=current_settings().report_zone,
        )
    except service.ReportError:
        abort(400, _("A report covers at most two years. Choose a shorter period."))
    return Filters(report, chosen_team, channel, office)


def _choices() -> dict[str, Any]:
    return {
        "teams": auth.selectable_teams(),
        "fixed_team": auth.scope().role is not ApiRole.ADMIN and len(auth.selectable_teams()) <= 1,
        "channels": [c.value for c in InteractionChannel],
        "offices": service.known_offices(current_session()),
    }


@bp.get("/operators")
def operators() -> ResponseReturnValue:
    """The operators' ranking: per-parameter columns, intervals, the unranked and why."""
    filters = page_filters()
    rows = _own_rows(
        service.operators_report(current_session(), filters.report, current_settings())
    )
    return render_template(
        "dashboard/reports/operators.html",
        rows=rows,
        filters=filters,
        parameters=_parameter_keys(rows),
        minimum=current_settings().report_min_responses,
        **_choices(),
    )


@bp.get("/operators.<any(csv, xlsx):wanted>")
def operators_export(wanted: str) -> ResponseReturnValue:
    """The ranking on screen as a file, in the API's export columns."""
    filters = page_filters()
    rows = _own_rows(
        service.operators_report(current_session(), filters.report, current_settings())
    )
    columns = export.operator_columns(rows)
    flat = (export.flatten_operator_row(r) for r in rows)
    name = f"operators-{filters.report.start.isoformat()}-{filters.report.end.isoformat()}"
    return export.table_download(wanted, columns, flat, name, current_session().rollback)


def _own_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the viewer may see: an operator sees their own row only."""
    own = auth.own_operator()
    return rows if own is None else [r for r in rows if r["operator"]["external_id"] == own]


def _not_for_an_operator() -> None:
    if auth.own_operator() is not None:
        abort(403, _("This page shows other people’s figures; yours are on your own page."))


def _parameter_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The method's four parameters, then any other a flow rates, as they appear."""
    seen = {k for row in rows for k in row.get("parameters", {})}
    return [*PARAMETERS, *sorted(seen - set(PARAMETERS))]


@bp.get("/teams")
def teams() -> ResponseReturnValue:
    """Each team's figures side by side (every parameter counts in a team's CSI)."""
    _not_for_an_operator()
    filters = page_filters()
    report = service.teams_report(current_session(), filters.report, current_settings())
    return render_template(
        "dashboard/reports/teams.html",
        report=report,
        filters=filters,
        parameters=_parameter_keys([*report["teams"], report["total"]]),
        **_choices(),
    )


@bp.get("/company")
def company() -> ResponseReturnValue:
    """The company's CSI with every parameter, cost included, and each team's."""
    _not_for_an_operator()
    filters = page_filters()
    report = service.teams_report(current_session(), filters.report, current_settings())
    return render_template(
        "dashboard/reports/company.html",
        report=report,
        total=report["total"],
        filters=filters,
        parameters=_parameter_keys([report["total"]]),
        **_choices(),
    )


@bp.get("/operators/<external_id>")
def operator(external_id: str) -> ResponseReturnValue:
    """One operator: trend, distribution, parameters against the team, funnel, surveys."""
    db = current_session()
    filters = page_filters(team=False)
    flt = replace(filters.report, team=auth.own_team())
    try:
        person = service.find_operator(db, external_id, None)
        if not access.operator_visible(db, auth.scope(), person):
            raise service.NotVisible(external_id)
    except service.NotVisible:
        abort(
            404,
            _("There is no operator “%(id)s” among those you can see.", id=external_id),
        )
    granularity = request.args.get("granularity") or (
        "day" if (flt.end - flt.start).days < 45 else "week"
    )
    if granularity not in service.GRANULARITIES:
        abort(400, _("Choose a trend by day, week or month."))
    measure = request.args.get("measure") or "csat"
    if measure not in MEASURES:
        abort(400, _("Choose what the trend shows from the list."))
    settings = current_settings()
    row = next(
        (
            r
            for r in service.operators_report(db, flt, settings)
            if r["operator"]["external_id"] == external_id
        ),
        None,
    )
    team_name = person.team.name if person.team else None
    team_total = None
    if team_name is not None:
        # The team's average to compare with: the whole team, whoever looks.
        team_flt = replace(flt, team=team_name, team_ids=None, operator_id=None)
        team_total = service.teams_report(db, team_flt, settings)["total"]
    funnel = next(
        (f for f in service.funnel_report(db, flt) if f["operator"]["external_id"] == external_id),
        None,
    )
    page = max(1, request.args.get("page", 1, type=int) or 1)
    surveys, survey_count = service.operator_surveys(
        db, person, flt, limit=SURVEYS_PER_PAGE, offset=(page - 1) * SURVEYS_PER_PAGE
    )
    excluded, _count = service.operator_surveys(db, person, flt, limit=100, excluded_only=True)
    trend = service.operator_trend(db, person, flt, granularity, settings)
    # NPS is offered where the flows ask for it: some period has NPS answers.
    asked_nps = any(p.get("nps") for p in trend)
    measures = [m for m in MEASURES if m != "nps" or asked_nps]
    return render_template(
        "dashboard/reports/operator.html",
        person=person,
        row=row,
        team_name=team_name,
        team_total=team_total,
        trend=trend,
        measure=MEASURES[measure],
        measures=measures,
        asked_nps=asked_nps,
        minimum_nps=settings.report_min_nps_responses,
        granularity=granularity,
        granularities=service.GRANULARITIES,
        funnel=funnel,
        surveys=surveys,
        survey_count=survey_count,
        page=page,
        pages=max(1, -(-survey_count // SURVEYS_PER_PAGE)),
        excluded=excluded,
        answer_keys=_keys_answered(surveys),
        parameters=_parameter_keys([row] if row else []),
        minimum=settings.report_min_responses,
        filters=filters,
        **_choices(),
    )


def _keys_answered(surveys: list[Any]) -> list[str]:
    """The scored questions these surveys asked, in the flows' order (no empty columns)."""
    asked = {a.question_key for s in surveys for a in s.answers}
    return [key for key in service.answer_keys(current_flows()) if key in asked]


@bp.get("/interactions/<int:interaction_id>")
def interaction(interaction_id: int) -> ResponseReturnValue:
    """One contact: who, when, its survey step by step, the answers, the incident if any."""
    db = current_session()
    try:
        found = service.find_interaction(db, interaction_id, None)
        if not access.interaction_visible(auth.scope(), found):
            raise service.NotVisible(interaction_id)
    except service.NotVisible:
        abort(404, _("There is no contact %(id)s among those you can see.", id=interaction_id))
    survey = found.survey
    score = service.score_of(survey) if survey is not None else None
    return render_template(
        "dashboard/reports/interaction.html",
        interaction=found,
        survey=survey,
        survey_score=score,
        steps=service.survey_steps(survey, i18n.language()) if survey is not None else [],
        # The texts exchanged; what a customer wrote is not for an operator's eyes.
        messages=(
            service.survey_messages(db, survey)
            if survey is not None and auth.own_operator() is None
            else []
        ),
        incident=service.incident_of(db, survey) if survey is not None else None,
        # An operator never sees customers' numbers; supervisors see them masked here.
        masked_phone=(
            mask_phone(found.customer.phone)
            if found.customer and auth.scope().sees_customer_contacts
            else None
        ),
        shows_customer=auth.scope().sees_customer_contacts,
    )


@bp.get("/recordings/<int:answer_id>")
def recording(answer_id: int) -> ResponseReturnValue:
    """A voice comment, played in the page's <audio> element."""
    db = current_session()
    try:
        answer = service.find_answer(db, answer_id, None)
        if not access.survey_visible(auth.scope(), answer.session):
            raise service.NotVisible(answer_id)
        stream = recordings.open_recording(current_settings(), answer.recording_url, db)
    except (service.NotVisible, recordings.RecordingUnavailable):
        abort(404, _("This recording cannot be played: it was deleted or is not reachable."))
    db.rollback()  # the read is over before the audio streams
    response = Response(stream.chunks, mimetype=stream.mimetype)
    if stream.length:
        response.headers["Content-Length"] = stream.length
    return response
