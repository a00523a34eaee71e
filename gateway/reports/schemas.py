"""Request and response schemas of the reports, exclusions and customer satisfaction API."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gateway.api.schemas import DATE_IN_RANGE, OperatorOutSchema, PhoneNumber, UtcDateTime
from gateway.models import InteractionChannel

_FORMATS = ["json", "csv", "xlsx"]


class ReportQuerySchema(Schema):
    from_ = fields.Date(
        data_key="from",
        required=True,
        validate=DATE_IN_RANGE,
        metadata={
            "description": "first day of the period (in REPORT_TIMEZONE), by the contact's end"
        },
    )
    to = fields.Date(
        required=True,
        validate=DATE_IN_RANGE,
        metadata={"description": "last day (in REPORT_TIMEZONE), inclusive"},
    )
    channel = fields.String(validate=validate.OneOf([c.value for c in InteractionChannel]))
    team = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "team name; a supervisor key sees its own only"},
    )
    office = fields.String(validate=validate.Length(1, 100))
    format = fields.String(
        validate=validate.OneOf(_FORMATS),
        metadata={"description": "json (default), csv or xlsx; or ask with the Accept header"},
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ValidationError("'to' is before 'from'", "to")


class TrendQuerySchema(ReportQuerySchema):
    granularity = fields.String(
        load_default="day", validate=validate.OneOf(["day", "week", "month"])
    )


class NpsSchema(Schema):
    score = fields.Float(
        allow_none=True,
        metadata={
            "description": "% promoters - % detractors; null with fewer answers than "
            "REPORT_MIN_NPS_RESPONSES"
        },
    )
    se = fields.Float(
        allow_none=True, metadata={"description": "standard error of the score, in points"}
    )
    ci95 = fields.List(
        fields.Float(),
        allow_none=True,
        metadata={
            "description": "95% interval of the score, in points, within [-100, 100] "
            "(Dirichlet posterior); null where the score is"
        },
    )
    responses = fields.Integer()
    promoters = fields.Integer()
    passives = fields.Integer()
    detractors = fields.Integer()


class FiguresSchema(Schema):
    surveys_sent = fields.Integer(
        metadata={
            "description": "surveys that reached the customer (status active, completed, "
            "partial or expired), excluded ones left out"
        }
    )
    responses = fields.Integer(metadata={"description": "surveys with an overall score"})
    response_rate = fields.Float(allow_none=True)
    overall_mean = fields.Float(allow_none=True, metadata={"description": "mean overall score"})
    csat = fields.Float(allow_none=True, metadata={"description": "share of overall 4 and 5"})
    csat_ci95 = fields.List(
        fields.Float(), allow_none=True, metadata={"description": "Wilson 95% interval of csat"}
    )
    csi = fields.Float(allow_none=True, metadata={"description": "0-100, importance-weighted"})
    csi_all_parameters = fields.Float(allow_none=True)
    parameters = fields.Dict(keys=fields.String(), values=fields.Float())
    distribution = fields.Dict(keys=fields.String(), values=fields.Integer())
    nps = fields.Nested(NpsSchema, allow_none=True)
    excluded = fields.Integer(metadata={"description": "ratings excluded on appeal"})


class OperatorRatingSchema(FiguresSchema):
    operator = fields.Nested(OperatorOutSchema)
    csat_shrunk = fields.Float(
        allow_none=True,
        metadata={
            "description": "CSAT shrunk towards the company's by an empirical-Bayes beta prior "
            "fitted to the period: the figure operators are ranked by"
        },
    )
    csat_shrunk_ci95 = fields.List(
        fields.Float(),
        allow_none=True,
        metadata={"description": "95% credible interval of csat_shrunk"},
    )
    team_csat = fields.Float(
        allow_none=True, metadata={"description": "CSAT of the operator's team in the report"}
    )
    vs_team = fields.String(
        allow_none=True,
        validate=validate.OneOf(["above", "below", "no_difference"]),
        metadata={
            "description": "above or below when team_csat lies outside csat_ci95 (the operator "
            "differs from the team beyond chance), else no_difference; null without a team"
        },
    )
    ranked = fields.Boolean()
    rank = fields.Integer(allow_none=True)
    rank_reason = fields.String(allow_none=True)


class OperatorsReportSchema(Schema):
    operators = fields.List(fields.Nested(OperatorRatingSchema))


class TeamFiguresSchema(FiguresSchema):
    team = fields.String(allow_none=True)
    operators = fields.Integer()


class TotalFiguresSchema(FiguresSchema):
    operators = fields.Integer()


class TeamsReportSchema(Schema):
    teams = fields.List(fields.Nested(TeamFiguresSchema))
    total = fields.Nested(TotalFiguresSchema)


class TrendPointSchema(FiguresSchema):
    period_start = fields.String()


class TrendSchema(Schema):
    operator = fields.Nested(OperatorOutSchema)
    granularity = fields.String()
    points = fields.List(fields.Nested(TrendPointSchema))


class FunnelRowSchema(Schema):
    operator = fields.Nested(OperatorOutSchema)
    contacts = fields.Integer()
    surveys_offered = fields.Integer()
    surveys_not_sent = fields.Integer()
    surveys_sent = fields.Integer()
    surveys_started = fields.Integer()
    surveys_completed = fields.Integer()
    responses = fields.Integer()
    excluded = fields.Integer()
    calls_without_survey = fields.Integer()
    dispositions = fields.Dict(keys=fields.String(), values=fields.Integer())
    resurveys = fields.Integer()


class FunnelSchema(Schema):
    operators = fields.List(fields.Nested(FunnelRowSchema))


class ExclusionInSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


class ReinstateInSchema(Schema):
    reason = fields.String(validate=validate.Length(max=2000))


class ExclusionOutSchema(Schema):
    survey_id = fields.Integer()
    interaction_id = fields.Integer()
    excluded = fields.Boolean()
    excluded_at = UtcDateTime(allow_none=True)
    excluded_by = fields.String(allow_none=True)
    exclusion_reason = fields.String(allow_none=True)


class SatisfactionQuerySchema(Schema):
    phone = PhoneNumber(required=True)


class LatestInteractionSchema(Schema):
    id = fields.Integer()
    external_id = fields.String()
    channel = fields.String()
    ended_at = UtcDateTime()


class LatestScoresSchema(Schema):
    survey_id = fields.Integer()
    interaction = fields.Nested(LatestInteractionSchema)
    scores = fields.Dict(keys=fields.String(), values=fields.Integer())
    mean = fields.Float(allow_none=True, metadata={"description": "mean of the 1-5 ratings"})
    csi = fields.Float(allow_none=True)
    nps = fields.Integer(allow_none=True)
    nps_class = fields.String(allow_none=True)


class SatisfactionCustomerSchema(Schema):
    external_id = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


class SatisfactionSchema(Schema):
    customer = fields.Nested(SatisfactionCustomerSchema)
    surveys_answered = fields.Integer()
    overall_mean = fields.Float(allow_none=True)
    latest = fields.Nested(LatestScoresSchema, allow_none=True)
    nps = fields.Integer(allow_none=True, metadata={"description": "the latest NPS answer"})
    nps_class = fields.String(
        allow_none=True, metadata={"description": "promoter, passive or detractor"}
    )
