"""Alerts to supervisors: an email when an incident opens, and again when it becomes overdue.

A beat task (gateway.tasks.send_incident_alerts) runs `send_incident_alerts` every
DISPATCH_INTERVAL_SECONDS. For each incident that needs an alert it first writes an
`IncidentAlert` row (unique per incident, kind and opening) and commits it, then sends: a
second worker finds the row and sends nothing, and a crash after the commit loses that alert
rather than sending it twice. A reopened incident has a due time of its own and, when it runs
late again, a second overdue alert (its opening is its reopen count). Only incidents opened
(or due) in the last ALERT_LOOKBACK are considered, so a first start after an upgrade does
not mail the whole history.

Recipients: the team's addresses in ALERT_EMAILS, else ALERT_TO; none: the alert is recorded
as `no_recipient`. Mail goes through the gateway's one SMTP set-up (SMTP_*), from ALERT_FROM
(default MAIL_FROM); without SMTP_HOST it is logged to the console.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import ColumnElement, exists, func, literal, select, update
from sqlalchemy.orm import Session, selectinload

from gateway.config import Settings
from gateway.db import insert_new
from gateway.incidents import low_parameters
from gateway.mail import Mailer, MailError, mask_email
from gateway.models import (
    AuditEvent,
    Incident,
    IncidentAlert,
    IncidentStatus,
    Interaction,
    SurveySession,
)

logger = logging.getLogger(__name__)

OPENED = "opened"
OVERDUE = "overdue"
ALERT_LOOKBACK = timedelta(days=1)
BATCH = 100

_SUBJECT = {
    ("ru", OPENED): "Новый инцидент №{id}: оценка {score} из 5{who}",
    ("en", OPENED): "New incident #{id}: score {score} of 5{who}",
    ("ru", OVERDUE): "Инцидент №{id} просрочен: оценка {score} из 5{who}",
    ("en", OVERDUE): "Incident #{id} is overdue: score {score} of 5{who}",
}
_LINES = {
    "ru": {
        "team": "Команда",
        "operator": "Оператор",
        "channel": "Канал",
        "opened": "Открыт",
        "due": "Срок",
        "low": "Низкие параметры",
        "comment": "Комментарий клиента",
        "voice": "Голосовой комментарий",
        "open": "Открыть карточку",
    },
    "en": {
        "team": "Team",
        "operator": "Operator",
        "channel": "Channel",
        "opened": "Opened",
        "due": "Due",
        "low": "Low parameters",
        "comment": "Customer's comment",
        "voice": "Voice comment",
        "open": "Open the card",
    },
}


@dataclass
class AlertReport:
    sent: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    no_recipient: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"alerts: {len(self.sent)} sent, {len(self.failed)} failed, "
            f"{len(self.no_recipient)} without recipient"
        )


def _without(kind: str, opening: ColumnElement[int]) -> ColumnElement[bool]:
    return ~exists().where(
        IncidentAlert.incident_id == Incident.id,
        IncidentAlert.kind == kind,
        IncidentAlert.opening == opening,
    )


def due_alerts(session: Session, now: datetime) -> list[tuple[int, str, int]]:
    """(incident id, kind, opening) of the alerts to send now, oldest first: a new incident
    once; an overdue one once per opening (again after each reopening)."""
    since = now - ALERT_LOOKBACK
    first = literal(0)
    opened = session.execute(
        select(Incident.id, first)
        .where(Incident.opened_at >= since, _without(OPENED, first))
        .order_by(Incident.id)
        .limit(BATCH)
    ).all()
    opening = func.coalesce(Incident.reopened_count, 0)
    overdue = session.execute(
        select(Incident.id, opening)
        .where(
            Incident.status == IncidentStatus.OPEN.value,
            Incident.due_at <= now,
            Incident.due_at >= since,
            _without(OVERDUE, opening),
        )
        .order_by(Incident.id)
        .limit(BATCH)
    ).all()
    return [(i, OPENED, int(n)) for i, n in opened] + [(i, OVERDUE, int(n)) for i, n in overdue]


def alert_message(incident: Incident, kind: str, to: list[str], settings: Settings) -> EmailMessage:
    """The alert: who, what score, which parameters were low, the comment, the card's link."""
    language = settings.default_language if settings.default_language in ("ru", "en") else "ru"
    words = _LINES[language]
    survey = incident.session
    interaction = survey.interaction
    team = interaction.team.name if interaction.team else None
    operator = incident.operator
    who = operator.name or operator.external_id if operator else None
    zone = settings.report_zone
    subject = _SUBJECT[(language, kind)].format(
        id=incident.id, score=incident.score, who=f" — {who}" if who else ""
    )
    lines = [subject, ""]
    if team:
        lines.append(f"{words['team']}: {team}")
    if who:
        lines.append(f"{words['operator']}: {who}")
    lines.append(f"{words['channel']}: {interaction.channel.value}")
    lines.append(f"{words['opened']}: {incident.opened_at.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    if incident.due_at is not None:
        lines.append(f"{words['due']}: {incident.due_at.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    low = low_parameters(survey, settings.low_score_threshold)
    if low:
        lines.append(f"{words['low']}: " + ", ".join(f"{k} {v}" for k, v in sorted(low.items())))
    for answer in survey.answers:
        if answer.recording_url:
            lines.append(f"{words['voice']}: {answer.recording_url}")
        elif answer.value is None and answer.raw_input:
            lines.append(f"{words['comment']}: {answer.raw_input}")
    base = settings.public_base_url.rstrip("/")
    lines += ["", f"{words['open']}: {base}/dashboard/incidents/{incident.id}"]
    sender = settings.alert_from or settings.mail_from
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    return message


def _claim(
    session: Session,
    incident_id: int,
    kind: str,
    opening: int,
    recipients: list[str],
    now: datetime,
) -> bool:
    """Write the alert's row (committed by the caller); False when it exists already."""
    return insert_new(
        session,
        IncidentAlert,
        {
            "incident_id": incident_id,
            "kind": kind,
            "opening": opening,
            "recipients": ", ".join(recipients)[:1000] or None,
            "created_at": now,
        },
        unique=["incident_id", "kind", "opening"],
    )


def _record(
    session: Session,
    alert: tuple[int, str, int],
    outcome: str,
    detail: str,
    now: datetime,
) -> None:
    incident_id, kind, opening = alert
    session.execute(
        update(IncidentAlert)
        .where(
            IncidentAlert.incident_id == incident_id,
            IncidentAlert.kind == kind,
            IncidentAlert.opening == opening,
        )
        .values(
            outcome=outcome,
            detail=detail[:500] or None,
            sent_at=now if outcome == "sent" else None,
        )
    )
    session.add(
        AuditEvent(
            at=now,
            actor="system:alerts",
            action="incident.alert",
            subject_type="incident",
            subject_id=str(incident_id),
            detail={
                "kind": kind,
                "opening": opening,
                "outcome": outcome,
                "detail": detail[:200] or None,
            },
        )
    )
    session.commit()


def send_incident_alerts(
    session: Session, settings: Settings, mailer: Mailer, now: datetime
) -> AlertReport:
    """Send every alert due now, each at most once; commits after each (see the module)."""
    report = AlertReport()
    for alert in due_alerts(session, now):
        incident_id, kind, opening = alert
        incident = session.scalar(
            select(Incident)
            .where(Incident.id == incident_id)
            .options(
                selectinload(Incident.operator),
                selectinload(Incident.session)
                .selectinload(SurveySession.interaction)
                .selectinload(Interaction.team),
                selectinload(Incident.session).selectinload(SurveySession.answers),
            )
        )
        if incident is None:
            continue
        team = incident.session.interaction.team
        recipients = settings.alert_recipients(team.name if team else None)
        claimed = _claim(session, incident_id, kind, opening, recipients, now)
        session.commit()  # the alert is on record before the SMTP server hears of it
        if not claimed:
            continue
        if not recipients:
            _record(session, alert, "no_recipient", "set ALERT_EMAILS or ALERT_TO", now)
            report.no_recipient.append((incident_id, kind))
            continue
        message = alert_message(incident, kind, recipients, settings)
        try:
            mailer.send(message)
        except MailError as error:
            _record(session, alert, "failed", str(error), now)
            report.failed.append((incident_id, kind))
            logger.warning("incident %s: %s alert not sent: %s", incident_id, kind, error)
            continue
        _record(session, alert, "sent", "", now)
        report.sent.append((incident_id, kind))
        logger.info(
            "incident %s: %s alert sent to %s",
            incident_id,
            kind,
            ", ".join(mask_email(r) for r in recipients),
        )
    return report
