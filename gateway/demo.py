"""Demo data: a realistic month of a call centre and its offices, made by the services real
traffic goes through, so every figure is what the gateway itself would have computed.

* Hotline calls: the CRM's report of the call (gateway.intake), then the phone survey the PBX
  hands the caller over to (gateway.phone_surveys, as the voice channels run it: the survey
  starts as the operator hangs up, the caller presses digits step by step, then hangs up).
* Office visits: reported by the queue system (gateway.intake) with a web survey, answered
  and commented through the web survey channel's service, which the command line hands in
  (`WebSurveys`): the demo imports no channel.
* Low scores open incidents on their own (gateway.surveys), due by the business calendar;
  supervisors work them through gateway.incidents, so every state is there: new, assigned,
  commented, resolved with a cause, reopened, archived, and overdue; a few ratings are
  excluded after an appeal (gateway.reports.service.exclude_rating).

Operators differ: strong, average, weak, one whose politeness lets them down, and one new
operator with a few days of calls. A fixed random seed makes the month the same every time.
The seed fills an empty gateway only: it refuses to run where contacts exist.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.accounts import create_account
from gateway.config import Settings
from gateway.flows import flows_of
from gateway.incidents import (
    archive_incident,
    assign_incident,
    comment_incident,
    is_overdue,
    reopen_incident,
    resolve_incident,
)
from gateway.intake import report_interactions
from gateway.interactions import CustomerInput, InteractionInput, OperatorInput
from gateway.models import (
    ApiRole,
    AuditEvent,
    Incident,
    Interaction,
    InteractionChannel,
    SurveySession,
    Team,
)
from gateway.phone_surveys import (
    HandedOverCall,
    apply_given,
    close_call_survey,
    keys_given,
    locked_survey,
    open_handed_over_survey,
)
from gateway.reports.service import exclude_rating
from ivr_flows import QuestionType


class WebSurveys(Protocol):
    """What the demo's customers do on the web survey (the channel's service module)."""

    CHANNEL: str

    def answer(
        self,
        session: Session,
        survey: SurveySession,
        question_key: str,
        value: int | None,
        settings: Settings,
        now: datetime,
    ) -> bool: ...

    def add_comment(
        self, session: Session, survey: SurveySession, text: str, settings: Settings, now: datetime
    ) -> bool: ...

    def expire_web_surveys(
        self, session: Session, settings: Settings, now: datetime
    ) -> list[int]: ...


DEMO_ACTION = "demo.seed"
FLOW = "post_call"
RATED = ("overall", "cost", "speed", "politeness", "quality")

HOTLINE_NORTH = "Горячая линия Север"
HOTLINE_SOUTH = "Горячая линия Юг"
OFFICES = "Офисы"
OFFICE_NAMES = ("Тверская", "Арбат")


@dataclass(frozen=True)
class Style:
    """How an operator's customers rate them: the mean of each question, and how many
    contacts a day they handle."""

    mean: float
    per_day: float
    politeness_shift: float = 0.0
    first_day: int = 0  # days before the end of the month they started (0: all month)


@dataclass(frozen=True)
class DemoOperator:
    external_id: str
    name: str
    team: str
    style: Style


STRONG, GOOD, AVERAGE, WEAK = Style(4.6, 7), Style(4.2, 8), Style(3.8, 7), Style(3.0, 6)
RUDE = Style(3.9, 8, politeness_shift=-1.3)

OPERATORS = (
    DemoOperator("demo-op-01", "Анна Смирнова", HOTLINE_NORTH, STRONG),
    DemoOperator("demo-op-02", "Дмитрий Козлов", HOTLINE_NORTH, GOOD),
    DemoOperator("demo-op-03", "Елена Морозова", HOTLINE_NORTH, AVERAGE),
    DemoOperator("demo-op-04", "Игорь Волков", HOTLINE_NORTH, WEAK),
    DemoOperator("demo-op-05", "Мария Павлова", HOTLINE_SOUTH, GOOD),
    DemoOperator("demo-op-06", "Сергей Новиков", HOTLINE_SOUTH, RUDE),
    DemoOperator("demo-op-07", "Ольга Соколова", HOTLINE_SOUTH, STRONG),
    DemoOperator("demo-op-08", "Павел Лебедев", HOTLINE_SOUTH, Style(4.0, 7, first_day=5)),
    DemoOperator("demo-op-09", "Наталья Кузнецова", OFFICES, Style(4.4, 4)),
    DemoOperator("demo-op-10", "Алексей Попов", OFFICES, AVERAGE),
    DemoOperator("demo-op-11", "Татьяна Васильева", OFFICES, Style(4.7, 4)),
    DemoOperator("demo-op-12", "Виктор Зайцев", OFFICES, Style(3.2, 4)),
)

COMMENTS_GOOD = (
    "Всё быстро и понятно, спасибо!",
    "Оператор очень вежливый, помог разобраться с тарифом.",
    "Вопрос решили с первого раза.",
    "Спасибо, что перезвонили и всё объяснили.",
    "Приятно общаться, рекомендую.",
)
COMMENTS_MIXED = (
    "В целом нормально, но долго ждал ответа на линии.",
    "Помогли, но тариф дороговат.",
    "Пришлось объяснять проблему два раза.",
)
COMMENTS_BAD = (
    "Ждал в очереди больше получаса, вопрос так и не решили.",
    "Сотрудник был груб и перебивал.",
    "Обещали перезвонить и не перезвонили.",
    "Списали деньги за услугу, которую я не подключал.",
)
RESOLUTIONS = (
    "Перезвонили клиенту, извинились, вернули списанные средства.",
    "Разобрали звонок с оператором, клиенту предложили скидку.",
    "Клиент доволен решением после повторного звонка.",
)
NOTES = (
    "Позвонила клиенту, жду документы.",
    "Прослушали запись разговора вместе с оператором.",
    "Передано в биллинг, ответ обещают завтра.",
)
REOPEN_REASONS = (
    "Клиент позвонил снова: деньги так и не вернулись.",
    "Клиент недоволен решением, просит руководителя.",
)
EXCLUSION_REASONS = (
    "Клиент оценивал тариф, а не работу оператора (апелляция принята)",
    "Клиент ошибся номером: звонок был к другому оператору",
)


SUPERVISORS = {HOTLINE_NORTH: "demo.sever", HOTLINE_SOUTH: "demo.yug", OFFICES: "demo.ofis"}

# How the incidents are worked: past their due time (LATE_*) or not yet (RECENT_*, oldest
# first). The first incidents of each group take the fixed turns, so that every state is
# there even in a short demo; the others one of the chances.
RESOLVED = ("assign", "comment", "resolve")
ARCHIVED = ("assign", "resolve", "archive")
REOPENED = ("assign", "resolve", "reopen")
ASSIGNED = ("assign",)
ASSIGNED_COMMENTED = ("assign", "comment")
UNTOUCHED: tuple[str, ...] = ()
LATE_PLANS = (UNTOUCHED, ASSIGNED_COMMENTED, RESOLVED, ARCHIVED)
LATE_CHANCES = (RESOLVED,) * 10 + (ARCHIVED,) * 4 + (REOPENED, ASSIGNED_COMMENTED, UNTOUCHED)
RECENT_PLANS = (RESOLVED, ARCHIVED, REOPENED, ASSIGNED, ASSIGNED_COMMENTED, UNTOUCHED)
RECENT_CHANCES = (UNTOUCHED,) * 3 + (ASSIGNED,) * 2 + (ASSIGNED_COMMENTED, RESOLVED)


def incident_states(incident: Incident, commented: bool, now: datetime) -> list[str]:
    """The demo's words for an incident's state: its status (new when nobody has touched it
    yet), then assigned, commented, reopened and overdue as they apply."""
    status = "new" if incident.first_action_at is None else incident.status
    states = [status]
    if incident.assignee and status == "open":
        states.append("assigned")
    if commented:
        states.append("commented")
    if incident.reopened_count:
        states.append("reopened")
    if is_overdue(incident, now):
        states.append("overdue")
    return states


class DemoRefused(RuntimeError):
    """The database is not empty: the demo would mix with real data."""


@dataclass
class DemoSummary:
    calls: int = 0
    visits: int = 0
    answered: int = 0
    incidents: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    accounts: list[tuple[str, str, str]] = field(default_factory=list)  # username, password, role

    def lines(self) -> list[str]:
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.incidents.items())) or "none"
        return [
            f"{len(OPERATORS)} operators in 3 teams; {self.calls} hotline calls and "
            f"{self.visits} office visits; {self.answered} surveys answered",
            f"incidents: {states}; {self.excluded} ratings excluded after an appeal",
        ]


def refuse_unless_empty(session: Session) -> None:
    """DemoRefused when demo data, or any contact, is there already."""
    seeded = session.scalar(select(AuditEvent.at).where(AuditEvent.action == DEMO_ACTION))
    if seeded is not None:
        raise DemoRefused(
            f"demo data is there already (seeded {seeded:%Y-%m-%d %H:%M} UTC); it is made once. "
            "To start again, use a fresh database (stop the gateway, remove the SQLite file "
            "under var/, `make run`)."
        )
    contacts = session.scalar(select(func.count()).select_from(Interaction)) or 0
    if contacts:
        raise DemoRefused(
            f"the database holds {contacts} contacts already; the demo fills an empty gateway "
            "only, so that it never mixes with real figures"
        )


class _Month:
    """One demo month, contact by contact, through the real services."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        now: datetime,
        days: int,
        rng: random.Random,
        progress: Callable[[str], None],
        web: WebSurveys,
    ):
        self.session, self.settings, self.now, self.days = session, settings, now, days
        self.rng, self.progress, self.web = rng, progress, web
        self.zone = settings.report_zone
        self.summary = DemoSummary()
        self.counter = 0
        self.flow = flows_of(session)[FLOW]

    def score(self, style: Style, key: str) -> int:
        mean = style.mean + (style.politeness_shift if key == "politeness" else 0.0)
        if key == "cost":
            mean -= 0.4  # the tariff is rated lower everywhere
        return max(1, min(5, round(self.rng.gauss(mean, 0.9))))

    def answers(self, style: Style) -> dict[str, int]:
        overall_mean = style.mean + style.politeness_shift / 3
        overall = max(1, min(5, round(self.rng.gauss(overall_mean, 0.9))))
        scores = {"overall": overall}
        for key in RATED[1:]:
            scores[key] = max(1, min(5, round((self.score(style, key) + overall) / 2)))
        return scores

    def comment(self, overall: int) -> str:
        pool = COMMENTS_BAD if overall <= 2 else COMMENTS_MIXED if overall == 3 else COMMENTS_GOOD
        return self.rng.choice(pool)

    def phone(self) -> str:
        return f"+7999{self.rng.randrange(10**7):07d}"

    def moment(self, day: datetime) -> datetime:
        local = datetime.combine(day.date(), time(9), self.zone)
        return local + timedelta(minutes=self.rng.randrange(11 * 60))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:06d}"

    def run(self) -> DemoSummary:
        today = self.now.astimezone(self.zone)
        for back in range(self.days, 0, -1):
            day = today - timedelta(days=back)
            self.one_day(day, weekend=day.weekday() >= 5, back=back)
            self.session.commit()
            self.progress(f"{day:%Y-%m-%d}: done")
        closed = self.web.expire_web_surveys(self.session, self.settings, self.now)
        while closed:
            closed = self.web.expire_web_surveys(self.session, self.settings, self.now)
        self.work_incidents()
        self.exclude_some()
        self.session.commit()
        return self.summary

    def one_day(self, day: datetime, *, weekend: bool, back: int) -> None:
        """The day's contacts as the CRM and the queue system report them (one batch, as
        POST /api/v1/interactions/batch does), then the surveys the customers answer."""
        contacts: list[tuple[DemoOperator, InteractionInput]] = []
        for operator in OPERATORS:
            if operator.style.first_day and back > operator.style.first_day:
                continue
            per_day = operator.style.per_day * (0.4 if weekend else 1.0)
            for _ in range(max(0, round(self.rng.gauss(per_day, 1.5)))):
                ended = self.moment(day)
                if ended < self.now:
                    contacts.append((operator, self.contact(operator, ended)))
        contacts.sort(key=lambda pair: pair[1].ended_at)
        if not contacts:
            return
        reported_at = min(self.now, contacts[-1][1].ended_at + timedelta(minutes=5))
        results = report_interactions(
            self.session, [given for _, given in contacts], self.settings, reported_at
        )
        for (operator, given), result in zip(contacts, results, strict=True):
            if given.channel is InteractionChannel.CALL:
                self.summary.calls += 1
                self.call(operator, given)
            elif result.interaction is not None and result.interaction.survey is not None:
                self.summary.visits += 1
                self.visit(operator, result.interaction.survey, given.ended_at)

    def contact(self, operator: DemoOperator, ended: datetime) -> InteractionInput:
        customer = CustomerInput(phone=self.phone(), language="ru")
        who = OperatorInput(operator.external_id, operator.name, operator.team)
        if operator.team == OFFICES:
            return InteractionInput(
                external_id=self.next_id("demo-visit"),
                channel=InteractionChannel.OFFICE_VISIT,
                ended_at=ended,
                operator=who,
                customer=customer,
                office=self.rng.choice(OFFICE_NAMES),
                survey="web",  # the link printed on the receipt
            )
        return InteractionInput(
            external_id=self.next_id("demo-call"),
            channel=InteractionChannel.CALL,
            ended_at=ended,
            operator=who,
            customer=customer,
            survey="none",  # the IVR hand-over surveys the caller who stays on the line
        )

    def call(self, operator: DemoOperator, given: InteractionInput) -> None:
        """A hotline call: most callers hang up with the operator; the others are handed to
        the IVR survey and press digits step by step, some stopping halfway."""
        roll = self.rng.random()
        if roll >= 0.46 or given.customer is None:
            return
        scores = self.answers(operator.style)
        answered = list(RATED) if roll < 0.38 else list(RATED[:2])
        at = given.ended_at
        handed_over = HandedOverCall(
            provider_id="demo:" + secrets.token_hex(16),
            external_id=given.external_id,
            operator=operator.external_id,
            caller=given.customer.phone,
        )
        opened = open_handed_over_survey(self.session, self.settings, at, handed_over)
        survey = locked_survey(self.session, opened.survey_id) if opened else None
        if survey is None:
            return
        for key in answered:  # the flow asks the rated questions in this order
            at += timedelta(seconds=8)
            keys = keys_given(QuestionType.RATING, str(scores[key]))
            apply_given(self.session, self.settings, at, survey, keys)
        self.summary.answered += 1
        # No voice comment: the caller hangs up at the tone, or halfway through.
        close_call_survey(survey, at + timedelta(seconds=20))
        self.session.flush()

    def visit(self, operator: DemoOperator, survey: SurveySession, ended: datetime) -> None:
        """An office visit's web survey: some customers open the link, answer and leave a
        written comment; the others let it expire."""
        if self.rng.random() >= 0.45:
            return
        scores = self.answers(operator.style)
        at = ended + timedelta(minutes=self.rng.randrange(20, 600))
        if at >= self.now:
            return
        for question in self.flow.questions_for(self.web.CHANNEL):
            at += timedelta(seconds=10)
            self.web.answer(
                self.session, survey, question.key, scores.get(question.key), self.settings, at
            )
        self.summary.answered += 1
        if self.rng.random() < (0.8 if scores["overall"] <= 2 else 0.3):
            self.web.add_comment(
                self.session, survey, self.comment(scores["overall"]), self.settings, at
            )

    def work_incidents(self) -> None:
        """Incidents in every state a supervisor meets, worked through gateway.incidents as
        supervisors would: those past their due time mostly resolved (some archived), a few
        still open and overdue; recent ones new, assigned or commented, some resolved at once,
        archived, or reopened after the customer called again."""
        incidents = self.session.scalars(select(Incident).order_by(Incident.opened_at)).all()
        late = [i for i in incidents if i.due_at is not None and i.due_at <= self.now]
        recent = [i for i in incidents if i not in late]
        # A fixed turn for the first of each group, so that every state is there even in a
        # short demo; then chance.
        plans: dict[Incident, tuple[str, ...]] = {}
        for n, incident in enumerate(late):
            plans[incident] = (
                LATE_PLANS[n] if n < len(LATE_PLANS) else self.rng.choice(LATE_CHANCES)
            )
        for n, incident in enumerate(recent):
            plans[incident] = (
                RECENT_PLANS[n] if n < len(RECENT_PLANS) else self.rng.choice(RECENT_CHANCES)
            )
        # Every demo supervisor has an incident to work, whatever weekdays the days fell on: a
        # team whose incidents would all be closed keeps its newest one untouched.
        by_team: dict[int | None, list[Incident]] = {}
        for incident in incidents:
            by_team.setdefault(incident.session.interaction.team_id, []).append(incident)
        for team_incidents in by_team.values():
            if all(plans[i][-1:] in (("resolve",), ("archive",)) for i in team_incidents):
                plans[team_incidents[-1]] = UNTOUCHED
        for incident, plan in plans.items():
            self.work(incident, plan)
        commented = set(
            self.session.scalars(
                select(AuditEvent.subject_id).where(AuditEvent.action == "incident.comment")
            )
        )
        for incident in incidents:
            for state in incident_states(incident, str(incident.id) in commented, self.now):
                self.summary.incidents[state] = self.summary.incidents.get(state, 0) + 1

    def work(self, incident: Incident, plan: tuple[str, ...]) -> None:
        """The plan's steps (assign, comment, resolve, reopen, archive), an hour or more apart,
        none later than now."""
        team = incident.operator.team.name if incident.operator and incident.operator.team else ""
        username = SUPERVISORS.get(team, "demo.admin")
        actor = f"{'supervisor' if team in SUPERVISORS else 'admin'}:{username}"
        at = incident.opened_at
        for step in plan:
            at += timedelta(minutes=self.rng.randrange(40, 240))
            if at >= self.now:
                return
            if step == "assign":
                assign_incident(self.session, incident, actor, username, at)
            elif step == "comment":
                comment_incident(self.session, incident, actor, self.rng.choice(NOTES), at)
            elif step == "resolve":
                cause = self.rng.choice(self.settings.incident_causes)
                resolution = self.rng.choice(RESOLUTIONS)
                resolve_incident(
                    self.session,
                    incident,
                    actor,
                    cause,
                    resolution,
                    at,
                    self.settings.incident_causes,
                )
            elif step == "reopen":
                reason = self.rng.choice(REOPEN_REASONS)
                reopen_incident(self.session, incident, actor, reason, at, self.settings)
            elif step == "archive":
                archive_incident(self.session, incident, actor, at)

    def exclude_some(self) -> None:
        """Two appeals upheld: a low rating of a strong operator that was about the tariff."""
        candidates = self.session.scalars(
            select(SurveySession)
            .join(SurveySession.interaction)
            .where(SurveySession.score_overall <= 2, SurveySession.excluded_at.is_(None))
            .order_by(SurveySession.id)
            .limit(len(EXCLUSION_REASONS))
        ).all()
        for survey, reason in zip(candidates, EXCLUSION_REASONS, strict=False):
            exclude_rating(
                self.session,
                survey,
                reason,
                "supervisor:demo.sever",
                (survey.finished_at or self.now) + timedelta(days=1),
            )
            self.summary.excluded += 1


def demo_accounts() -> list[tuple[str, ApiRole, str | None, list[str], str | None]]:
    """(username, role, name, teams, operator) of the demo's accounts."""
    return [
        ("demo.admin", ApiRole.ADMIN, "Администратор", [], None),
        ("demo.sever", ApiRole.SUPERVISOR, "Руководитель: Север", [HOTLINE_NORTH], None),
        ("demo.yug", ApiRole.SUPERVISOR, "Руководитель: Юг", [HOTLINE_SOUTH], None),
        ("demo.ofis", ApiRole.SUPERVISOR, "Руководитель: офисы", [OFFICES], None),
        ("demo.anna", ApiRole.OPERATOR, "Анна Смирнова", [], "demo-op-01"),
        ("demo.igor", ApiRole.OPERATOR, "Игорь Волков", [], "demo-op-04"),
    ]


def seed(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    days: int = 30,
    seed_value: int = 12,
    progress: Callable[[str], None] = lambda _: None,
    web: WebSurveys,
) -> DemoSummary:
    """Fill an empty gateway with `days` days of demo contacts, surveys, incidents and the
    demo accounts; commits as it goes. Raises DemoRefused if the database is not empty."""
    if days < 1 or days > 366:
        raise ValueError("--days is 1 to 366")
    refuse_unless_empty(session)
    session.add(
        AuditEvent(
            at=now,
            actor="cli",
            action=DEMO_ACTION,
            subject_type="database",
            subject_id="demo",
            detail={"days": days},
        )
    )
    for name in (HOTLINE_NORTH, HOTLINE_SOUTH, OFFICES):
        session.add(Team(name=name, created_at=now - timedelta(days=days + 1)))
    session.commit()
    rng = random.Random(seed_value)
    summary = _Month(session, settings, now, days, rng, progress, web).run()
    for username, role, full_name, teams, operator in demo_accounts():
        password = "demo-" + secrets.token_urlsafe(9)
        create_account(
            session,
            username,
            password,
            role,
            now=now,
            actor="cli",
            name=full_name,
            teams=teams,
            operator=operator,
        )
        summary.accounts.append((username, password, role.value))
    session.commit()
    return summary
