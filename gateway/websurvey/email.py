"""Email invitations to the web survey: the message, the mailers, the at-most-once send.

The message has a plain-text and an HTML part, the first question's scale as one-tap links
(`/r/<token>/<score>`), and `List-Unsubscribe` with one-click unsubscribe (RFC 8058), which
opts the customer out of every channel.

The send follows the SMS's rules (gateway.dispatch): the sweep claims a due survey after its
delay, quiet hours, cooldown and opt-out; this module writes the attempt row and commits it
BEFORE talking to the SMTP server and records the outcome after, so an invitation is sent at
most once. A temporary SMTP failure (a refused connection, a 4xx answer) puts the survey
back in the schedule with a backoff, until SMS_SURVEY_MAX_LATENESS_HOURS; a permanent one
(5xx: no such mailbox) fails it with the server's reason.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.db import is_sqlite
from gateway.dispatch import too_late_at
from gateway.mail import Mailer, MailError, mask_email
from gateway.models import SurveyAttempt, SurveySession, SurveyStatus
from gateway.optouts import phone_opted_out
from gateway.survey_links import survey_url
from gateway.websurvey.service import first_question

logger = logging.getLogger(__name__)

_ENV = Environment(
    loader=PackageLoader("gateway.websurvey", "templates"),
    autoescape=select_autoescape(["html"]),
)

SUBJECT = {
    "ru": "Оцените, пожалуйста, наше обслуживание",
    "en": "How did we do? Please rate our service",
}


@dataclass(frozen=True)
class Invitation:
    to: str
    subject: str
    text: str
    html: str
    unsubscribe_url: str


def invitation(survey: SurveySession, to: str, settings: Settings) -> Invitation:
    """The invitation of a survey: its link and one-tap buttons for the first question."""
    if survey.link_token is None:
        raise ValueError(f"survey {survey.id} has no link token")
    language = survey.language if survey.language in SUBJECT else "ru"
    base, token = settings.public_base_url, survey.link_token
    question = first_question(survey)
    low, high = question.value_range or (1, 5)
    context = {
        "lang": language,
        "question": question.text_for("web", language),
        "url": survey_url(base, token),
        "scores": [(n, survey_url(base, token, n)) for n in range(low, high + 1)],
        "unsubscribe_url": survey_url(base, token) + "/unsubscribe",
        "customer_name": survey.customer.name if survey.customer else None,
    }
    return Invitation(
        to=to,
        subject=SUBJECT[language],
        text=_ENV.get_template("websurvey/email.txt").render(context),
        html=_ENV.get_template("websurvey/email.html").render(context),
        unsubscribe_url=str(context["unsubscribe_url"]),
    )


def message_of(invite: Invitation, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = invite.to
    message["Subject"] = invite.subject
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2].strip(">"))
    message["List-Unsubscribe"] = f"<{invite.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(invite.text)
    message.add_alternative(invite.html, subtype="html")
    return message


@dataclass(frozen=True)
class SendOutcome:
    result: str  # sent, skipped, not_sent, retry, failed
    detail: str = ""


def _locked(session: Session, survey_id: int) -> SurveySession | None:
    stmt = select(SurveySession).where(SurveySession.id == survey_id)
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=SurveySession)
    return session.scalar(stmt.execution_options(populate_existing=True))


def _opted_out(session: Session, survey: SurveySession) -> bool:
    customer = survey.customer
    if customer is None:
        return False
    return customer.opted_out_at is not None or bool(
        customer.phone and phone_opted_out(session, customer.phone)
    )


def send_invitation(
    session: Session, settings: Settings, mailer: Mailer, survey_id: int, now: datetime
) -> SendOutcome:
    """Send a claimed email survey's invitation at most once; commits (see the module)."""
    survey = _locked(session, survey_id)
    if (
        survey is None
        or survey.status is not SurveyStatus.SENDING
        or any(a.outcome is None for a in survey.attempt_log)
    ):
        session.commit()
        return SendOutcome("skipped", "not claimed for sending, or already attempted")
    address = survey.customer.email if survey.customer else None
    if not address or _opted_out(session, survey):
        reason = "customer opted out" if address else "no email address"
        survey_state.exclude(survey, now, reason)
        session.commit()
        return SendOutcome("not_sent", reason)
    message = message_of(invitation(survey, address, settings), settings)
    survey.attempts += 1
    attempt = SurveyAttempt(session_id=survey.id, number=survey.attempts, started_at=now)
    survey.attempt_log.append(attempt)
    survey.claimed_until = now + timedelta(seconds=settings.dispatch_lease_seconds)
    session.commit()  # the attempt is on record before the SMTP server hears of it

    try:
        mailer.send(message)
    except MailError as error:
        return _failed(session, settings, survey_id, attempt.id, error, now)

    survey = _locked(session, survey_id)
    if survey is None:
        raise LookupError(f"survey {survey_id} vanished while sending it")
    attempt = session.get(SurveyAttempt, attempt.id) or attempt
    attempt.outcome, attempt.finished_at = "sent", now
    attempt.provider_id = str(message["Message-ID"])[:64]
    survey_state.sent(survey, now, now + timedelta(days=settings.web_survey_expiry_days), "sent")
    session.commit()
    logger.info("survey %s: email invitation sent to %s", survey.id, mask_email(address))
    return SendOutcome("sent")


def retry_delay(attempt: int, base_seconds: float) -> timedelta:
    """Doubling from the base (at most 32 times it), with jitter, as the SMS's."""
    doublings = min(max(attempt - 1, 0), 5)
    return timedelta(seconds=base_seconds * 2**doublings * random.uniform(0.5, 1.5))


def _failed(
    session: Session,
    settings: Settings,
    survey_id: int,
    attempt_id: int,
    error: MailError,
    now: datetime,
) -> SendOutcome:
    survey = _locked(session, survey_id)
    attempt = session.get(SurveyAttempt, attempt_id)
    if survey is None or attempt is None:
        session.commit()
        return SendOutcome("failed", str(error))
    attempt.outcome, attempt.finished_at = "failed", now
    attempt.detail = str(error)[:500]
    survey.claimed_until = None
    retry_at = now + retry_delay(survey.attempts, settings.sms_retry_base_seconds)
    if not error.permanent and retry_at <= too_late_at(survey, settings):
        survey_state.reschedule(survey, retry_at)
        session.commit()
        logger.warning("survey %s: email not sent (%s); retry at %s", survey.id, error, retry_at)
        return SendOutcome("retry", str(error))
    survey_state.fail(survey, now, f"email: {error}")
    session.commit()
    logger.warning("survey %s: email failed: %s", survey.id, error)
    return SendOutcome("failed", str(error))
