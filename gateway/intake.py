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

The API's batch (`as_rows`) writes its new contacts on PostgreSQL without the ORM: their
customers, interactions and surveys are rows (the survey planned by `new_survey`, the one rule
for every path), given ids from their sequences in one statement and inserted with one
prepared statement a table, and counted in the reports' rollup together (`rollup.count_new`),
as the ORM's hooks would. The ORM's bookkeeping of three objects a contact (their identity,
relationships and the flush's sorting) was most of a batch's time. Its results carry what the
answer shows (`Recorded`), not ORM objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text, tuple_
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
    fill_in_customer,
    new_survey,
    plan_survey,
    report_interaction,
)
from gateway.models import (
    Customer,
    Interaction,
    InteractionChannel,
    Operator,
    SurveySession,
    SurveyStatus,
    Team,
)
from gateway.phones import normalize_phone
from gateway.reports import rollup

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
CREATED, EXISTING, ERROR = "created", "existing", "error"
ITEM_STATUSES = (CREATED, EXISTING, ERROR)

_customers = cast(Table, Customer.__table__)
_interactions = cast(Table, Interaction.__table__)
_surveys = cast(Table, SurveySession.__table__)
_SURVEY_COLUMNS = frozenset(_surveys.c.keys())


@dataclass(frozen=True)
class Recorded:
    """What a batch's answer shows of a recorded interaction and its survey."""

    id: int
    external_id: str
    channel: InteractionChannel
    survey_id: int | None
    survey_status: SurveyStatus | None
    survey_due_at: datetime | None


@dataclass
class ItemResult:
    """The outcome of one item of a batch: the interaction, as an ORM object or, created by a
    batch `as_rows`, as the row written (`new`)."""

    status: str
    interaction: Interaction | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    conflict: InteractionConflict | None = None
    new: _NewContact | None = None

    def recorded(self) -> Recorded | None:
        if self.new is not None:
            return self.new.recorded()
        if self.interaction is None:
            return None
        interaction, survey = self.interaction, self.interaction.survey
        return Recorded(
            interaction.id,
            interaction.external_id,
            interaction.channel,
            survey.id if survey else None,
            survey.status if survey else None,
            survey.due_at if survey else None,
        )


def report_interactions(
    session: Session,
    items: Sequence[InteractionInput],
    settings: Settings,
    now: datetime,
    *,
    as_rows: bool = False,
) -> list[ItemResult]:
    """Record each item as `report_interaction` does; one result per item, in order. The
    caller commits. Raises EndedInFuture, before anything is written, if any item ends
    after `now` (the API refuses such an item alone, before it gets here). `as_rows`: on
    PostgreSQL, write the new contacts of a batch of several without the ORM (their results
    carry `new`, not `interaction`)."""
    for given in items:
        check_ended(given, now)
    try:
        with session.begin_nested():
            return _fast(session, items, settings, now, as_rows)
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
    session: Session,
    items: Sequence[InteractionInput],
    settings: Settings,
    now: datetime,
    as_rows: bool,
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
    rows = _Rows() if as_rows and len(keys) - len(known) > 1 and not is_sqlite(session) else None
    operators = _operators(session, items)
    customers = _Customers(session, items, settings, rows)
    results: list[ItemResult | None] = [None] * len(items)
    again: list[int] = []  # decided by the single path, after the flush
    created: dict[tuple[object, str], Interaction | None] = {}
    for index, given in enumerate(items):
        key = (given.channel, given.external_id)
        recorded = known.get(key) or created.get(key)
        if key in created and recorded is None:
            again.append(index)  # said again in this batch, written as a row: after the insert
            continue
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
        operator = operators[given.operator.external_id] if given.operator else None
        customer = customers.upsert(given.customer) if given.customer else None
        if rows is not None:
            created[key] = None
            results[index] = ItemResult(
                CREATED, new=rows.add(given, operator, customer, settings, now)
            )
            continue
        interaction = Interaction(
            channel=given.channel,
            external_id=given.external_id,
            ended_at=given.ended_at,
            office=given.office,
            disposition=given.disposition,
            reported_at=now,
        )
        if operator is not None:
            assign_operator(interaction, operator)
        if customer is not None:
            interaction.customer = cast(Customer, customer)
        survey = plan_survey(interaction, given, settings, now)
        session.add(interaction)
        if survey is not None:
            session.add(survey)
        created[key] = interaction
        results[index] = ItemResult(CREATED, interaction)
    session.flush()  # ids for the answer; a concurrent duplicate fails here, not later
    if rows is not None:
        rows.insert(session, settings)  # after the flush: the operators' and customers' ids
    for index in again:
        results[index] = _one(session, items[index], settings, now)
    return [result for result in results if result is not None]


@dataclass(eq=False)
class _NewCustomer:
    """A customer first seen in a batch written as rows; later items fill in details."""

    external_id: str | None
    phone: str | None
    name: str | None
    language: str | None
    email: str | None
    id: int | None = None


@dataclass(eq=False)
class _NewContact:
    """A new contact of a batch written as rows: its interaction's and survey's columns."""

    given: InteractionInput
    operator: Operator | None
    customer: Customer | _NewCustomer | None
    survey: SurveySession | None  # planned (`new_survey`), never added to the session
    reported_at: datetime
    id: int | None = None
    survey_id: int | None = None

    def recorded(self) -> Recorded:
        if self.id is None:
            raise LookupError(f"{self.given.external_id!r} was not written yet")
        survey = self.survey
        return Recorded(
            self.id,
            self.given.external_id,
            self.given.channel,
            self.survey_id,
            survey.status if survey else None,
            survey.due_at if survey else None,
        )


class _Rows:
    """The new customers, interactions and surveys of a batch, written without the ORM."""

    def __init__(self) -> None:
        self.customers: list[_NewCustomer] = []
        self.contacts: list[_NewContact] = []

    def new_customer(self, wanted: CustomerInput, phone: str | None) -> _NewCustomer:
        customer = _NewCustomer(
            wanted.external_id, phone, wanted.name, wanted.language, wanted.email
        )
        self.customers.append(customer)
        return customer

    def add(
        self,
        given: InteractionInput,
        operator: Operator | None,
        customer: Customer | _NewCustomer | None,
        settings: Settings,
        now: datetime,
    ) -> _NewContact:
        survey = new_survey(
            given,
            given.ended_at,
            settings,
            now,
            phone=customer.phone if customer else None,
            email=customer.email if customer else None,
            language=customer.language if customer else None,
        )
        contact = _NewContact(given, operator, customer, survey, now)
        self.contacts.append(contact)
        return contact

    def insert(self, session: Session, settings: Settings) -> None:
        """Ids from the sequences in one statement, then one prepared INSERT a table for all
        its rows (executemany), then the contacts counted in the rollup."""
        conn = session.connection()
        surveys = [c for c in self.contacts if c.survey is not None]
        customer_ids, contact_ids, survey_ids = conn.execute(
            text(
                "SELECT "
                + ", ".join(
                    f"ARRAY(SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                    f"FROM generate_series(1, :{table}))"
                    for table in ("customers", "interactions", "survey_sessions")
                )
            ),
            {
                "customers": len(self.customers),
                "interactions": len(self.contacts),
                "survey_sessions": len(surveys),
            },
        ).one()
        for customer, customer_id in zip(self.customers, customer_ids, strict=True):
            customer.id = customer_id
        for contact, contact_id in zip(self.contacts, contact_ids, strict=True):
            contact.id = contact_id
        for contact, survey_id in zip(surveys, survey_ids, strict=True):
            contact.survey_id = survey_id
        if self.customers:
            conn.execute(
                insert(_customers),
                [
                    {
                        "id": c.id,
                        "external_id": c.external_id,
                        "phone": c.phone,
                        "name": c.name,
                        "language": c.language,
                        "email": c.email,
                    }
                    for c in self.customers
                ],
            )
        interactions = [self._interaction(c) for c in self.contacts]
        conn.execute(insert(_interactions), interactions)
        # Rows of one statement have the same columns: the surveys grouped by those planned.
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for contact in surveys:
            row = self._survey(contact)
            groups.setdefault(frozenset(row), []).append(row)
        for group in groups.values():
            conn.execute(insert(_surveys), group)
        rollup.count_new(
            conn,
            (self._counted(c, row) for c, row in zip(self.contacts, interactions, strict=True)),
            settings.report_zone,
        )

    @staticmethod
    def _interaction(contact: _NewContact) -> dict[str, Any]:
        given, operator, customer = contact.given, contact.operator, contact.customer
        return {
            "id": contact.id,
            "channel": given.channel,
            "external_id": given.external_id,
            "ended_at": given.ended_at,
            "office": given.office,
            "disposition": given.disposition,
            "reported_at": contact.reported_at,
            # The operator and the team they are in now, kept with the contact (assign_operator).
            "operator_id": operator.id if operator else None,
            "team_id": operator.team_id if operator else None,
            "customer_id": customer.id if customer else None,
        }

    @staticmethod
    def _survey(contact: _NewContact) -> dict[str, Any]:
        planned = vars(contact.survey)
        row = {name: value for name, value in planned.items() if name in _SURVEY_COLUMNS}
        customer = contact.customer
        row.update(
            id=contact.survey_id,
            interaction_id=contact.id,
            customer_id=customer.id if customer else None,
        )
        return row

    @staticmethod
    def _counted(contact: _NewContact, interaction: dict[str, Any]) -> dict[str, Any]:
        """The contact as the rollup counts it (`count_change`'s `after`)."""
        counted: dict[str, Any] = dict.fromkeys(rollup.CONTACT_FIELDS)
        counted.update(interaction)
        if contact.survey is not None:
            counted.update(survey_id=contact.survey_id, status=contact.survey.status)
        return counted


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
        self,
        session: Session,
        items: Sequence[InteractionInput],
        settings: Settings,
        rows: _Rows | None,
    ) -> None:
        self.session = session
        self.rows = rows  # new customers are written as rows there, else added to the session
        self.region = settings.default_region
        wanted = [i.customer for i in items if i.customer]
        ids = {c.external_id for c in wanted if c.external_id}
        phones = {normalize_phone(c.phone, self.region) for c in wanted if c.phone}
        self.by_id: dict[str, Customer | _NewCustomer] = {}
        self.by_phone: dict[str, Customer | _NewCustomer] = {}
        if ids:
            for row in session.scalars(select(Customer).where(Customer.external_id.in_(ids))):
                self.by_id[row.external_id or ""] = row
        if phones:
            found = session.scalars(
                select(Customer).where(Customer.phone.in_(phones)).order_by(Customer.id)
            )
            for row in found:
                self.by_phone.setdefault(row.phone or "", row)

    def upsert(self, wanted: CustomerInput) -> Customer | _NewCustomer:
        phone = normalize_phone(wanted.phone, self.region) if wanted.phone else None
        customer: Customer | _NewCustomer | None
        if wanted.external_id:
            customer = self.by_id.get(wanted.external_id)
        else:
            customer = self.by_phone.get(phone) if phone else None
        if customer is None:
            if self.rows is not None:
                customer = self.rows.new_customer(wanted, phone)
            else:
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
        fill_in_customer(customer, wanted, phone)
        return customer
