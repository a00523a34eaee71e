"""Reports: operator ratings, trend, teams, funnel, exclusions and a customer's satisfaction.

Pure domain code over a Session: the API, the CLI and the benchmark call the same functions.
Report figures add up the rollup (gateway.reports.rollup) of the surveys' frozen scores;
per-interaction figures show each survey's frozen score (a live one's answers scored as they
stand). Dates are local days in REPORT_TIMEZONE; teams are the teams at the time of contact.
"""

from __future__ import annotations

import gc
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, Table, any_, bindparam, func, select, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, selectinload

from gateway.config import Settings
from gateway.flows import Flows, flows_of, flows_of_row
from gateway.models import (
    Answer,
    AuditEvent,
    Customer,
    Incident,
    Interaction,
    InteractionChannel,
    Message,
    Operator,
    SurveySession,
    Team,
)
from gateway.reports.metrics import (
    SATISFIED,
    BetaPrior,
    SessionScore,
    Tally,
    compare_share,
    figures,
    fit_beta_prior,
    nps_class,
    score_session,
)
from gateway.reports.models import ScoreBucket, ScoreBucketDisposition, ScoreBucketParameter
from gateway.reports.rollup import COUNT_COLUMNS as _COUNTS
from gateway.reports.rollup import (
    DAY_TABLES,
    ENDED_STATUSES,
    MONTH_TABLES,
    SENT_STATUSES,
    day_start,
)
from gateway.reports.scoring import current_spec, freeze_score, loaded_spec, spec_to_json

scores = cast(Table, ScoreBucket.__table__)
parameter_scores = cast(Table, ScoreBucketParameter.__table__)
disposition_counts = cast(Table, ScoreBucketDisposition.__table__)
GRANULARITIES = ("day", "week", "month")
# Dispositions a PBX reports for a call that never reached the survey hand-over.
LOST_DISPOSITIONS = ("transferred", "operator_hangup")


class ReportError(ValueError):
    """A report request that cannot be answered as asked (the message says why)."""


class NotVisible(LookupError):
    """The record does not exist or the caller may not see it (the two are not told apart)."""


@dataclass(frozen=True)
class ReportFilter:
    """A report's period (local dates in `zone`, both inclusive) and optional filters."""

    start: date
    end: date
    channel: InteractionChannel | None = None
    team: str | None = None  # the team at the time of the contact
    office: str | None = None
    # The caller's scope (gateway.access.report_limits): a supervisor's teams, an operator's
    # own operator id. None: not limited.
    team_ids: frozenset[int] | None = None
    operator_id: int | None = None
    zone: ZoneInfo = field(kw_only=True)  # REPORT_TIMEZONE: where the days begin

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ReportError("'to' is before 'from'")
        if (self.end - self.start).days > 366 * 2:
            raise ReportError("a report covers at most two years")

    @property
    def starts_at(self) -> datetime:
        return day_start(self.start, self.zone)

    @property
    def ends_before(self) -> datetime:
        return day_start(self.end + timedelta(days=1), self.zone)


def _conditions(
    flt: ReportFilter,
    table: Table | None = None,
    first: date | None = None,
    last: date | None = None,
) -> list[Any]:
    """The filter over a rollup table (the buckets by default, or their parameter rows), its
    days `first`..`last` (by default the filter's)."""
    table = scores if table is None else table
    conditions: list[Any] = [
        table.c.day >= (flt.start if first is None else first),
        table.c.day <= (flt.end if last is None else last),
    ]
    if flt.channel is not None:
        conditions.append(table.c.channel == flt.channel.value)
    if flt.office is not None:
        conditions.append(table.c.office == flt.office)
    if flt.team is not None:
        conditions.append(table.c.team_id.in_(_team_ids(flt.team)))
    if flt.team_ids is not None:
        conditions.append(table.c.team_id.in_(sorted(flt.team_ids)))
    if flt.operator_id is not None:
        conditions.append(table.c.operator_id == flt.operator_id)
    return conditions


def _team_ids(team: str) -> Any:
    return select(Team.id).where(Team.name == team)


BUCKETS, PARAMETERS, DISPOSITIONS = range(3)  # which rollup table: DAY_TABLES[i], MONTH_TABLES[i]


def _rollup(
    flt: ReportFilter,
    kind: int,
    columns: Sequence[str],
    *,
    by_day: bool = False,
    operator_id: int | None = None,
) -> tuple[Any, list[Any]]:
    """The rollup rows of the filter, as a table or subquery with `columns` and the conditions
    to select them by: whole months of the period from the month tables (31 times fewer
    rows), the days before and after them from the day tables. `by_day` reads days only (a
    daily trend needs them)."""
    parts = _spans(flt, kind, by_day, operator_id)
    if len(parts) == 1:
        return parts[0]  # the table itself: a subquery costs more to build than to run
    union = union_all(
        *(select(*(t.c[name] for name in columns)).where(*where) for t, where in parts)
    )
    return union.subquery(), []


def _whole_months(start: date, end: date) -> tuple[date, date, date] | None:
    """The first days of the first and the last whole month in start..end, and the day after
    the last one; None when no whole month is in it."""
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    after = (end + timedelta(days=1)).replace(day=1)  # the first day not in a whole month
    if first >= after:
        return None
    last = (after - timedelta(days=1)).replace(day=1)
    return first, last, after


@dataclass
class Totals:
    """The summed rollup counts of one group (an operator, a team, a day)."""

    counts: dict[str, float]
    tally: Tally
    dispositions: dict[str, int]
    # Per operator only: [satisfied, responses] per team at the time of the contact (0: none).
    teams: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Totals:
        return cls(dict.fromkeys(_COUNTS, 0), Tally(), {})

    def count(self, name: str) -> int:
        return int(self.counts.get(name, 0))

    def add(self, other: Totals) -> None:
        for name in _COUNTS:
            self.counts[name] = self.counts.get(name, 0) + other.counts.get(name, 0)
        self.tally.merge(other.tally)
        for key, n in other.dispositions.items():
            self.dispositions[key] = self.dispositions.get(key, 0) + n


# Where a summed row of `_COUNTS` holds the responses and the satisfied overall scores.
_RESPONSES_AT = _COUNTS.index("responses")
_SATISFIED_AT = [_COUNTS.index(f"overall_{v}") for v in sorted(SATISFIED)]


def _spans(
    flt: ReportFilter, kind: int, by_day: bool, operator_id: int | None
) -> list[tuple[Table, list[Any]]]:
    """The rollup tables of `kind` that hold the filter's period, each with the conditions
    that select its part: whole months from the month table, the days around them from the
    day table (`by_day`: days only)."""
    months = None if by_day else _whole_months(flt.start, flt.end)
    spans = (
        [(DAY_TABLES[kind], flt.start, flt.end)]
        if months is None
        else [
            (table, first, last)
            for table, first, last in (
                (MONTH_TABLES[kind], months[0], months[1]),
                (DAY_TABLES[kind], flt.start, months[0] - timedelta(days=1)),
                (DAY_TABLES[kind], months[2], flt.end),
            )
            if first <= last
        ]
    )
    parts = []
    for table, first, last in spans:
        conditions = _conditions(flt, table, first, last)
        if operator_id is not None:
            conditions.append(table.c.operator_id == operator_id)
        parts.append((table, conditions))
    return parts


@cache
def _summed(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Select[Any]:
    """SELECT keys, SUM(column) ... GROUP BY keys of one rollup table, built once: a report
    adds its conditions only (building 40 sums anew took more CPU than running them)."""
    grouped = [table.c[name] for name in keys]
    return select(*grouped, *(func.sum(table.c[name]) for name in columns)).group_by(*grouped)


def _totals(
    session: Session,
    flt: ReportFilter,
    group: str,
    *,
    operator_id: int | None = None,
    dispositions: bool = False,
) -> dict[Any, Totals]:
    """Rollup sums per operator, team or day (`group`) over the filter: each table of the
    period summed on its own, the parts added up here."""
    by_day = group == "day"
    # An operator's sums come per team at the time of the contact, added up here: the ranking
    # compares each operator with those teams, and one scan serves both.
    names = ("operator_id", "team_id") if group == "operator_id" else (group,)
    split = len(names) == 2
    all_counts: dict[Any, dict[str, float]] = {}
    teams: dict[Any, dict[int, list[int]]] = defaultdict(dict)
    for table, where in _spans(flt, BUCKETS, by_day, operator_id):
        for row in session.execute(_summed(table, names, _COUNTS).where(*where)):
            # Sums of NOT NULL columns over at least one row: never NULL.
            g, sums = row[0], row[len(names) :]
            counts = all_counts.get(g)
            if counts is None:
                all_counts[g] = dict(zip(_COUNTS, sums, strict=True))
            else:
                for name, value in zip(_COUNTS, sums, strict=True):
                    counts[name] += value
            if split:
                satisfied = sum(sums[i] for i in _SATISFIED_AT)
                pair = teams[g].setdefault(row[1], [0, 0])
                pair[0] += satisfied
                pair[1] += sums[_RESPONSES_AT]
    result = {
        g: Totals(counts, Tally.of_columns(counts), {}, teams.get(g, {}))
        for g, counts in all_counts.items()
    }
    for table, where in _spans(flt, PARAMETERS, by_day, operator_id):
        for g, key, total, n in session.execute(
            _summed(table, (group, "key"), ("total", "n")).where(*where)
        ):
            parameter = result[g].tally.parameter_sums.setdefault(key, [0.0, 0])
            parameter[0] += float(total)
            parameter[1] += int(n)
    if dispositions:
        for table, where in _spans(flt, DISPOSITIONS, by_day, operator_id):
            for g, key, n in session.execute(
                _summed(table, (group, "disposition"), ("n",)).where(*where)
            ):
                if n and g in result:
                    counted = result[g].dispositions
                    counted[key] = counted.get(key, 0) + int(n)
    return result


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def published(totals: Totals, settings: Settings, *, operator_view: bool) -> dict[str, Any]:
    """The contract's figures of a group, rounded for publication."""
    raw = figures(
        totals.tally,
        operator_view=operator_view and not settings.report_operator_csi_all_parameters,
    )
    sent = totals.count("sent")
    nps = raw["nps"]
    if nps is not None and nps["responses"] < settings.report_min_nps_responses:
        # Too few answers for a figure: the counts stay, the score and its interval do not.
        nps = {**nps, "score": None, "se": None, "ci95": None}
    interval = raw["csat_ci95"]
    return {
        "surveys_sent": sent,
        "responses": raw["responses"],
        "response_rate": _round(raw["responses"] / sent, 4) if sent else None,
        "overall_mean": _round(raw["overall_mean"], 3),
        "csat": _round(raw["csat"], 4),
        "csat_ci95": [round(x, 4) for x in interval] if interval else None,
        "csi": _round(raw["csi"], 2),
        "csi_all_parameters": _round(raw["csi_all_parameters"], 2),
        "parameters": {k: round(v, 3) for k, v in raw["parameters"].items()},
        "distribution": raw["distribution"],
        "nps": nps
        and {
            **nps,
            "score": _round(nps["score"], 2),
            "se": _round(nps["se"], 2),
            "ci95": nps["ci95"] and [round(x, 2) for x in nps["ci95"]],
        },
        "excluded": totals.count("excluded"),
    }


# What rank_operators reads and adds for itself: none of it is published.
_PRIVATE = ("_satisfied", "_teams", "_shrunk")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _operators(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The contract's operator reference ({external_id, name, team}) of each operator id."""
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: IN would send (and psycopg parse) one parameter per operator.
        chosen = Operator.id == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)))
    else:
        chosen = Operator.id.in_(ids)
    rows = session.execute(
        select(Operator.id, Operator.external_id, Operator.name, Team.name)
        .outerjoin(Team, Operator.team_id == Team.id)
        .where(chosen)
    ).all()
    return {
        operator_id: {"external_id": external_id, "name": name, "team": team}
        for operator_id, external_id, name, team in rows
    }


def operator_ref(op: Operator) -> dict[str, Any]:
    return {"external_id": op.external_id, "name": op.name, "team": op.team and op.team.name}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a report builds its rows.

    A month's report over 500 operators builds some 20,000 small dicts and lists that all live
    until it returns; the collector would meanwhile walk the process's whole heap a few times
    and free nothing: a quarter of the report's CPU, measured. Reference counting frees as
    usual; a cycle waits for the next collection. Another thread pausing it meanwhile finds it
    paused and leaves it to the first to resume.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_collector_paused()
def operators_report(
    session: Session, flt: ReportFilter, settings: Settings
) -> list[dict[str, Any]]:
    """Per-operator figures: ranked operators first, by their shrunk CSAT (`rank_operators`).

    Operators with fewer than REPORT_MIN_RESPONSES responses follow, listed but never ranked.
    """
    totals = _totals(session, flt, "operator_id")
    operators = _operators(session, list(totals))
    by_team = {operator_id: group.teams for operator_id, group in totals.items()}
    # A team's figure is the whole team's, also when only one operator's row is asked for
    # (an operator's own view): the same contacts' filter without the operator.
    whole_teams = by_team if flt.operator_id is None else None
    if whole_teams is None:
        whole_teams = _satisfied_by_team(session, replace(flt, operator_id=None))
    team_counts = _team_counts(whole_teams.values())
    # The prior is the company's (the filter without its team): an operator's figures do not
    # depend on whether a supervisor or an admin looks. It needs only each operator's two
    # counts, so a team's report does not sum the whole company's figures.
    unlimited = replace(flt, team=None, team_ids=None, operator_id=None)
    population = by_team if flt == unlimited else _satisfied_by_team(session, unlimited)
    prior = fit_beta_prior(
        (sum(c[0] for c in teams.values()), sum(c[1] for c in teams.values()))
        for teams in population.values()
    )
    rows = [
        {
            "operator": operators[operator_id],
            **published(group, settings, operator_view=True),
            "_satisfied": group.tally.satisfied,
            "_teams": by_team.get(operator_id, {}),
        }
        for operator_id, group in totals.items()
    ]
    ranked = rank_operators(rows, prior, settings.report_min_responses, team_counts)
    for row in ranked:
        for name in _PRIVATE:
            del row[name]
    return ranked


def _team_counts(per_operator: Iterable[dict[int, list[int]]]) -> dict[int, list[int]]:
    """Per team (0 and none left out): [satisfied, responses] over all its operators."""
    teams: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for by_team in per_operator:
        for team_id, (happy, responses) in by_team.items():
            if team_id:
                teams[team_id][0] += happy
                teams[team_id][1] += responses
    return teams


def _satisfied_by_team(session: Session, flt: ReportFilter) -> dict[int, dict[int, list[int]]]:
    """Per operator, per team at the time of the contact (0: none): [satisfied, responses]."""
    happy_columns = [f"overall_{v}" for v in sorted(SATISFIED)]
    rows, where = _rollup(flt, BUCKETS, ["operator_id", "team_id", "responses", *happy_columns])
    satisfied = sum((rows.c[name] for name in happy_columns), start=0)
    found: dict[int, dict[int, list[int]]] = defaultdict(dict)
    for operator_id, team_id, happy, responses in session.execute(
        select(
            rows.c.operator_id,
            rows.c.team_id,
            func.sum(satisfied),
            func.sum(rows.c.responses),
        )
        .where(*where)
        .group_by(rows.c.operator_id, rows.c.team_id)
    ).all():
        found[operator_id][team_id] = [int(happy or 0), int(responses or 0)]
    return found


def rank_operators(
    rows: list[dict[str, Any]],
    prior: BetaPrior | None,
    minimum: int,
    team_counts: dict[int, list[int]] | None = None,
) -> list[dict[str, Any]]:
    """Add the ranking figures to operator rows and order them: ranked first, best first.

    Each row's CSAT is shrunk towards the population's by `prior` (`csat_shrunk`, with its
    95% credible interval); operators with at least `minimum` responses are ranked by it.
    Rows carry `responses`, `_satisfied` (the count of 4 and 5) and `_teams`: the same two
    counts per team the operator was in at the time of each contact (team id, 0 for none).

    `team_csat` is what the operator's teams gave over the same contacts: each team's CSAT
    (all its operators, contacts counted in the team they were made in) weighted by the
    operator's responses in that team, so an operator moved from A to B is compared with A
    for the old calls and with B for the new ones, and A keeps the old calls in its average.
    `vs_team` says whether the operator's CSAT over those contacts differs from it beyond
    chance. `team_counts` gives the teams' counts when `rows` are not all of them.
    """
    teams = team_counts if team_counts is not None else _team_counts(r["_teams"] for r in rows)
    counts = [(row["_satisfied"], row["responses"]) for row in rows]
    posteriors = prior.shrink_all(counts) if prior else [None] * len(rows)
    for row, posterior in zip(rows, posteriors, strict=True):
        responses = row["responses"]
        shrunk = posterior if responses else None
        row["_shrunk"] = shrunk and shrunk.estimate
        row["csat_shrunk"] = shrunk and round(shrunk.estimate, 4)
        row["csat_shrunk_ci95"] = shrunk and [round(shrunk.low, 4), round(shrunk.high, 4)]
        in_teams = [(t, c) for t, c in row["_teams"].items() if t and c[1]]
        happy_in_teams = sum(c[0] for _t, c in in_teams)
        responses_in_teams = sum(c[1] for _t, c in in_teams)
        team_csat = (
            sum(c[1] * teams[t][0] / teams[t][1] for t, c in in_teams) / responses_in_teams
            if responses_in_teams
            else None
        )
        row["team_csat"] = _round(team_csat, 4)
        row["vs_team"] = (
            None
            if team_csat is None
            else compare_share(happy_in_teams, responses_in_teams, team_csat)
        )
        row["ranked"] = responses >= minimum and shrunk is not None
        row["rank"] = None
        row["rank_reason"] = (
            None
            if row["ranked"]
            else (
                f"{responses} {'response' if responses == 1 else 'responses'}, "
                f"fewer than the {minimum} needed to be ranked"
            )
        )
    ranked = sorted(
        (r for r in rows if r["ranked"]),
        key=lambda r: (-r["_shrunk"], -r["responses"], natural_key(r["operator"]["external_id"])),
    )
    for position, row in enumerate(ranked, start=1):
        row["rank"] = position
    unranked = sorted(
        (r for r in rows if not r["ranked"]),
        key=lambda r: (-r["responses"], natural_key(r["operator"]["external_id"])),
    )
    return [*ranked, *unranked]


def teams_report(session: Session, flt: ReportFilter, settings: Settings) -> dict[str, Any]:
    """Per-team figures (by the team at the time of each contact) and the total of the
    filter; every parameter counts in their CSI. `operators`: who had contacts in the team."""
    per_team = _totals(session, flt, "team_id")
    names: dict[int, str] = {
        team_id: name
        for team_id, name in session.execute(
            select(Team.id, Team.name).where(Team.id.in_(list(per_team)))
        )
    }
    rows, where = _rollup(flt, BUCKETS, ["operator_id", "team_id"])
    members: dict[int, int] = {
        team_id: count
        for team_id, count in session.execute(
            select(rows.c.team_id, func.count(func.distinct(rows.c.operator_id)))
            .where(*where)
            .group_by(rows.c.team_id)
        )
    }
    total = Totals.empty()
    for group in per_team.values():
        total.add(group)
    teams = [
        {
            "team": names.get(team_id),
            "operators": members.get(team_id, 0),
            **_public(published(group, settings, operator_view=False)),
        }
        for team_id, group in sorted(per_team.items(), key=lambda item: names.get(item[0]) or "")
    ]
    everyone = session.scalar(select(func.count(func.distinct(rows.c.operator_id))).where(*where))
    return {
        "teams": teams,
        "total": {
            "operators": everyone or 0,
            **_public(published(total, settings, operator_view=False)),
        },
    }


def find_operator(session: Session, external_id: str, team: str | None) -> Operator:
    """The operator, if visible to a caller restricted to `team` (None: any team): one in
    that team now, or one who had contacts while in it."""
    operator = session.scalar(
        select(Operator)
        .where(Operator.external_id == external_id)
        .options(selectinload(Operator.team))
    )
    if operator is None:
        raise NotVisible(f"no operator {external_id!r}")
    if team is not None and (operator.team is None or operator.team.name != team):
        had_contacts = session.scalar(
            select(Interaction.id)
            .where(Interaction.operator_id == operator.id, Interaction.team_id.in_(_team_ids(team)))
            .limit(1)
        )
        if had_contacts is None:
            raise NotVisible(f"no operator {external_id!r}")
    return operator


def period_start(day: date, granularity: str) -> date:
    """The first day of the day, ISO week (Monday) or month holding `day`."""
    if granularity == "month":
        return day.replace(day=1)
    return day if granularity == "day" else day - timedelta(days=day.weekday())


def operator_trend(
    session: Session, operator: Operator, flt: ReportFilter, granularity: str, settings: Settings
) -> list[dict[str, Any]]:
    """One operator's figures per local day, ISO week or month of the period; periods without
    data absent."""
    if granularity not in GRANULARITIES:
        raise ReportError("granularity is day, week or month")
    periods: dict[date, Totals] = defaultdict(Totals.empty)
    for day, totals in _totals(session, flt, "day", operator_id=operator.id).items():
        periods[period_start(day, granularity)].add(totals)
    return [
        {"period_start": start.isoformat(), **_public(published(t, settings, operator_view=True))}
        for start, t in sorted(periods.items())
    ]


def funnel_report(session: Session, flt: ReportFilter) -> list[dict[str, Any]]:
    """Per operator: contacts, surveys offered, sent, started, completed, lost calls, re-surveys."""
    totals = _totals(session, flt, "operator_id", dispositions=True)
    operators = _operators(session, list(totals))
    resurveys = _resurveys(session, flt)
    rows: list[dict[str, Any]] = []
    for operator_id, t in totals.items():
        rows.append(
            {
                "operator": operators[operator_id],
                "contacts": t.count("contacts"),
                "surveys_offered": t.count("offered"),
                "surveys_not_sent": t.count("not_sent"),
                "surveys_sent": t.count("sent"),
                "surveys_started": t.count("started"),
                "surveys_completed": t.count("completed"),
                "responses": t.count("responses"),
                "excluded": t.count("excluded"),
                "calls_without_survey": t.count("calls_without_survey"),
                "dispositions": dict(sorted(t.dispositions.items())),
                "resurveys": resurveys.get(operator_id, 0),
            }
        )
    rows.sort(key=lambda r: natural_key(r["operator"]["external_id"]))
    return rows


def natural_key(text: str) -> tuple[str | int, ...]:
    """Order ids as people read them: op-2 before op-10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _resurveys(session: Session, flt: ReportFilter) -> dict[int, int]:
    """Surveys sent in the period to a customer already surveyed earlier in the period,
    counted against the operator of the later contact."""
    numbered = (
        select(
            Interaction.operator_id,
            Interaction.team_id,
            Interaction.channel,
            Interaction.office,
            func.row_number()
            .over(
                partition_by=SurveySession.customer_id,
                order_by=(Interaction.ended_at, Interaction.id),
            )
            .label("n"),
        )
        .join(SurveySession, SurveySession.interaction_id == Interaction.id)
        .where(
            Interaction.ended_at >= flt.starts_at,
            Interaction.ended_at < flt.ends_before,
            SurveySession.follow_up_of_id.is_(None),
            SurveySession.customer_id.is_not(None),
            SurveySession.status.in_(SENT_STATUSES),
        )
        .subquery()
    )
    conditions = [numbered.c.n > 1, numbered.c.operator_id.is_not(None)]
    if flt.channel is not None:
        conditions.append(numbered.c.channel == flt.channel)
    if flt.office is not None:
        conditions.append(numbered.c.office == flt.office)
    if flt.team is not None:
        conditions.append(numbered.c.team_id.in_(_team_ids(flt.team)))
    if flt.team_ids is not None:
        conditions.append(numbered.c.team_id.in_(sorted(flt.team_ids)))
    if flt.operator_id is not None:
        conditions.append(numbered.c.operator_id == flt.operator_id)
    return dict(
        session.execute(
            select(numbered.c.operator_id, func.count())
            .where(*conditions)
            .group_by(numbered.c.operator_id)
        ).all()
    )


def known_offices(session: Session) -> list[str]:
    """Every office that has reported figures, for a filter's choices."""
    return list(
        session.scalars(
            select(scores.c.office)
            .where(scores.c.office.is_not(None))
            .distinct()
            .order_by(scores.c.office)
        )
    )


def operator_surveys(
    session: Session,
    operator: Operator,
    flt: ReportFilter,
    *,
    limit: int,
    offset: int = 0,
    excluded_only: bool = False,
) -> tuple[list[SurveySession], int]:
    """One page of the operator's surveys in the filter (newest contact first), with their
    answers and interactions loaded, and how many there are in all."""
    query = _scored_query(flt).where(Interaction.operator_id == operator.id)
    if excluded_only:
        query = query.where(SurveySession.excluded_at.is_not(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Interaction.ended_at.desc(), Interaction.id.desc())
        .options(
            selectinload(SurveySession.answers),
            selectinload(SurveySession.interaction).selectinload(Interaction.team),
        )
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


@dataclass(frozen=True)
class SurveyStep:
    """One question of a survey as the customer met it, and what they gave."""

    key: str
    text: str | None  # the question in the reader's language; None: not in the flow now
    answer: Answer | None  # None: never reached


def survey_steps(survey: SurveySession, language: str) -> list[SurveyStep]:
    """The survey's questions in the order its flow asks them on its channel, each with its
    answer; answers to questions the flow no longer has follow, in the order given."""
    answers = {a.question_key: a for a in sorted(survey.answers, key=lambda a: a.answered_at)}
    flow = flows_of_row(survey).get(survey.flow)
    channel = survey.channel.value if survey.channel.value in ("ivr", "sms") else "web"
    steps: list[SurveyStep] = []
    if flow is not None:
        for question in flow.questions_for(channel):
            text = question.text_for(channel, language) if language in question.text else None
            steps.append(SurveyStep(question.key, text, answers.pop(question.key, None)))
    steps.extend(SurveyStep(key, None, answer) for key, answer in answers.items())
    return steps


def find_answer(session: Session, answer_id: int, team: str | None) -> Answer:
    """An answer, if its contact is visible to a caller restricted to `team` (None: any)."""
    query = (
        select(Answer)
        .join(Answer.session)
        .join(SurveySession.interaction)
        .where(Answer.id == answer_id)
    )
    if team is not None:
        query = query.where(Interaction.team_id.in_(_team_ids(team)))
    answer = session.scalar(query)
    if answer is None:
        raise NotVisible(f"no answer {answer_id}")
    return answer


def survey_messages(session: Session, survey: SurveySession) -> list[Message]:
    """The SMS exchanged in the survey, oldest first."""
    return list(
        session.scalars(
            select(Message).where(Message.session_id == survey.id).order_by(Message.created_at)
        )
    )


def incident_of(session: Session, survey: SurveySession) -> Incident | None:
    """The low-score incident the survey opened, if any."""
    return session.scalar(select(Incident).where(Incident.session_id == survey.id))


def find_interaction(session: Session, interaction_id: int, team: str | None) -> Interaction:
    """The interaction, if visible to a caller restricted to `team` (None: any team), with
    its operator, customer, survey and answers loaded."""
    query = (
        select(Interaction)
        .where(Interaction.id == interaction_id)
        .options(
            selectinload(Interaction.operator).selectinload(Operator.team),
            selectinload(Interaction.team),
            selectinload(Interaction.customer),
            selectinload(Interaction.survey).selectinload(SurveySession.answers),
            selectinload(Interaction.survey).selectinload(SurveySession.attempt_log),
        )
    )
    if team is not None:
        query = query.where(Interaction.team_id.in_(_team_ids(team)))
    interaction = session.scalar(query)
    if interaction is None:
        raise NotVisible(f"no interaction {interaction_id}")
    return interaction


# --- scored interactions: one row per survey, straight from the raw answers --------------


def answer_keys(flows: Flows) -> list[str]:
    """Every scored question key of the loaded flows, overall first, in flow order."""
    keys: list[str] = ["overall"]
    for flow in flows.values():
        for q in flow.questions:
            if q.value_range is not None and q.key not in keys:
                keys.append(q.key)
    return keys


def score_of(survey: SurveySession, answered: dict[str, int | None] | None = None) -> SessionScore:
    """The survey's frozen score; a survey still running is scored as its answers stand."""
    if survey.scored_at is not None:
        return SessionScore(
            overall=survey.score_overall,
            parameters=survey.score_parameters or {},
            csi=survey.score_csi,
            csi_operator=survey.score_csi_operator,
            nps=survey.score_nps,
        )
    if answered is None:
        answered = {a.question_key: a.value for a in survey.answers}
    return score_session(answered, current_spec(flows_of_row(survey), survey.flow))


def _scored_query(flt: ReportFilter) -> Select[Any]:
    query = (
        select(SurveySession)
        .join(SurveySession.interaction)
        .where(
            Interaction.ended_at >= flt.starts_at,
            Interaction.ended_at < flt.ends_before,
            SurveySession.follow_up_of_id.is_(None),  # the operator's figures: originals only
        )
    )
    if flt.channel is not None:
        query = query.where(Interaction.channel == flt.channel)
    if flt.office is not None:
        query = query.where(Interaction.office == flt.office)
    if flt.team is not None:
        query = query.where(Interaction.team_id.in_(_team_ids(flt.team)))
    if flt.team_ids is not None:
        query = query.where(Interaction.team_id.in_(sorted(flt.team_ids)))
    if flt.operator_id is not None:
        query = query.where(Interaction.operator_id == flt.operator_id)
    return query


def scored_interactions(
    session: Session, flt: ReportFilter, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """The period's surveyed interactions with their answers and frozen scores, streamed in
    batches (a server-side cursor on PostgreSQL) so a year of them never sits in memory."""
    keys = answer_keys(flows_of(session))
    query = (
        _scored_query(flt)
        .order_by(Interaction.ended_at, Interaction.id)
        .options(
            selectinload(SurveySession.answers),
            selectinload(SurveySession.interaction).selectinload(Interaction.operator),
            selectinload(SurveySession.interaction).selectinload(Interaction.team),
            selectinload(SurveySession.interaction).selectinload(Interaction.customer),
        )
        .execution_options(yield_per=batch)
    )
    for survey in session.scalars(query):
        interaction = survey.interaction
        operator, customer = interaction.operator, interaction.customer
        answered = {a.question_key: a.value for a in survey.answers}
        score = score_of(survey, answered)
        yield {
            "interaction_id": interaction.id,
            "external_id": interaction.external_id,
            "channel": interaction.channel.value,
            "ended_at": interaction.ended_at,
            "office": interaction.office,
            "disposition": interaction.disposition,
            "operator_external_id": operator and operator.external_id,
            "operator_name": operator and operator.name,
            "team": interaction.team and interaction.team.name,
            "customer_external_id": customer and customer.external_id,
            "survey_id": survey.id,
            "survey_status": survey.status.value,
            "flow": survey.flow,
            "excluded": survey.excluded_at is not None,
            "exclusion_reason": survey.exclusion_reason,
            **{key: answered.get(key) for key in keys},
            "csi": _round(score.csi, 2),
            "csi_operator": _round(score.csi_operator, 2),
            "nps_class": nps_class(score.nps),
        }


def scored_columns(flows: Flows) -> list[str]:
    return [
        "interaction_id",
        "external_id",
        "channel",
        "ended_at",
        "office",
        "disposition",
        "operator_external_id",
        "operator_name",
        "team",
        "customer_external_id",
        "survey_id",
        "survey_status",
        "flow",
        "excluded",
        "exclusion_reason",
        *answer_keys(flows),
        "csi",
        "csi_operator",
        "nps_class",
    ]


# --- exclusions ---------------------------------------------------------------------------


def find_survey(session: Session, survey_id: int, team: str | None) -> SurveySession:
    """The survey session, if visible to a caller restricted to `team` (None: any team)."""
    query = select(SurveySession).where(SurveySession.id == survey_id)
    if team is not None:
        query = query.join(SurveySession.interaction).where(
            Interaction.team_id.in_(_team_ids(team))
        )
    survey = session.scalar(query)
    if survey is None:
        raise NotVisible(f"no survey {survey_id}")
    return survey


def exclude_rating(
    session: Session, survey: SurveySession, reason: str, actor: str, now: datetime
) -> bool:
    """Exclude a survey's rating from every figure (an appeal upheld), audited; the rows stay.

    Returns False, changing nothing, when it is already excluded.
    """
    reason = reason.strip()
    if not reason:
        raise ReportError("give the reason for the exclusion")
    if survey.excluded_at is not None:
        return False
    survey.excluded_at, survey.excluded_by, survey.exclusion_reason = now, actor, reason
    _audit(session, survey, "survey.exclude", actor, now, reason)
    session.flush()
    return True


def reinstate_rating(
    session: Session, survey: SurveySession, actor: str, now: datetime, reason: str | None
) -> bool:
    """Count an excluded rating again, audited; False when it was not excluded."""
    if survey.excluded_at is None:
        return False
    previous = survey.exclusion_reason
    survey.excluded_at = survey.excluded_by = survey.exclusion_reason = None
    _audit(session, survey, "survey.reinstate", actor, now, reason, excluded_for=previous)
    session.flush()
    return True


def _audit(
    session: Session,
    survey: SurveySession,
    action: str,
    actor: str,
    now: datetime,
    reason: str | None,
    **extra: Any,
) -> None:
    interaction = survey.interaction
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action=action,
            subject_type="survey_session",
            subject_id=str(survey.id),
            detail={
                "reason": reason,
                "interaction_id": interaction.id,
                "operator": interaction.operator and interaction.operator.external_id,
                **extra,
            },
        )
    )


# --- a customer's satisfaction, for the CRM -----------------------------------------------


def customer_satisfaction(session: Session, customers: Sequence[Customer]) -> dict[str, Any]:
    """The customer's latest scores with their mean and NPS class, and the history's figures.

    Excluded ratings count in nothing here either.
    """
    ids = [c.id for c in customers]
    surveys = session.scalars(
        select(SurveySession)
        .join(SurveySession.interaction)
        .where(SurveySession.customer_id.in_(ids), SurveySession.excluded_at.is_(None))
        .order_by(Interaction.ended_at.desc(), SurveySession.id.desc())
        .options(selectinload(SurveySession.answers), selectinload(SurveySession.interaction))
    ).all()
    scored = [(s, score_of(s)) for s in surveys]
    answered = [(s, sc) for s, sc in scored if any(a.value is not None for a in s.answers)]
    overall = [sc.overall for _, sc in answered if sc.overall is not None]
    latest_nps = next((sc.nps for _, sc in answered if sc.nps is not None), None)
    latest = None
    if answered:
        survey, score = answered[0]
        ratings = [v for v in (score.overall, *score.parameters.values()) if v is not None]
        interaction = survey.interaction
        latest = {
            "survey_id": survey.id,
            "interaction": {
                "id": interaction.id,
                "external_id": interaction.external_id,
                "channel": interaction.channel.value,
                "ended_at": interaction.ended_at,
            },
            "scores": {a.question_key: a.value for a in survey.answers if a.value is not None},
            "mean": _round(sum(ratings) / len(ratings), 3) if ratings else None,
            "csi": _round(score.csi, 2),
            "nps": score.nps,
            "nps_class": nps_class(score.nps),
        }
    first = customers[0]
    return {
        "customer": {"external_id": first.external_id, "phone": first.phone, "name": first.name},
        "surveys_answered": len(answered),
        "overall_mean": _round(sum(overall) / len(overall), 3) if overall else None,
        "latest": latest,
        "nps": latest_nps,
        "nps_class": nps_class(latest_nps),
    }


# --- a deliberate re-score ----------------------------------------------------------------


def rescore_surveys(
    session: Session, flow_key: str, first: date, last: date, zone: ZoneInfo, now: datetime
) -> int:
    """Freeze again, with the flow's current weights, the score of every ended survey of this
    flow whose contact ended in these local days; audited. The rollup follows (minus the old
    score, plus the new). Returns how many surveys were re-scored."""
    spec = loaded_spec(flows_of(session), flow_key)
    if spec is None:
        raise ReportError(f"flow {flow_key!r} is not loaded; its surveys keep their scores")
    surveys = session.scalars(
        select(SurveySession)
        .join(SurveySession.interaction)
        .where(
            SurveySession.flow == flow_key,
            SurveySession.status.in_(ENDED_STATUSES),
            Interaction.ended_at >= day_start(first, zone),
            Interaction.ended_at < day_start(last + timedelta(days=1), zone),
        )
        .order_by(SurveySession.id)
    ).all()
    for number, survey in enumerate(surveys, start=1):
        freeze_score(survey, now, spec=spec)
        if number % 500 == 0:
            session.flush()
    session.add(
        AuditEvent(
            at=now,
            actor="cli",
            action="surveys.rescore",
            subject_type="flow",
            subject_id=flow_key,
            detail={
                "from": first.isoformat(),
                "to": last.isoformat(),
                "timezone": zone.key,
                "surveys": len(surveys),
                "weights": spec_to_json(spec),
            },
        )
    )
    session.flush()
    return len(surveys)
