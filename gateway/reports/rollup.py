"""The daily rollup behind the reports, kept current from the raw answers on every write.

A transaction that adds or changes an answer, a survey session's status or exclusion, or an
interaction recomputes the rollup rows (operator, UTC day, channel, office) it touched just
before it commits, from the raw rows of each bucket: a bucket is never patched with deltas,
so it is always exactly what the raw answers say. `rebuild` recomputes every bucket of a
period (after a flow's weights change, or to repair).

Concurrency: the bucket row is locked (INSERT ... ON CONFLICT DO UPDATE) before it is
recomputed, so two transactions touching one bucket recompute one after the other and the
second sees the first's committed rows (READ COMMITTED, PostgreSQL's default). Buckets are
locked in one sorted sweep at commit, so no two transactions wait for each other in a cycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import chain
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, event, inspect, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from gateway.db import utcnow
from gateway.models import Answer, Interaction, SurveySession, SurveyStatus
from gateway.reports.metrics import ScoringSpec, Tally, score_session, spec_for
from gateway.reports.models import OperatorDayParameter, OperatorDayScore
from ivr_flows import default_flows

# A survey reached the customer: its first question was delivered.
SENT_STATUSES = frozenset(
    {SurveyStatus.ACTIVE, SurveyStatus.COMPLETED, SurveyStatus.PARTIAL, SurveyStatus.EXPIRED}
)
NOT_SENT_STATUSES = frozenset(
    {SurveyStatus.NOT_SENT, SurveyStatus.NOT_REACHED, SurveyStatus.FAILED}
)
_SESSION_FIELDS = ("status", "excluded_at", "interaction_id", "flow")
_INTERACTION_FIELDS = ("operator_id", "ended_at", "channel", "office", "disposition")

interactions = cast(Table, Interaction.__table__)
sessions = cast(Table, SurveySession.__table__)
answers = cast(Table, Answer.__table__)
scores = cast(Table, OperatorDayScore.__table__)
parameter_scores = cast(Table, OperatorDayParameter.__table__)


@dataclass(frozen=True, order=True)
class BucketKey:
    operator_id: int
    day: date
    channel: str
    office: str


@dataclass
class Bucket:
    """The additive counts of one bucket, and its score tally."""

    contacts: int = 0
    offered: int = 0
    not_sent: int = 0
    sent: int = 0
    started: int = 0
    completed: int = 0
    excluded: int = 0
    calls_without_survey: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)

    def values(self) -> dict[str, Any]:
        t = self.tally
        return {
            "contacts": self.contacts,
            "offered": self.offered,
            "not_sent": self.not_sent,
            "sent": self.sent,
            "started": self.started,
            "completed": self.completed,
            "excluded": self.excluded,
            "calls_without_survey": self.calls_without_survey,
            "dispositions": self.dispositions,
            "responses": t.responses,
            **{f"overall_{v}": t.distribution.get(v, 0) for v in range(1, 6)},
            "csi_sum": t.csi_sum,
            "csi_n": t.csi_n,
            "csi_operator_sum": t.csi_operator_sum,
            "csi_operator_n": t.csi_operator_n,
            "nps_n": t.nps_n,
            "promoters": t.promoters,
            "detractors": t.detractors,
        }

    def parameter_rows(self, key: BucketKey) -> list[dict[str, Any]]:
        return [
            {
                "operator_id": key.operator_id,
                "day": key.day,
                "channel": key.channel,
                "office": key.office,
                "key": name,
                "total": total,
                "n": n,
            }
            for name, (total, n) in sorted(self.tally.parameter_sums.items())
        ]


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def scoring_spec(flow_key: str) -> ScoringSpec:
    """The spec of a loaded flow; a flow no longer shipped still counts its overall score."""
    flow = default_flows().get(flow_key)
    return spec_for(flow) if flow is not None else ScoringSpec()


def compute(conn: Connection, condition: Any) -> dict[BucketKey, Bucket]:
    """Buckets of the interactions matching `condition`, computed from the raw rows."""
    rows = conn.execute(
        select(
            interactions.c.id,
            interactions.c.operator_id,
            interactions.c.ended_at,
            interactions.c.channel,
            interactions.c.office,
            interactions.c.disposition,
            sessions.c.id.label("session_id"),
            sessions.c.status,
            sessions.c.flow,
            sessions.c.excluded_at,
        )
        .select_from(
            interactions.outerjoin(sessions, sessions.c.interaction_id == interactions.c.id)
        )
        .where(condition, interactions.c.operator_id.is_not(None))
    ).all()
    session_ids = [r.session_id for r in rows if r.session_id is not None]
    given: dict[int, dict[str, int | None]] = defaultdict(dict)
    for chunk_start in range(0, len(session_ids), 5000):
        chunk = session_ids[chunk_start : chunk_start + 5000]
        for session_id, key, value in conn.execute(
            select(answers.c.session_id, answers.c.question_key, answers.c.value).where(
                answers.c.session_id.in_(chunk)
            )
        ):
            given[session_id][key] = value
    specs: dict[str, ScoringSpec] = {}
    buckets: dict[BucketKey, Bucket] = defaultdict(Bucket)
    for r in rows:
        key = BucketKey(r.operator_id, day_of(r.ended_at), str(r.channel), r.office or "")
        bucket = buckets[key]
        bucket.contacts += 1
        if r.disposition:
            bucket.dispositions[r.disposition] = bucket.dispositions.get(r.disposition, 0) + 1
        if r.session_id is None:
            bucket.calls_without_survey += str(r.channel) == "call"
            continue
        bucket.offered += 1
        if r.excluded_at is not None:
            # An excluded rating (an appeal upheld) counts in no figure, only here.
            bucket.excluded += 1
            continue
        status = SurveyStatus(r.status)
        bucket.not_sent += status in NOT_SENT_STATUSES
        bucket.sent += status in SENT_STATUSES
        bucket.completed += status is SurveyStatus.COMPLETED
        answered = given.get(r.session_id, {})
        bucket.started += any(v is not None for v in answered.values())
        if r.flow not in specs:
            specs[r.flow] = scoring_spec(r.flow)
        bucket.tally.add(score_session(answered, specs[r.flow]))
    return buckets


def _insert(conn: Connection) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(scores)


def _key_condition(key: BucketKey, table: Table = scores) -> Any:
    return and_(
        table.c.operator_id == key.operator_id,
        table.c.day == key.day,
        table.c.channel == key.channel,
        table.c.office == key.office,
    )


def refresh(conn: Connection, keys: Iterable[BucketKey], now: datetime) -> None:
    """Recompute these buckets from the raw rows, locking them all first, in a fixed order."""
    ordered = sorted(set(keys))
    if not ordered:
        return
    # Lock (or create) the bucket rows before reading: see the module docstring.
    claim = _insert(conn).values(
        [
            {
                "operator_id": k.operator_id,
                "day": k.day,
                "channel": k.channel,
                "office": k.office,
                "updated_at": now,
                **Bucket().values(),
            }
            for k in ordered
        ]
    )
    conn.execute(
        claim.on_conflict_do_update(
            index_elements=["operator_id", "day", "channel", "office"],
            set_={"updated_at": claim.excluded.updated_at},
        )
    )
    by_day: dict[date, set[int]] = defaultdict(set)
    for key in ordered:
        by_day[key.day].add(key.operator_id)
    computed: dict[BucketKey, Bucket] = {}
    for day, operator_ids in by_day.items():
        start = day_start(day)
        computed.update(
            compute(
                conn,
                and_(
                    interactions.c.operator_id.in_(operator_ids),
                    interactions.c.ended_at >= start,
                    interactions.c.ended_at < start + timedelta(days=1),
                ),
            )
        )
    new_parameters = []
    for key in ordered:  # only the locked buckets are written, though more were computed
        bucket = computed.get(key)
        conn.execute(delete(parameter_scores).where(_key_condition(key, parameter_scores)))
        if bucket is None or bucket.contacts == 0:
            conn.execute(delete(scores).where(_key_condition(key)))
            continue
        conn.execute(
            scores.update().where(_key_condition(key)).values(updated_at=now, **bucket.values())
        )
        new_parameters += bucket.parameter_rows(key)
    if new_parameters:
        conn.execute(parameter_scores.insert(), new_parameters)


def rebuild(conn: Connection, first_day: date, last_day: date, now: datetime) -> int:
    """Recompute every bucket of these UTC days (inclusive) from the raw rows; the count."""
    written = 0
    day = first_day
    while day <= last_day:
        start = day_start(day)
        conn.execute(delete(scores).where(scores.c.day == day))
        conn.execute(delete(parameter_scores).where(parameter_scores.c.day == day))
        buckets = compute(
            conn,
            and_(interactions.c.ended_at >= start, interactions.c.ended_at < start + timedelta(1)),
        )
        if buckets:
            conn.execute(
                scores.insert(),
                [
                    {
                        "operator_id": k.operator_id,
                        "day": k.day,
                        "channel": k.channel,
                        "office": k.office,
                        "updated_at": now,
                        **b.values(),
                    }
                    for k, b in buckets.items()
                ],
            )
            if rows := [row for k, b in buckets.items() for row in b.parameter_rows(k)]:
                conn.execute(parameter_scores.insert(), rows)
        written += len(buckets)
        day += timedelta(days=1)
    return written


# --- keeping it current: the ORM hook ---------------------------------------------------


def _changed(obj: Any, names: Iterable[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _old_values(obj: Any, name: str) -> list[Any]:
    history = inspect(obj).attrs[name].history
    return [*history.deleted, *history.unchanged, *history.added]


def _touched(session: Session) -> tuple[set[int], set[int], set[BucketKey]]:
    """Interaction ids and session ids whose buckets a flush touched, and moved buckets."""
    interaction_ids: set[int] = set()
    session_ids: set[int] = set()
    moved: set[BucketKey] = set()
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Answer):
            if obj in session.dirty and not _changed(obj, ("value", "session_id")):
                continue
            session_ids.update(v for v in _old_values(obj, "session_id") if v is not None)
        elif isinstance(obj, SurveySession):
            if obj in session.dirty and not _changed(obj, _SESSION_FIELDS):
                continue
            interaction_ids.update(v for v in _old_values(obj, "interaction_id") if v is not None)
        elif isinstance(obj, Interaction):
            if obj in session.dirty and not _changed(obj, _INTERACTION_FIELDS):
                continue
            if obj.id is not None:
                interaction_ids.add(obj.id)
            if obj not in session.dirty:
                continue
            # An interaction moved to another operator, day or office leaves its old bucket.
            moved.update(
                BucketKey(op, day_of(ended), str(channel), office or "")
                for op in _old_values(obj, "operator_id")
                if op is not None
                for ended in _old_values(obj, "ended_at")
                if ended is not None
                for channel in _old_values(obj, "channel")
                for office in _old_values(obj, "office")
            )
    return interaction_ids, session_ids, moved


def _keys_of(
    conn: Connection, interaction_ids: set[int], session_ids: set[int]
) -> Iterator[BucketKey]:
    conditions = []
    if interaction_ids:
        conditions.append(interactions.c.id.in_(interaction_ids))
    if session_ids:
        conditions.append(
            interactions.c.id.in_(
                select(sessions.c.interaction_id).where(sessions.c.id.in_(session_ids))
            )
        )
    if not conditions:
        return
    for op, ended, channel, office in conn.execute(
        select(
            interactions.c.operator_id,
            interactions.c.ended_at,
            interactions.c.channel,
            interactions.c.office,
        ).where(or_(*conditions), interactions.c.operator_id.is_not(None))
    ):
        yield BucketKey(op, day_of(ended), str(channel), office or "")


@dataclass
class _Pending:
    """What a transaction's flushes touched, refreshed once when it commits."""

    interaction_ids: set[int] = field(default_factory=set)
    session_ids: set[int] = field(default_factory=set)
    moved: set[BucketKey] = field(default_factory=set)


_PENDING = "reports_rollup_pending"


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    interaction_ids, session_ids, moved = _touched(session)
    if not (interaction_ids or session_ids or moved):
        return
    pending = session.info.setdefault(_PENDING, _Pending())
    pending.interaction_ids |= interaction_ids
    pending.session_ids |= session_ids
    pending.moved |= moved


def _before_commit(session: Session) -> None:
    """Refresh the touched buckets just before the commit, all in one sorted sweep.

    Taking the bucket locks only here, in one order, keeps them held for the shortest time
    and lets no two transactions lock two buckets in opposite orders (no deadlock).
    """
    if session.new or session.dirty or session.deleted:
        session.flush()  # commit would flush next; flush first so the sweep sees it all
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is None:
        return
    flush_pending(session.connection(), pending)


def flush_pending(conn: Connection, pending: _Pending) -> None:
    keys = _keys_of(conn, pending.interaction_ids, pending.session_ids)
    refresh(conn, chain(pending.moved, keys), utcnow())


def refresh_now(session: Session) -> None:
    """Refresh what this session's transaction touched so far, without waiting for commit."""
    session.flush()
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is not None:
        flush_pending(session.connection(), pending)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost: committed (already swept) or rolled back
        session.info.pop(_PENDING, None)


_HOOKS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("after_flush", _after_flush),
    ("before_commit", _before_commit),
    ("after_transaction_end", _after_transaction_end),
)


def install() -> None:
    """Keep the rollup current on every commit of this process's ORM sessions (idempotent)."""
    for name, hook in _HOOKS:
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)


def uninstall() -> None:
    """Stop keeping the rollup current (the benchmark measures a write without it)."""
    for name, hook in _HOOKS:
        if event.contains(Session, name, hook):
            event.remove(Session, name, hook)
