"""Bulk intake: a day's contacts from a CRM in requests of up to 1,000 (`POST
/api/v1/interactions/batch`), each item recorded exactly as the single endpoint records it.

Each item stands alone: created, existing (the same channel + external id said again, with
the same data), or an error naming the field (invalid input, or a re-post with other data).
An item's error never loses the others, and posting the same batch again creates nothing.

Why not the single path in a loop: recording one interaction costs about ten statements
(look-ups, savepoints, inserts), so a thousand would take seconds. The fast path reads what
exists for the whole batch in one statement per table (interactions by key, operators,
teams, customers by external id and by phone), adds what is missing and flushes once. If
another request created one of the same rows meanwhile (a unique key collides), the batch
falls back to the single path, item by item, each in a savepoint: the same results, slower.
`POST /api/v1/interactions` goes through the fast path too, as a batch of one: a few
statements and one flush, where the single path flushes at every look-up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.interactions import (
    CustomerInput,
    InteractionConflict,
    InteractionInput,
    assign_operator,
    check_ended,
    differences,
    plan_survey,
    report_interaction,
)
from gateway.models import Customer, Interaction, Operator, SurveySession, Team
from gateway.phones import normalize_phone

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
FEW_ROWS = 20
CREATED, EXISTING, ERROR = "created", "existing", "error"
ITEM_STATUSES = (CREATED, EXISTING, ERROR)


@dataclass
class ItemResult:
    """The outcome of one item of a batch."""

    status: str
    interaction: Interaction | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    conflict: InteractionConflict | None = None


def report_interactions(
    session: Session, items: Sequence[InteractionInput], settings: Settings, now: datetime
) -> list[ItemResult]:
    """Record each item as `report_interaction` does; one result per item, in order. The
    caller commits. Raises EndedInFuture, before anything is written, if any item ends
    after `now` (the API refuses such an item alone, before it gets here)."""
    for given in items:
        check_ended(given, now)
    try:
        with session.begin_nested():
            return _fast(session, items, settings, now)
    except IntegrityError:
        # A concurrent request created one of the same rows: one by one, each decided alone.
        return [_one(session, given, settings, now) for given in items]


def _one(
    session: Session, given: InteractionInput, settings: Settings, now: datetime
) -> ItemResult:
    try:
        with session.begin_nested():
            interaction, created = report_interaction(session, given, settings, now)
    except InteractionConflict as conflict:
        return _conflict(conflict)
    return ItemResult(CREATED if created else EXISTING, interaction)


def _conflict(conflict: InteractionConflict) -> ItemResult:
    errors = [
        {"field": d.field, "message": f"recorded {d.recorded!r}, given {d.given!r}"}
        for d in conflict.differences
    ]
    return ItemResult(ERROR, errors=errors, conflict=conflict)


def _fast(
    session: Session, items: Sequence[InteractionInput], settings: Settings, now: datetime
) -> list[ItemResult]:
    keys = {(given.channel, given.external_id) for given in items}
    known = {
        (row.channel, row.external_id): row
        for row in session.scalars(
            select(Interaction)
            .where(tuple_(Interaction.channel, Interaction.external_id).in_(keys))
            # What a re-post is compared with (differences), read for all at once.
            .options(
                selectinload(Interaction.survey),
                selectinload(Interaction.operator),
                selectinload(Interaction.customer),
            )
        )
    }
    operators = _operators(session, items)
    customers = _Customers(session, items, settings)
    results: list[ItemResult | None] = [None] * len(items)
    again: list[int] = []  # decided by the single path, after the flush
    created: dict[tuple[object, str], Interaction] = {}
    for index, given in enumerate(items):
        key = (given.channel, given.external_id)
        recorded = known.get(key) or created.get(key)
        if recorded is not None and recorded.reported_at is not None:
            # Said before: the same (existing) or, with other contact data, a conflict.
            found = differences(recorded, given, settings)
            if not found:
                results[index] = ItemResult(EXISTING, recorded)
            elif key in known:
                results[index] = _conflict(InteractionConflict(recorded, found))
            else:
                again.append(index)  # against a row of this batch: after the flush, with its id
            continue
        if recorded is not None:
            again.append(index)  # recorded by the IVR hand-over: its report completes it
            continue
        interaction = Interaction(
            channel=given.channel,
            external_id=given.external_id,
            ended_at=given.ended_at,
            office=given.office,
            disposition=given.disposition,
            reported_at=now,
        )
        if given.operator:
            assign_operator(interaction, operators[given.operator.external_id])
        if given.customer:
            interaction.customer = customers.upsert(given.customer)
        survey = plan_survey(interaction, given, settings, now)
        session.add(interaction)
        if survey is not None:
            session.add(survey)
        created[key] = interaction
        results[index] = ItemResult(CREATED, interaction)
    _assign_ids(session)
    session.flush()  # ids for the answer; a concurrent duplicate fails here, not later
    for index in again:
        results[index] = _one(session, items[index], settings, now)
    return [result for result in results if result is not None]


def _assign_ids(session: Session) -> None:
    """On PostgreSQL, give the batch's new rows their ids from their sequences, one statement
    a table: the flush then inserts each table with one prepared statement for all its rows
    (executemany), instead of one statement with a thousand rows' parameters that the driver
    must parse and whose RETURNING ids it must match back, which took most of a batch's time."""
    if is_sqlite(session):
        return
    new: dict[str, list[Customer | Interaction | SurveySession]] = {}
    for obj in session.new:
        if isinstance(obj, Customer | Interaction | SurveySession) and obj.id is None:
            new.setdefault(obj.__tablename__, []).append(obj)
    for table, rows in new.items():
        if len(rows) < FEW_ROWS:
            continue  # a few rows: their RETURNING ids cost less than a statement more
        with session.no_autoflush:
            ids = session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"table": table, "n": len(rows)},
            ).all()
        for row, row_id in zip(rows, ids, strict=True):
            row.id = row_id


def _operators(session: Session, items: Sequence[InteractionInput]) -> dict[str, Operator]:
    """Every operator the batch names, found or created, with the name brought up to date
    (the last item's word wins, as posting them one by one would) and a team placing an
    operator that has none."""
    given = {i.operator.external_id: i.operator for i in items if i.operator}
    if not given:
        return {}
    teams = {
        team.name: team
        for team in session.scalars(
            select(Team).where(Team.name.in_({o.team for o in given.values() if o.team}))
        )
    }
    found = {
        operator.external_id: operator
        for operator in session.scalars(
            select(Operator).where(Operator.external_id.in_(list(given)))
        )
    }
    for external_id, wanted in given.items():
        team = None
        if wanted.team:
            team = teams.get(wanted.team)
            if team is None:
                team = teams[wanted.team] = Team(name=wanted.team)
                session.add(team)
        operator = found.get(external_id)
        if operator is None:
            operator = found[external_id] = Operator(
                external_id=external_id, name=wanted.name, team=team
            )
            session.add(operator)
            continue
        if wanted.name and operator.name != wanted.name:
            operator.name = wanted.name
        # A reported team places an operator without one, never moves one (upsert_operator).
        if team is not None and operator.team is None:
            operator.team = team
        elif team is not None and operator.team is not team:
            logger.warning(
                "operator %s reported in team %r but is in another; not moved (an admin moves "
                "operators: PUT /api/v1/operators/<external_id>/team)",
                operator.external_id,
                wanted.team,
            )
    return found


class _Customers:
    """Customers of a batch: by external id, else by phone (the first by id), as
    `upsert_customer` finds them; new details fill in, never erase."""

    def __init__(
        self, session: Session, items: Sequence[InteractionInput], settings: Settings
    ) -> None:
        self.session = session
        self.region = settings.default_region
        wanted = [i.customer for i in items if i.customer]
        ids = {c.external_id for c in wanted if c.external_id}
        phones = {normalize_phone(c.phone, self.region) for c in wanted if c.phone}
        self.by_id: dict[str, Customer] = {}
        self.by_phone: dict[str, Customer] = {}
        if ids:
            for row in session.scalars(select(Customer).where(Customer.external_id.in_(ids))):
                self.by_id[row.external_id or ""] = row
        if phones:
            rows = session.scalars(
                select(Customer).where(Customer.phone.in_(phones)).order_by(Customer.id)
            )
            for row in rows:
                self.by_phone.setdefault(row.phone or "", row)

    def upsert(self, wanted: CustomerInput) -> Customer:
        phone = normalize_phone(wanted.phone, self.region) if wanted.phone else None
        if wanted.external_id:
            customer = self.by_id.get(wanted.external_id)
        else:
            customer = self.by_phone.get(phone) if phone else None
        if customer is None:
            customer = Customer(
                external_id=wanted.external_id,
                phone=phone,
                name=wanted.name,
                language=wanted.language,
                email=wanted.email,
            )
            self.session.add(customer)
            if wanted.external_id:
                self.by_id[wanted.external_id] = customer
            if phone:
                self.by_phone.setdefault(phone, customer)  # the first by id keeps the number
            return customer
        if phone and customer.phone != phone:
            customer.phone = phone
        if wanted.name:
            customer.name = wanted.name
        if wanted.language:
            customer.language = wanted.language
        if wanted.email:
            customer.email = wanted.email
        return customer
