"""The reports' rollup, kept by additive increments in the transaction of each write.

A contact's contribution to its bucket (operator, team at the time, local day, channel,
office) is a pure function of two rows: its interaction and its survey (status, exclusion and
the score frozen when the survey ended; see `contribute`). Whenever an ORM flush changes one
of the fields it depends on, the flush adds "minus the old contribution, plus the new" to the
buckets, in the same transaction (INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n),
and to its month bucket (the month tables, which reports read for the whole months of a
period). That costs the same on the first call of a day as on the ten-thousandth. A keypress
(an answer and the session's new position) changes none of those fields, so it touches no
rollup row at all; a survey's score reaches the reports when it ends and is frozen.

Why increments and not a fold behind a watermark: the gateway has no process that could own
a watermark on the embedded default (no broker), and figures current at commit need no
freshness caveat. docs/metrics.md has the whole argument.

Correctness under concurrency: the old contribution is read from the database just before
the flush, after locking the contact's survey row and then its interaction row (in that
order, the order the webhooks lock them), so two transactions changing one contact apply
their differences one after the other and neither is counted twice. Writes that bypass the
ORM (bulk SQL) bypass the rollup: `verify` finds the difference, `rebuild` repairs it. The
IVR's first and last step are written without the ORM (one statement each costs less than a
flush) and add their own difference with `count_change`, under the same locks; so are the new
contacts of a large API batch, counted together with `count_new`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, UOWTransaction, sessionmaker

from gateway.db import utcnow
from gateway.models import Answer, Interaction, InteractionChannel, SurveySession, SurveyStatus
from gateway.reports.metrics import BUCKET_FIGURES, SessionScore, Tally
from gateway.reports.models import (
    BUCKET_KEY,
    RollupState,
    ScoreBucket,
    ScoreBucketDisposition,
    ScoreBucketParameter,
    ScoreMonth,
    ScoreMonthDisposition,
    ScoreMonthParameter,
)
from gateway.reports.scoring import answers_of, freeze_score, frozen_differs

log = logging.getLogger(__name__)

# A survey reached the customer: its first question was delivered.
SENT_STATUSES = frozenset(
    {SurveyStatus.ACTIVE, SurveyStatus.COMPLETED, SurveyStatus.PARTIAL, SurveyStatus.EXPIRED}
)
NOT_SENT_STATUSES = frozenset(
    {SurveyStatus.NOT_SENT, SurveyStatus.NOT_REACHED, SurveyStatus.FAILED}
)
# A survey that reached the customer and ended: its score is frozen.
ENDED_STATUSES = frozenset({SurveyStatus.COMPLETED, SurveyStatus.PARTIAL, SurveyStatus.EXPIRED})
COUNT_COLUMNS = tuple(figure.name for figure in BUCKET_FIGURES)  # a bucket's figures
# The fields a contribution depends on; a flush changing none of them costs nothing here.
_INTERACTION_FIELDS = (
    "operator",
    "operator_id",
    "team",
    "team_id",
    "ended_at",
    "channel",
    "office",
    "disposition",
)
_SURVEY_FIELDS = (
    "interaction",
    "interaction_id",
    "status",
    "excluded_at",
    "scored_at",
    "score_answered",
    "score_overall",
    "score_parameters",
    "score_csi",
    "score_csi_operator",
    "score_nps",
)
# Start-up rebuilds a rollup built in another time zone (or never) by itself up to this many
# contacts (a few seconds); above it, it asks for `surveys rebuild-scores --all`.
QUICK_REBUILD_CONTACTS = 20_000
_ADVISORY_LOCK = 7_245_190_001  # serialises start-up rebuilds of several processes

interactions = cast(Table, Interaction.__table__)
sessions = cast(Table, SurveySession.__table__)
buckets = cast(Table, ScoreBucket.__table__)
bucket_parameters = cast(Table, ScoreBucketParameter.__table__)
bucket_dispositions = cast(Table, ScoreBucketDisposition.__table__)
month_buckets = cast(Table, ScoreMonth.__table__)
month_parameters = cast(Table, ScoreMonthParameter.__table__)
month_dispositions = cast(Table, ScoreMonthDisposition.__table__)
# The rollup's tables per day and per month: buckets, their parameter and disposition rows.
DAY_TABLES = (buckets, bucket_parameters, bucket_dispositions)
MONTH_TABLES = (month_buckets, month_parameters, month_dispositions)

_ROWS = select(
    interactions.c.id,
    interactions.c.operator_id,
    interactions.c.team_id,
    interactions.c.ended_at,
    interactions.c.channel,
    interactions.c.office,
    interactions.c.disposition,
    sessions.c.id.label("survey_id"),
    sessions.c.status,
    sessions.c.excluded_at,
    sessions.c.scored_at,
    sessions.c.score_answered,
    sessions.c.score_overall,
    sessions.c.score_parameters,
    sessions.c.score_csi,
    sessions.c.score_csi_operator,
    sessions.c.score_nps,
).select_from(
    # A contact's original survey only: follow-ups (re-surveys after a fix) are no new contact.
    interactions.outerjoin(
        sessions,
        and_(sessions.c.interaction_id == interactions.c.id, sessions.c.follow_up_of_id.is_(None)),
    )
)

# One contact's raw row by its original survey, with its interaction locked (the caller holds
# the survey's lock already): what `count_change` takes as the contribution before a change.
CONTACT_OF_SURVEY = _ROWS.where(sessions.c.id == bindparam("survey_id")).with_for_update(
    of=interactions
)
CONTACT_FIELDS = tuple(_ROWS.selected_columns.keys())


@dataclass(frozen=True, order=True)
class BucketKey:
    operator_id: int
    team_id: int  # 0: no team
    day: date
    channel: str
    office: str  # "": none

    def __str__(self) -> str:
        return (
            f"bucket {self.day} operator {self.operator_id} team {self.team_id or '-'} "
            f"{self.channel} office {self.office or '-'}"
        )

    def values(self) -> dict[str, Any]:
        return {
            "operator_id": self.operator_id,
            "team_id": self.team_id,
            "day": self.day,
            "channel": self.channel,
            "office": self.office,
        }


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The date of a moment in the reports' time zone."""
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first moment of a local day (midnight in `zone`)."""
    return datetime.combine(day, time(0), zone)


@dataclass
class Delta:
    """Signed sums to add to the rollup: per bucket, per bucket and parameter or disposition."""

    counts: dict[BucketKey, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    )
    parameters: dict[tuple[BucketKey, str], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0, 0])
    )
    dispositions: dict[tuple[BucketKey, str], int] = field(default_factory=lambda: defaultdict(int))

    def contribute(self, row: Any, sign: int, zone: ZoneInfo) -> None:
        """Add (sign 1) or take away (sign -1) one contact's contribution, from its raw row."""
        if row.operator_id is None:
            return  # interactions without an operator are in no operator's figures
        channel = str(row.channel)
        key = BucketKey(
            row.operator_id,
            row.team_id or 0,
            local_day(row.ended_at, zone),
            channel,
            row.office or "",
        )
        counts = self.counts[key]
        counts["contacts"] += sign
        if row.disposition:
            self.dispositions[key, row.disposition] += sign
        if row.survey_id is None:
            counts["calls_without_survey"] += sign * (channel == InteractionChannel.CALL.value)
            return
        counts["offered"] += sign
        if row.excluded_at is not None:
            # An excluded rating (an appeal upheld) counts in no figure, only here.
            counts["excluded"] += sign
            return
        status = SurveyStatus(row.status)
        counts["not_sent"] += sign * (status in NOT_SENT_STATUSES)
        counts["sent"] += sign * (status in SENT_STATUSES)
        counts["completed"] += sign * (status is SurveyStatus.COMPLETED)
        if row.scored_at is None:
            return  # still running: its score counts once it ends and is frozen
        counts["started"] += sign * bool(row.score_answered)
        parameters = row.score_parameters or {}
        tally = Tally.of(
            [
                SessionScore(
                    overall=row.score_overall,
                    parameters=parameters,
                    csi=row.score_csi,
                    csi_operator=row.score_csi_operator,
                    nps=row.score_nps,
                )
            ]
        )
        for name, value in tally.sums.items():
            counts[name] += sign * value
        for name, (total, n) in tally.parameter_sums.items():
            pair = self.parameters[key, name]
            pair[0] += sign * total
            pair[1] += sign * n

    def merge_rows(self, rows: Iterable[Any], sign: int, zone: ZoneInfo) -> None:
        for row in rows:
            self.contribute(row, sign, zone)

    def by_month(self) -> Delta:
        """The same sums with each bucket's day replaced by its month's first day."""
        months = Delta()
        for key, counts in self.counts.items():
            summed = months.counts[month_key(key)]
            for name, value in counts.items():
                summed[name] += value
        for (key, name), (total, n) in self.parameters.items():
            pair = months.parameters[month_key(key), name]
            pair[0] += total
            pair[1] += n
        for (key, name), n in self.dispositions.items():
            months.dispositions[month_key(key), name] += n
        return months


def month_key(key: BucketKey) -> BucketKey:
    """The month bucket a day bucket adds to."""
    return replace(key, day=key.day.replace(day=1))


def read_contacts(conn: Connection, ids: Iterable[int], *, lock: bool = False) -> list[Any]:
    """The raw rows of these interactions and their surveys; with `lock`, locked for update
    (surveys first, then interactions, as the webhooks lock them)."""
    ordered = sorted(ids)
    if not ordered:
        return []
    query = _ROWS.where(interactions.c.id.in_(ordered)).order_by(interactions.c.id)
    if lock:
        conn.execute(
            select(sessions.c.id)
            .where(sessions.c.interaction_id.in_(ordered))
            .order_by(sessions.c.id)
            .with_for_update()
        )
        query = query.with_for_update(of=interactions)
    return list(conn.execute(query))


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _key_condition(key: BucketKey, table: Table) -> Any:
    return and_(*(table.c[name] == value for name, value in key.values().items()))


# The upsert statements, built once per process (building one costs more than running it).
_UPSERTS: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def _upsert(conn: Connection, table: Table, key_columns: tuple[str, ...], rows: list[Any]) -> None:
    """Add each row's numbers to the row of its key, creating it if missing."""
    if not rows:
        return
    numbers = tuple(name for name in rows[0] if name not in key_columns)
    cache_key = (conn.dialect.name, table.name, numbers)
    statement = _UPSERTS.get(cache_key)
    if statement is None:
        stmt = _insert(conn, table)
        statement = _UPSERTS[cache_key] = stmt.on_conflict_do_update(
            index_elements=list(key_columns),
            set_={name: table.c[name] + stmt.excluded[name] for name in numbers},
        )
    conn.execute(statement, rows)


def apply(conn: Connection, delta: Delta) -> None:
    """Add a delta to the rollup's days, then to its months, each in key order (no two
    transactions lock in opposite orders); rows brought back to zero are removed. On
    PostgreSQL the days and the months are written by one statement (one round trip)."""
    days = _changes(delta, DAY_TABLES)
    months = _changes(delta.by_month(), MONTH_TABLES)
    _upsert_all(conn, [*days.upserts, *months.upserts])
    _remove_zeros(conn, days)
    _remove_zeros(conn, months)


def _apply_to(conn: Connection, delta: Delta, tables: tuple[Table, Table, Table]) -> None:
    """Add a delta to the buckets, parameter and disposition rows of `tables`."""
    changes = _changes(delta, tables)
    _upsert_all(conn, changes.upserts)
    _remove_zeros(conn, changes)


@dataclass
class _Changes:
    """A delta's rows for one granularity's tables, in key order."""

    tables: tuple[Table, Table, Table]
    upserts: list[tuple[Table, tuple[str, ...], list[dict[str, Any]]]]
    counts: list[tuple[BucketKey, dict[str, float]]]
    parameters: list[tuple[tuple[BucketKey, str], list[float]]]
    dispositions: list[tuple[tuple[BucketKey, str], int]]


def _changes(delta: Delta, tables: tuple[Table, Table, Table]) -> _Changes:
    buckets, bucket_parameters, bucket_dispositions = tables
    changed = sorted((k, c) for k, c in delta.counts.items() if any(c.values()))
    parameters = sorted((k, p) for k, p in delta.parameters.items() if p[1] or p[0])
    dispositions = sorted((k, n) for k, n in delta.dispositions.items() if n)
    upserts = [
        (buckets, BUCKET_KEY, [{**k.values(), **c} for k, c in changed]),
        (
            bucket_parameters,
            (*BUCKET_KEY, "key"),
            [{**k.values(), "key": name, "total": t, "n": n} for (k, name), (t, n) in parameters],
        ),
        (
            bucket_dispositions,
            (*BUCKET_KEY, "disposition"),
            [{**k.values(), "disposition": name, "n": n} for (k, name), n in dispositions],
        ),
    ]
    return _Changes(tables, upserts, changed, parameters, dispositions)


def _remove_zeros(conn: Connection, changes: _Changes) -> None:
    """Remove the rows a negative change may have brought back to zero."""
    buckets, bucket_parameters, bucket_dispositions = changes.tables
    for key, counts in changes.counts:
        if counts["contacts"] < 0:
            conn.execute(
                delete(buckets).where(_key_condition(key, buckets), buckets.c.contacts == 0)
            )
    for (key, name), (_total, n) in changes.parameters:
        if n < 0:
            conn.execute(
                delete(bucket_parameters).where(
                    _key_condition(key, bucket_parameters),
                    bucket_parameters.c.key == name,
                    bucket_parameters.c.n == 0,
                )
            )
    for (key, name), n in changes.dispositions:
        if n < 0:
            conn.execute(
                delete(bucket_dispositions).where(
                    _key_condition(key, bucket_dispositions),
                    bucket_dispositions.c.disposition == name,
                    bucket_dispositions.c.n == 0,
                )
            )


# The combined upserts of PostgreSQL, built once per process and set of tables and columns.
_COMBINED: dict[tuple[tuple[str, tuple[str, ...]], ...], Any] = {}


def _upsert_all(
    conn: Connection, upserts: list[tuple[Table, tuple[str, ...], list[dict[str, Any]]]]
) -> None:
    """Add each table's rows, table after table in the order given. PostgreSQL does it in one
    statement: each table's upsert is a data-modifying CTE reading its rows (in key order)
    from one JSON parameter as rows of the table's own type (`jsonb_populate_recordset`), and
    waits for the one before it to finish (a one-time filter on its row count), so the rows
    are locked in the same order as by separate statements. SQLite runs one statement per
    table.

    One parameter per table keeps the statement short and its parameters few: psycopg keeps
    its translation of a statement up to 4,096 characters and 50 parameters, and translates
    a longer one again on every execution."""
    upserts = [u for u in upserts if u[2]]
    if not upserts:
        return
    if conn.dialect.name != "postgresql":
        for table, key_columns, rows in upserts:
            _upsert(conn, table, key_columns, rows)
        return
    shape = tuple((table.name, tuple(rows[0])) for table, _key, rows in upserts)
    statement = _COMBINED.get(shape)
    if statement is None:
        statement = _COMBINED[shape] = _combined_upsert(conn, upserts)
    # Days as ISO dates; a figure column's number as it is (the table's types convert).
    params = {f"u{i}": json.dumps(rows, default=str) for i, (_t, _k, rows) in enumerate(upserts)}
    conn.execute(statement, params)


def _combined_upsert(
    conn: Connection, upserts: list[tuple[Table, tuple[str, ...], list[dict[str, Any]]]]
) -> Any:
    # Written without optional spaces: the upsert of each table lists its columns three
    # times, and the whole must stay under psycopg's 4,096 characters (see _upsert_all).
    quote = conn.dialect.identifier_preparer.quote
    parts = []
    for i, (table, key_columns, rows) in enumerate(upserts):
        name = quote(table.name)
        columns = ",".join(quote(column) for column in rows[0])
        after = f" WHERE(SELECT count(*)FROM u{i - 1})>=0" if i else ""
        added = ",".join(
            f"{quote(column)}=t.{quote(column)}+excluded.{quote(column)}"
            for column in rows[0]
            if column not in key_columns
        )
        parts.append(
            f"u{i} AS(INSERT INTO {name} AS t({columns})SELECT {columns} "
            f"FROM jsonb_populate_recordset(NULL::{name},CAST(:u{i} AS jsonb)){after} "
            f"ON CONFLICT({','.join(quote(column) for column in key_columns)})"
            f"DO UPDATE SET {added} RETURNING 1)"
        )
    return text(f"WITH {','.join(parts)}SELECT count(*)FROM u{len(upserts) - 1}")


def count_change(
    conn: Connection, before: Any | None, after: Mapping[str, Any], zone: ZoneInfo
) -> None:
    """Count one contact's change made without the ORM: minus its contribution `before` (a
    row as CONTACT_OF_SURVEY reads it; None for a new contact), plus that of `after` (the
    same fields as they are now). The caller holds the locks the ORM's hook would take."""
    delta = Delta()
    if before is not None:
        delta.contribute(before, -1, zone)
    delta.contribute(SimpleNamespace(**after), 1, zone)
    apply(conn, delta)


def count_new(conn: Connection, contacts: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> None:
    """Count new contacts written without the ORM (a large batch of the API), each with the
    fields `count_change` takes as `after`, in one application to the rollup."""
    delta = Delta()
    for after in contacts:
        delta.contribute(SimpleNamespace(**after), 1, zone)
    apply(conn, delta)


# --- keeping it current: hooks on the app's sessionmaker ------------------------------------


def _changed(obj: Any, names: Iterable[str]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in names)


def _interaction_ids_of(survey: SurveySession) -> set[int]:
    """The interaction ids a survey belongs or belonged to (before and in this flush)."""
    history = inspect(survey).attrs.interaction_id.history
    ids = {v for v in (*history.deleted, *history.unchanged, *history.added) if v is not None}
    linked = survey.__dict__.get("interaction")  # never loaded here: no SQL inside a flush
    if linked is not None and linked.id is not None:
        ids.add(linked.id)
    return ids


_PENDING = "reports_rollup_pending"


class ScoreKeeper:
    """Keeps the rollup current on every flush of one app's sessions (see the module doc)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def attach(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "before_flush", self._before_flush)
        event.listen(factory, "after_flush", self._after_flush)

    def _before_flush(self, session: Session, _context: UOWTransaction, _objects: Any) -> None:
        session.info.pop(_PENDING, None)
        ids: set[int] = set()
        fresh = False
        for obj in session.new:
            if isinstance(obj, Interaction):
                fresh = True
            elif isinstance(obj, SurveySession):
                fresh = True
                ids |= _interaction_ids_of(obj)  # a new survey of an existing contact
        for obj in session.dirty:
            if isinstance(obj, Interaction) and _changed(obj, _INTERACTION_FIELDS):
                ids.add(obj.id)
            elif isinstance(obj, SurveySession) and _changed(obj, _SURVEY_FIELDS):
                ids |= _interaction_ids_of(obj)
        for obj in session.deleted:
            if isinstance(obj, Interaction):
                ids.add(obj.id)
            elif isinstance(obj, SurveySession):
                ids |= _interaction_ids_of(obj)
        if not ids and not fresh:
            return
        old = read_contacts(session.connection(), ids, lock=True)
        session.info[_PENDING] = (ids, old)

    def _after_flush(self, session: Session, _context: UOWTransaction) -> None:
        pending = session.info.pop(_PENDING, None)
        if pending is None:
            return
        ids, old = pending
        for obj in session.new:
            if isinstance(obj, Interaction):
                ids.add(obj.id)
            elif isinstance(obj, SurveySession):
                ids.add(obj.interaction_id)
        conn = session.connection()
        delta = Delta()
        delta.merge_rows(old, -1, self.zone)
        delta.merge_rows(read_contacts(conn, ids), 1, self.zone)
        apply(conn, delta)


# --- rebuilding and verifying from the raw rows ---------------------------------------------


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _contacts_of_day(conn: Connection, day: date, zone: ZoneInfo) -> Iterator[Any]:
    start = day_start(day, zone)
    yield from conn.execute(
        _ROWS.where(
            interactions.c.ended_at >= start,
            interactions.c.ended_at < day_start(day + timedelta(days=1), zone),
            interactions.c.operator_id.is_not(None),
        )
    )


def freeze_missing(session: Session, first: date, last: date, zone: ZoneInfo) -> int:
    """Freeze the score of every ended survey of these days that has none (surveys that ended
    before scores were frozen), a thousand at a time; the count."""
    query = (
        select(SurveySession)
        .join(SurveySession.interaction)
        .where(
            Interaction.ended_at >= day_start(first, zone),
            Interaction.ended_at < day_start(last + timedelta(days=1), zone),
            SurveySession.scored_at.is_(None),
            SurveySession.status.in_(ENDED_STATUSES),
        )
        .order_by(SurveySession.id)
        .limit(1000)
    )
    now = utcnow()
    count = 0
    while surveys := session.scalars(query).all():
        given: dict[int, dict[str, int | None]] = {s.id: {} for s in surveys}
        for survey_id, key, value in session.execute(
            select(Answer.session_id, Answer.question_key, Answer.value).where(
                Answer.session_id.in_(list(given))
            )
        ):
            given[survey_id][key] = value
        for survey in surveys:
            freeze_score(survey, now, answers=given[survey.id])
        session.flush()
        count += len(surveys)
    return count


def rebuild(session: Session, first: date, last: date, zone: ZoneInfo) -> int:
    """Recompute the buckets of these local days (inclusive) from the raw rows, after freezing
    any ended survey's missing score, then the months they are in from their days; the number
    of day buckets written.

    Safe beside live writes: it adds with the same upsert as they do, so a write that
    commits while a day is rebuilt is counted once, in whichever order the two commit.
    """
    freeze_missing(session, first, last, zone)
    conn = session.connection()
    written = 0
    for day in _days(first, last):
        for table in DAY_TABLES:
            conn.execute(delete(table).where(table.c.day == day))
        delta = Delta()
        delta.merge_rows(_contacts_of_day(conn, day, zone), 1, zone)
        _apply_to(conn, delta, DAY_TABLES)
        written += sum(1 for c in delta.counts.values() if any(c.values()))
    for month in _months(first, last):
        for table in MONTH_TABLES:
            conn.execute(delete(table).where(table.c.day == month))
        _apply_to(conn, _stored_days(conn, month, _month_end(month)).by_month(), MONTH_TABLES)
    return written


def _months(first: date, last: date) -> Iterator[date]:
    """The first day of each month that holds a day of first..last."""
    month = first.replace(day=1)
    while month <= last:
        yield month
        month = _month_end(month) + timedelta(days=1)


def _month_end(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _stored_days(conn: Connection, first: date, last: date) -> Delta:
    """The day buckets of first..last as stored, as a delta (to sum into their months)."""
    delta = Delta()

    def key(row: Any) -> BucketKey:
        return BucketKey(row.operator_id, row.team_id, row.day, row.channel, row.office)

    for row in conn.execute(select(buckets).where(buckets.c.day.between(first, last))):
        delta.counts[key(row)].update({c: row._mapping[c] for c in COUNT_COLUMNS})
    for row in conn.execute(
        select(bucket_parameters).where(bucket_parameters.c.day.between(first, last))
    ):
        delta.parameters[key(row), row.key] = [row.total, row.n]
    for row in conn.execute(
        select(bucket_dispositions).where(bucket_dispositions.c.day.between(first, last))
    ):
        delta.dispositions[key(row), row.disposition] = row.n
    return delta


def contact_days(conn: Connection, zone: ZoneInfo) -> tuple[date, date] | None:
    """The first and last local day with a contact, if any."""
    first, last = conn.execute(
        select(func.min(interactions.c.ended_at), func.max(interactions.c.ended_at))
    ).one()
    if first is None:
        return None
    return local_day(first, zone), local_day(last, zone)


def rebuild_all(session: Session, zone: ZoneInfo) -> int:
    """Rebuild the whole rollup in `zone`'s days and record that zone; the buckets written."""
    conn = session.connection()
    for table in (*DAY_TABLES, *MONTH_TABLES):
        conn.execute(delete(table))
    span = contact_days(conn, zone)
    written = rebuild(session, *span, zone) if span else 0
    state = session.get(RollupState, 1)
    if state is None:
        session.add(RollupState(id=1, timezone=zone.key, built_at=utcnow()))
    else:
        state.timezone, state.built_at = zone.key, utcnow()
    session.flush()
    return written


def built_in(session: Session) -> str | None:
    """The time zone the rollup was built in; None if it never was."""
    return session.scalar(select(RollupState.timezone).where(RollupState.id == 1))


@dataclass(frozen=True)
class Difference:
    """One bucket, or one survey's frozen score, that is not what the raw rows say."""

    what: str
    stored: Mapping[str, float]
    expected: Mapping[str, float]

    def __str__(self) -> str:
        names = sorted(set(self.stored) | set(self.expected))
        changes = ", ".join(
            f"{n} {self.stored.get(n, 0):g} (expected {self.expected.get(n, 0):g})"
            for n in names
            if abs(self.stored.get(n, 0) - self.expected.get(n, 0)) > 1e-6
        )
        return f"{self.what}: {changes}"


def _stored_buckets(
    conn: Connection, day: date, tables: tuple[Table, Table, Table] = DAY_TABLES
) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = defaultdict(dict)
    buckets, bucket_parameters, bucket_dispositions = tables

    def name(row: Any) -> str:
        key = BucketKey(row.operator_id, row.team_id, row.day, row.channel, row.office)
        return _month_name(key) if tables is MONTH_TABLES else str(key)

    for row in conn.execute(select(buckets).where(buckets.c.day == day)):
        found[name(row)].update({c: row._mapping[c] for c in COUNT_COLUMNS})
    for row in conn.execute(select(bucket_parameters).where(bucket_parameters.c.day == day)):
        found[name(row)][f"parameter {row.key} total"] = row.total
        found[name(row)][f"parameter {row.key} n"] = row.n
    for row in conn.execute(select(bucket_dispositions).where(bucket_dispositions.c.day == day)):
        found[name(row)][f"disposition {row.disposition}"] = row.n
    return found


def _month_name(key: BucketKey) -> str:
    return f"month {key.day:%Y-%m} of {str(key).removeprefix('bucket ')}"


def _expected_buckets(delta: Delta, *, months: bool = False) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = defaultdict(dict)
    label = _month_name if months else str
    for key, counts in delta.counts.items():
        found[label(key)].update(counts)
    for (key, name), (total, n) in delta.parameters.items():
        found[label(key)][f"parameter {name} total"] = total
        found[label(key)][f"parameter {name} n"] = n
    for (key, name), n in delta.dispositions.items():
        found[label(key)][f"disposition {name}"] = n
    return found


def verify(session: Session, first: date, last: date, zone: ZoneInfo) -> list[Difference]:
    """Every bucket of these local days, and every ended survey's frozen score, that differs
    from a recomputation from the raw rows (answers, surveys, interactions); and every month
    bucket of the months they are in that differs from the sum of its days."""
    differences: list[Difference] = []
    surveys = session.scalars(
        select(SurveySession)
        .join(SurveySession.interaction)
        .where(
            Interaction.ended_at >= day_start(first, zone),
            Interaction.ended_at < day_start(last + timedelta(days=1), zone),
            SurveySession.scored_at.is_not(None),
        )
        .order_by(SurveySession.id)
        .execution_options(yield_per=1000)
    )
    for survey in surveys:
        if frozen_differs(survey, answers_of(session, survey.id)):
            differences.append(
                Difference(f"survey {survey.id}: frozen score differs from its answers", {}, {})
            )
    conn = session.connection()
    for day in _days(first, last):
        delta = Delta()
        delta.merge_rows(_contacts_of_day(conn, day, zone), 1, zone)
        expected = _expected_buckets(delta)
        stored = _stored_buckets(conn, day)
        differences.extend(_compare(expected, stored))
    for month in _months(first, last):
        expected = _expected_buckets(
            _stored_days(conn, month, _month_end(month)).by_month(), months=True
        )
        differences.extend(_compare(expected, _stored_buckets(conn, month, MONTH_TABLES)))
    return differences


def _compare(
    expected: dict[str, dict[str, float]], stored: dict[str, dict[str, float]]
) -> Iterator[Difference]:
    for name in sorted(set(expected) | set(stored)):
        want = {k: v for k, v in expected.get(name, {}).items() if v}
        have = {k: v for k, v in stored.get(name, {}).items() if v}
        if any(abs(have.get(k, 0) - want.get(k, 0)) > 1e-6 for k in set(want) | set(have)):
            yield Difference(name, have, want)


# --- start-up -------------------------------------------------------------------------------


def ensure_built(factory: sessionmaker[Session], zone: ZoneInfo) -> str:
    """Check that the rollup was built in `zone`; rebuild it if it was not and that is quick.

    Returns what was found or done, for the start-up log.
    """
    with factory() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        built = built_in(session)
        if built == zone.key:
            return "current"
        contacts = session.scalar(select(func.count()).select_from(interactions)) or 0
        if contacts > QUICK_REBUILD_CONTACTS:
            return "stale"
        written = rebuild_all(session, zone)
        log.info(
            "reports' rollup rebuilt in %s days (was %s): %d buckets",
            zone.key,
            built or "never built",
            written,
        )
        return "rebuilt"


def init_app(app: Any) -> None:
    """Keep the rollup current on the app's sessions; check its time zone at start-up."""
    settings = app.config["SETTINGS"]
    database = app.extensions["database"]
    zone = ZoneInfo(settings.report_timezone)
    keeper = ScoreKeeper(zone)
    keeper.attach(database.session_factory)
    app.extensions["score_keeper"] = keeper
    try:
        outcome = ensure_built(database.session_factory, zone)
    except Exception as exc:  # start-up goes on; readiness reports the database itself
        app.logger.warning("reports' rollup not checked at start-up: %s", exc)
        return
    if outcome == "stale":
        app.logger.error(
            "the reports' rollup was built for another REPORT_TIMEZONE (or before an upgrade); "
            "reports are wrong until `survey-gateway surveys rebuild-scores --all` is run"
        )
