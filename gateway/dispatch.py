"""The sweep of due surveys, shared by both channels: claim, apply the rules, hand over.

The schedule lives in the database (`SurveySession.due_at`), never in an hour-long ETA task in
the broker: a restart, a lost Redis or a redeploy loses nothing. A beat task
(`gateway.tasks.dispatch_due_surveys`) and `survey-gateway surveys dispatch-due` both run
`sweep()`, any number of them at once, on any number of machines.

Claiming. On PostgreSQL the due rows are selected `FOR UPDATE SKIP LOCKED`: concurrent sweeps
take disjoint rows and nobody waits. On SQLite (the embedded, single-machine mode) every
transaction starts with `BEGIN IMMEDIATE` (gateway.db), so sweeps are serialised. On both, the
hand-over itself is a compare-and-set (`UPDATE ... WHERE status = 'scheduled'`), so a row is
handed over once even if the locking assumption were broken. A handed-over row is `sending`
with a lease (`claimed_until = now + DISPATCH_LEASE_SECONDS`); its channel's task is queued
only after the sweep commits.

Delivery semantics: AT MOST ONCE for the provider call. A duplicate survey SMS (or call)
annoys a customer and skews the ratings; a late or missing one costs one response. So the
send task writes a `SurveyAttempt` row (outcome still empty: "in flight") and commits BEFORE it
calls the provider, then records the outcome and the MessageSid AFTER. When a lease expires
in `sending` (a worker died between claim and send), the sweep looks at that row:

* no attempt in flight: the provider was never called, so the survey is simply due again
  (back to `scheduled`, claimed again by this very sweep, rules re-applied);
* an attempt in flight: the message may have gone out and nobody knows. It is NOT sent
  again. An SMS survey is treated as possibly delivered: it becomes `active` with
  `delivery_status` "unknown", so a reply, if the customer got it, is still taken, and it
  expires like any other if not. A call is closed as failed with the reason.

Rules, checked on what is true when the survey falls due (not when it was planned), each
recorded as `not_sent_reason` when it stops a survey: the customer (any customer row with the
same phone) opted out; no valid mobile number (SMS only: a call-back may call a landline); the
visit is older than SMS_SURVEY_MAX_LATENESS_HOURS; another survey was started with the same
customer within SURVEY_COOLDOWN_DAYS, on any channel; and quiet hours, which do not stop a
survey but move its due time to the end of the window in the customer's local time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.orm import Session, selectinload

from gateway import circuit, survey_state
from gateway.config import QuietHours, Settings
from gateway.db import is_sqlite
from gateway.models import (
    Customer,
    SurveyAttempt,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
)
from gateway.phones import is_mobile, mask_phone, unambiguous_timezone
from gateway.surveys import flow_of, save_flow_state
from ivr_flows import engine

logger = logging.getLogger(__name__)

SEND_SMS_TASK = "sms.tasks.send_survey_sms"
RECONCILE_SMS_TASK = "sms.tasks.reconcile_survey_sms"
PLACE_CALL_TASK = "gateway.voice.tasks.place_survey_call"
SEND_EMAIL_TASK = "gateway.websurvey.tasks.send_survey_email"

REASON_OPTED_OUT = "customer opted out"
REASON_NOT_MOBILE = "no valid mobile number"
REASON_NO_PHONE = "no phone number for the customer"
REASON_NO_EMAIL = "no email address for the customer"
REASON_TOO_LATE = "visit older than SMS_SURVEY_MAX_LATENESS_HOURS"
REASON_COOLDOWN = "surveyed within SURVEY_COOLDOWN_DAYS"
REASON_CALL_UNKNOWN = "call outcome unknown when its lease expired; not called again"


@dataclass
class SweepReport:
    """What one sweep did; `handed_over` are (task name, session id) to queue after commit."""

    handed_over: list[tuple[str, int]] = field(default_factory=list)
    not_sent: list[tuple[int, str]] = field(default_factory=list)
    deferred: list[tuple[int, datetime]] = field(default_factory=list)
    recovered: list[tuple[int, str]] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    left_for_next: int = 0
    paused: int = 0  # due, but the provider's circuit is open
    claimed: int = 0  # due rows this sweep looked at (a full batch: more may be due)
    unqueued: list[int] = field(default_factory=list)  # handed over, the broker refused

    def absorb(self, other: SweepReport) -> None:
        """Add another sweep's figures to these."""
        for name in ("handed_over", "not_sent", "deferred", "recovered", "expired", "unqueued"):
            getattr(self, name).extend(getattr(other, name))
        self.left_for_next = other.left_for_next
        self.paused = other.paused
        self.claimed += other.claimed

    def summary(self) -> str:
        """One line for logs and the command line."""
        tasks = [task for task, _ in self.handed_over]
        sms, emails = tasks.count(SEND_SMS_TASK), tasks.count(SEND_EMAIL_TASK)
        checks = tasks.count(RECONCILE_SMS_TASK)
        calls = len(tasks) - sms - emails - checks
        parts = [f"handed over {len(tasks)}"]
        if tasks:
            extra = (f", {emails} emails" if emails else "") + (
                f", {checks} to reconcile" if checks else ""
            )
            parts[0] += f" ({sms} sms, {calls} calls{extra})"
        reasons: dict[str, int] = {}
        for _, reason in self.not_sent:
            reasons[reason] = reasons.get(reason, 0) + 1
        parts.append(
            f"not sent {len(self.not_sent)}"
            + (
                " (" + "; ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) + ")"
                if reasons
                else ""
            )
        )
        parts.append(f"deferred to the end of quiet hours {len(self.deferred)}")
        parts.append(f"recovered after an expired lease {len(self.recovered)}")
        parts.append(f"expired {len(self.expired)}")
        if self.left_for_next:
            parts.append(f"left for the next sweep (rate limit) {self.left_for_next}")
        if self.paused:
            parts.append(f"waiting for the provider (paused) {self.paused}")
        if self.unqueued:
            parts.append(f"given back, the broker refused them {len(self.unqueued)}")
        return ", ".join(parts)


# -- local time ----------------------------------------------------------------------------


def local_timezone(office: str | None, phone: str | None, settings: Settings) -> ZoneInfo:
    """The customer's time zone for quiet hours.

    The office's zone where the interaction names an office in OFFICE_TIMEZONES (a visitor is
    near the office; a number's range only tells where it was registered), else the number's
    zone when its range names exactly one, else DEFAULT_TIMEZONE. Russian mobile ranges span
    eleven zones, so for them it is the office or the default.
    """
    if office and office in settings.office_timezones:
        return ZoneInfo(settings.office_timezones[office])
    if phone:
        zone = unambiguous_timezone(phone)
        if zone:
            try:
                return ZoneInfo(zone)
            except (KeyError, ValueError):  # a zone name the system's tz database lacks
                logger.warning("unknown time zone %s for a number; using the default", zone)
    return ZoneInfo(settings.default_timezone)


def quiet_hours_end(moment: datetime, zone: ZoneInfo, quiet: QuietHours | None) -> datetime | None:
    """When `moment` falls in the quiet window of `zone`'s local time, the window's end
    (aware UTC); else None."""
    if quiet is None:
        return None
    local = moment.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return None
    end = datetime.combine(local.date(), quiet.end, tzinfo=zone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=zone)
    return end.astimezone(moment.tzinfo)


# -- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Defer:
    until: datetime


Decision = Send | Skip | Defer


@dataclass(frozen=True)
class NumberFacts:
    """What the rules need to know about the numbers of a batch of due surveys, read in one
    statement each (after the numbers' customer rows were locked)."""

    opted_out: frozenset[str]
    surveyed_recently: frozenset[str]  # another survey started in the cooldown, or sending
    # Customers without a number (email surveys): the same, by customer.
    customers_surveyed_recently: frozenset[int] = frozenset()
    # Follow-ups (re-surveys after a fix) whose customer was surveyed in the cooldown about
    # another contact: a follow-up's own contact does not count against it.
    follow_ups_in_cooldown: frozenset[int] = frozenset()


def number_facts(
    session: Session, surveys: list[SurveySession], settings: Settings, now: datetime
) -> NumberFacts:
    """Opt-outs and recent surveys of the numbers of `surveys` (not counting `surveys`)."""
    phones = sorted({s.customer.phone for s in surveys if s.customer and s.customer.phone})
    no_phone = {s.customer_id for s in surveys if s.customer and not s.customer.phone}
    opted_out = session.scalars(
        select(Customer.phone)
        .where(Customer.phone.in_(phones), Customer.opted_out_at.is_not(None))
        .distinct()
    )
    recent: frozenset[str] = frozenset()
    recent_customers: frozenset[int] = frozenset()
    if settings.survey_cooldown_days > 0:
        since = now - timedelta(days=settings.survey_cooldown_days)
        started_or_sending = or_(
            SurveySession.started_at >= since, SurveySession.status == SurveyStatus.SENDING
        )
        if no_phone:
            recent_customers = frozenset(
                session.scalars(
                    select(SurveySession.customer_id)
                    .where(
                        SurveySession.customer_id.in_(no_phone),
                        SurveySession.id.not_in([s.id for s in surveys]),
                        started_or_sending,
                    )
                    .distinct()
                )
            )
        recent = frozenset(
            session.scalars(
                select(Customer.phone)
                .join(SurveySession, SurveySession.customer_id == Customer.id)
                .where(
                    Customer.phone.in_(phones),
                    SurveySession.id.not_in([s.id for s in surveys]),
                    or_(
                        SurveySession.started_at >= since,
                        SurveySession.status == SurveyStatus.SENDING,
                    ),
                )
                .distinct()
            )
        )
    follow_ups = [s for s in surveys if s.follow_up_of_id is not None]
    return NumberFacts(
        frozenset(p for p in opted_out if p),
        frozenset(p for p in recent if p),
        recent_customers,
        _follow_ups_in_cooldown(session, follow_ups, settings, now) if follow_ups else frozenset(),
    )


def _follow_ups_in_cooldown(
    session: Session, follow_ups: list[SurveySession], settings: Settings, now: datetime
) -> frozenset[int]:
    """The follow-ups whose customer (by number, else by customer) started a survey about
    another contact within SURVEY_COOLDOWN_DAYS, or has one sending. Follow-ups are few: a
    statement each."""
    if settings.survey_cooldown_days <= 0:
        return frozenset()
    since = now - timedelta(days=settings.survey_cooldown_days)
    found: set[int] = set()
    for survey in follow_ups:
        phone = survey.customer.phone if survey.customer else None
        same_person = (
            SurveySession.customer_id.in_(select(Customer.id).where(Customer.phone == phone))
            if phone
            else SurveySession.customer_id == survey.customer_id
        )
        other = session.scalar(
            select(SurveySession.id)
            .where(
                same_person,
                SurveySession.interaction_id != survey.interaction_id,
                or_(
                    SurveySession.started_at >= since,
                    SurveySession.status == SurveyStatus.SENDING,
                ),
            )
            .limit(1)
        )
        if other is not None:
            found.add(survey.id)
    return frozenset(found)


def too_late_at(survey: SurveySession, settings: Settings) -> datetime:
    """After this moment the survey is not sent any more: SMS_SURVEY_MAX_LATENESS_HOURS after
    the contact (after the request, for a follow-up). It is also the budget of retries
    through provider errors."""
    start = survey.created_at if survey.follow_up_of_id is not None else None
    start = start or survey.interaction.ended_at
    return start + timedelta(hours=settings.sms_survey_max_lateness_hours)


def decide(
    survey: SurveySession, facts: NumberFacts, settings: Settings, now: datetime
) -> Decision:
    """Whether a due survey may go out now, must wait for the end of quiet hours, or is not
    sent (with the reason)."""
    customer = survey.customer
    phone = customer.phone if customer else None
    if survey.channel is SurveyChannel.EMAIL:
        if customer is None or not customer.email:
            return Skip(REASON_NO_EMAIL)
        if customer.opted_out_at is not None:
            return Skip(REASON_OPTED_OUT)
    elif not phone:
        return Skip(REASON_NO_PHONE)
    if phone and phone in facts.opted_out:
        return Skip(REASON_OPTED_OUT)
    if survey.channel is SurveyChannel.SMS and phone and not is_mobile(phone):
        return Skip(REASON_NOT_MOBILE)
    if now > too_late_at(survey, settings):
        return Skip(REASON_TOO_LATE)
    if survey.follow_up_of_id is not None:
        if survey.id in facts.follow_ups_in_cooldown:
            return Skip(REASON_COOLDOWN)
    elif phone in facts.surveyed_recently or (
        not phone and survey.customer_id in facts.customers_surveyed_recently
    ):
        return Skip(REASON_COOLDOWN)
    zone = local_timezone(survey.interaction.office, phone, settings)
    end = quiet_hours_end(now, zone, settings.quiet_hours)
    if end is not None:
        return Defer(end)
    return Send()


# -- the sweep -----------------------------------------------------------------------------


def skip_locked(stmt: Select[Any], session: Session) -> Select[Any]:
    """`stmt` selecting rows to claim: `FOR UPDATE SKIP LOCKED` of the survey rows on
    PostgreSQL, so concurrent sweeps take disjoint rows (see module)."""
    if is_sqlite(session):
        return stmt  # BEGIN IMMEDIATE already holds the only write lock
    return stmt.with_for_update(skip_locked=True, of=SurveySession)


def _sweepable() -> ColumnElement[bool]:
    # Post-call IVR surveys start on the caller's own call and are never swept.
    return or_(
        SurveySession.channel == SurveyChannel.SMS,
        SurveySession.channel == SurveyChannel.EMAIL,
        SurveySession.kind == SurveyKind.IVR_CALLBACK,
    )


def _task_for(survey: SurveySession) -> str:
    if survey.channel is SurveyChannel.EMAIL:
        return SEND_EMAIL_TASK
    return SEND_SMS_TASK if survey.channel is SurveyChannel.SMS else PLACE_CALL_TASK


def sms_per_sweep(settings: Settings) -> int:
    """How many SMS one sweep hands over: about two intervals' worth at the rate limit, so a
    send task waits seconds, not minutes, for its slot; the rest stay due for the next sweep."""
    return max(
        1,
        math.ceil(settings.sms_rate_per_second * max(settings.dispatch_interval_seconds, 1.0) * 2),
    )


def recover_expired_leases(
    session: Session, settings: Settings, now: datetime, report: SweepReport
) -> None:
    """Sessions left in `sending` past their lease: due again, or possibly sent (see module)."""
    stmt = skip_locked(
        select(SurveySession)
        .where(
            SurveySession.status == SurveyStatus.SENDING,
            SurveySession.claimed_until < now,
        )
        .order_by(SurveySession.claimed_until)
        .limit(settings.dispatch_batch_size)
        .options(selectinload(SurveySession.attempt_log)),
        session,
    )
    for survey in session.scalars(stmt):
        in_flight = attempts_in_flight(survey)
        if not in_flight:
            survey_state.reschedule(survey, survey.due_at or now)
            report.recovered.append((survey.id, "due again: the provider was never called"))
            continue
        attempt = in_flight[-1]
        attempt.outcome = "unknown"
        attempt.finished_at = now
        attempt.detail = "the worker stopped between the attempt and its outcome"
        if survey.channel is SurveyChannel.SMS:
            mark_possibly_sent(survey, attempt.started_at, settings)
            report.recovered.append((survey.id, "possibly sent: not sent again"))
        elif survey.channel is SurveyChannel.EMAIL:
            # Possibly sent: its link stays open for the customer, the email is not re-sent.
            survey_state.possibly_sent(
                survey, attempt.started_at, timedelta(days=settings.web_survey_expiry_days)
            )
            report.recovered.append((survey.id, "possibly sent: not sent again"))
        else:
            survey_state.fail(survey, now, REASON_CALL_UNKNOWN)
            report.recovered.append((survey.id, REASON_CALL_UNKNOWN))
        logger.warning(
            "survey %s: lease expired with an attempt in flight; not sent again", survey.id
        )


def mark_possibly_sent(survey: SurveySession, sent_at: datetime, settings: Settings) -> None:
    """An SMS survey whose first message may have gone out: open for replies, never re-sent."""
    survey_state.possibly_sent(survey, sent_at, timedelta(hours=settings.sms_survey_expiry_hours))
    if survey.state is None:
        save_flow_state(survey, engine.start(flow_of(survey), "sms").state)


def _lock_customers(session: Session, surveys: list[SurveySession]) -> None:
    """Serialise sweeps deciding for the same numbers, so the cooldown sees a survey another
    sweep has just handed over (PostgreSQL re-reads committed rows after the lock). One
    statement, one lock order for every sweep (by number, then id), so two sweeps never wait
    on each other in a circle."""
    phones = sorted({s.customer.phone for s in surveys if s.customer and s.customer.phone})
    if phones and not is_sqlite(session):
        session.execute(
            select(Customer.id)
            .where(Customer.phone.in_(phones))
            .order_by(Customer.phone, Customer.id)
            .with_for_update()
        ).all()


def claim_due(
    session: Session,
    settings: Settings,
    now: datetime,
    report: SweepReport,
    sms_budget: int | None = None,
) -> None:
    """Claim due sessions, decide each, hand over those that may go out now (at most
    `sms_budget` SMS, by default `sms_per_sweep`)."""
    stmt = skip_locked(
        select(SurveySession)
        .where(
            SurveySession.status == SurveyStatus.SCHEDULED,
            SurveySession.due_at <= now,
            _sweepable(),
        )
        .order_by(SurveySession.due_at, SurveySession.id)
        .limit(settings.dispatch_batch_size)
        .options(
            selectinload(SurveySession.customer),
            selectinload(SurveySession.interaction),
            selectinload(SurveySession.attempt_log),
        ),
        session,
    )
    claimed = list(session.scalars(stmt))
    report.claimed = len(claimed)
    claimed.sort(key=lambda s: ((s.customer.phone or "") if s.customer else "", s.id))
    _lock_customers(session, claimed)
    facts = number_facts(session, claimed, settings, now)
    handed_phones: set[str] = set()
    going: list[SurveySession] = []
    sms_budget = sms_per_sweep(settings) if sms_budget is None else sms_budget
    # SMS and calls may go through different providers (SMS_PROVIDER), each its own circuit.
    circuits = {
        name: circuit.circuit_of(session, name)
        for name in {settings.provider, settings.sms_provider_name}
    }
    for survey in claimed:
        phone = survey.customer.phone if survey.customer else None
        reached_by = phone or f"customer {survey.customer_id}"  # email surveys: the customer
        decision = decide(survey, facts, settings, now)
        if isinstance(decision, Send) and reached_by in handed_phones:
            decision = Skip(REASON_COOLDOWN)  # two due surveys of one number in this batch
        if isinstance(decision, Skip) and decision.reason == REASON_TOO_LATE and survey.attempts:
            # Tried before and refused each time by the provider until too late: a failure the
            # operator may want to retry (`surveys retry`), not a rule that stopped it.
            last = survey.attempt_log[-1].detail if survey.attempt_log else None
            reason = f"gave up after {survey.attempts} attempts: too late to send"
            survey_state.fail(survey, now, reason + (f" (last: {last})" if last else ""))
            report.not_sent.append((survey.id, reason))
            logger.warning("survey %s: %s", survey.id, survey.not_sent_reason)
        elif isinstance(decision, Skip):
            survey_state.exclude(survey, now, decision.reason)
            report.not_sent.append((survey.id, decision.reason))
            logger.info("survey %s not sent: %s", survey.id, decision.reason)
        elif isinstance(decision, Defer):
            survey.due_at = decision.until
            report.deferred.append((survey.id, decision.until))
            logger.info(
                "survey %s to %s deferred to %s (quiet hours)",
                survey.id,
                mask_phone(phone),
                decision.until.isoformat(),
            )
        else:
            provider = (
                settings.sms_provider_name
                if survey.channel is SurveyChannel.SMS
                else settings.provider
            )
            if survey.channel is not SurveyChannel.EMAIL and (
                circuit.is_open(circuits[provider])
                and not circuit.take_probe(
                    session, provider, survey.id, now, settings.provider_probe_seconds
                )
            ):  # the telephony provider's circuit does not hold back email
                report.paused += 1
                continue
            if survey.channel is SurveyChannel.SMS:
                if sms_budget <= 0:
                    report.left_for_next += 1
                    continue
                sms_budget -= 1
            going.append(survey)
            handed_phones.add(reached_by)
    # One compare-and-set for the whole batch (the rows are locked: it claims them all).
    lease = now + timedelta(seconds=settings.dispatch_lease_seconds)
    claimed_now = survey_state.hand_over_all(session, [s.id for s in going], lease)
    report.handed_over.extend((_task_for(s), s.id) for s in going if s.id in claimed_now)


SweepStep = Callable[[Session, Settings, datetime], list[int]]
"""A channel's own step of the sweep (e.g. closing calls whose status callback never came):
it ends what is overdue and returns the ids of the surveys it ended."""


@dataclass(frozen=True)
class HandOverStep:
    """A channel's step that claims surveys for a task of its own (e.g. asking the provider
    about a message of unknown outcome): the ids it returns are queued to `task` after the
    sweep commits, as the sends are."""

    step: SweepStep
    task: str

    def __call__(self, session: Session, settings: Settings, now: datetime) -> list[int]:
        return self.step(session, settings, now)


_SWEEP_STEPS = "sweep_steps"


def add_sweep_step(app: Flask, step: SweepStep, hand_to: str | None = None) -> None:
    """Run `step` in every sweep of this app, after the core's own steps, in the order added
    (each channel adds its steps in its `init_app`, so the sweep imports no channel). With
    `hand_to`, the ids the step returns were claimed for that task, not ended."""
    app.extensions.setdefault(_SWEEP_STEPS, []).append(
        step if hand_to is None else HandOverStep(step, hand_to)
    )


def sweep_steps(app: Flask | None = None) -> tuple[SweepStep, ...]:
    """The channels' steps added to `app` (by default the current app)."""
    extensions = (app or current_app).extensions
    return tuple(extensions.get(_SWEEP_STEPS, ()))


def sweep(
    session: Session,
    settings: Settings,
    now: datetime,
    sms_budget: int | None = None,
    steps: tuple[SweepStep, ...] | None = None,
) -> SweepReport:
    """One sweep: recover expired leases, run each channel's steps (by default the current
    app's: SMS's reconciliation and expiry, voice's silent calls, web links), claim and decide
    due ones.

    Leaves the commit to the caller, who queues `report.handed_over` only after it.
    """
    report = SweepReport()
    recover_expired_leases(session, settings, now, report)
    for step in sweep_steps() if steps is None else steps:
        ids = step(session, settings, now)
        if isinstance(step, HandOverStep):
            report.handed_over.extend((step.task, survey_id) for survey_id in ids)
        else:
            report.expired.extend(ids)
    claim_due(session, settings, now, report, sms_budget)
    session.flush()
    return report


Publish = Callable[[str, "int | list[int]"], None]
"""Queue a task: its name and its argument, a survey id (a list of ids for a batched task)."""

# Tasks that take a list of survey ids: one task sends a batch (sms.service), so a send costs
# a few statements, not a task and eighteen statements of its own.
BATCHED_TASKS = frozenset({SEND_SMS_TASK})
# At most this many surveys a task, and at least four tasks when there are that many
# surveys, so every send worker gets a share of a small sweep. A task's own costs (three
# transactions, the rate-limit reservation, the provider's connection) are shared by its
# sends: at 100 a send costs the worker about a fifth less CPU than at 25
# (bench/dispatch_profile.py), and at Twilio's usual latency a full task sends for some 20 s,
# well within its lease.
SEND_BATCH_MAX = 100
SEND_BATCH_SPREAD = 4


def task_messages(handed_over: list[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """The handed-over surveys as task messages, in order: a batched task's ids in chunks,
    any other task one survey each."""
    messages: list[tuple[str, list[int]]] = []
    batched: dict[str, list[int]] = {}
    for task_name, survey_id in handed_over:
        if task_name in BATCHED_TASKS:
            batched.setdefault(task_name, []).append(survey_id)
        else:
            messages.append((task_name, [survey_id]))
    for task_name, ids in batched.items():
        size = min(SEND_BATCH_MAX, max(1, math.ceil(len(ids) / SEND_BATCH_SPREAD)))
        messages.extend((task_name, ids[i : i + size]) for i in range(0, len(ids), size))
    return messages


def give_back(session: Session, survey_ids: list[int]) -> None:
    """Claimed surveys whose task was never queued: due again at once, for the next sweep,
    rather than after their lease. Only those still `sending` with no attempt in flight."""
    survey_state.give_back(session, survey_ids)
    session.execute(  # claimed for reconciliation: asked again by the next sweep
        update(SurveySession)
        .where(SurveySession.id.in_(survey_ids), SurveySession.status == SurveyStatus.ACTIVE)
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def publish_handed_over(session: Session, report: SweepReport, publish: Publish) -> None:
    """Queue the tasks of the surveys a committed sweep handed over (task_messages). At the
    first failure (the broker is down) the rest are not tried: every unqueued survey is given
    back at once."""
    messages = task_messages(report.handed_over)
    for index, (task_name, ids) in enumerate(messages):
        try:
            publish(task_name, ids if task_name in BATCHED_TASKS else ids[0])
        except Exception:
            report.unqueued = [i for _, rest in messages[index:] for i in rest]
            logger.exception(
                "could not queue %s send tasks; their surveys are due again", len(report.unqueued)
            )
            give_back(session, report.unqueued)
            session.commit()
            return


def run_sweep(
    session: Session,
    settings: Settings,
    now: datetime,
    publish: Publish | None = None,
    sms_budget: int | None = None,
) -> SweepReport:
    """A sweep committed in `session`, then each handed-over survey's task queued (by default
    through the app's Celery: a Flask app context is required)."""
    from gateway.tasking import publish_task

    report = sweep(session, settings, now, sms_budget)
    session.commit()
    publish_handed_over(session, report, publish or publish_task)
    if report.handed_over or report.not_sent or report.expired or report.recovered:
        logger.info("sweep: %s", report.summary())
    return report


def sweep_until_caught_up(
    transaction: Callable[[], AbstractContextManager[Session]],
    settings: Settings,
    clock: Callable[[], datetime],
    publish: Publish | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> SweepReport:
    """Sweep again at once while a sweep filled its batch and moved it on, for at most one
    DISPATCH_INTERVAL_SECONDS and one interval's SMS budget: dispatch keeps pace with the rate
    limit and the workers, not with the batch size."""
    total = SweepReport()
    budget = sms_per_sweep(settings)
    stop_at = monotonic() + settings.dispatch_interval_seconds
    while True:
        with transaction() as session:
            report = run_sweep(session, settings, clock(), publish, budget)
        total.absorb(report)
        budget -= sum(1 for task, _ in report.handed_over if task == SEND_SMS_TASK)
        moved = report.handed_over or report.not_sent or report.deferred or report.recovered
        full = report.claimed >= settings.dispatch_batch_size
        if not (full and moved) or report.unqueued or budget <= 0 or monotonic() >= stop_at:
            return total


def attempts_in_flight(survey: SurveySession) -> list[SurveyAttempt]:
    """Attempts whose provider call started and has no recorded outcome."""
    return [a for a in survey.attempt_log if a.outcome is None]
