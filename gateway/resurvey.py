"""Re-surveys: a supervisor asks the customer again after fixing the matter.

A follow-up is a new survey session of the same contact (`follow_up_of_id` names the
original survey) on the contact's channel: an SMS again, an email again, a fresh web link, or
a call-back for a call (the caller is no longer on the line). It is a follow-up, never a new
contact: the operator's figures keep the original survey (docs/metrics.md), and the
follow-ups are reported beside the incidents (gateway.incidents.team_report).

A follow-up goes out by the rules of any survey: the sweep (gateway.dispatch) applies the
opt-out, the quiet hours and the cooldown when it falls due; the cooldown does not count the
customer's surveys about this same contact, or no re-survey could follow a fix within
SURVEY_COOLDOWN_DAYS. A web follow-up is open at once, as a web survey is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.config import Settings
from gateway.models import (
    AuditEvent,
    Interaction,
    SurveyChannel,
    SurveyKind,
    SurveySession,
)
from gateway.optouts import phone_opted_out
from gateway.survey_links import new_token

# The kind of a follow-up of each kind of original survey.
FOLLOW_UP_KIND = {
    SurveyKind.POST_CALL: SurveyKind.IVR_CALLBACK,
    SurveyKind.IVR_CALLBACK: SurveyKind.IVR_CALLBACK,
    SurveyKind.SMS: SurveyKind.SMS,
    SurveyKind.WEB: SurveyKind.WEB,
    SurveyKind.EMAIL: SurveyKind.EMAIL,
}
_CHANNEL = {
    SurveyKind.IVR_CALLBACK: SurveyChannel.IVR,
    SurveyKind.SMS: SurveyChannel.SMS,
    SurveyKind.WEB: SurveyChannel.WEB,
    SurveyKind.EMAIL: SurveyChannel.EMAIL,
}


class ResurveyError(ValueError):
    """The contact cannot be surveyed again now; the message says why."""


def follow_ups(session: Session, original: SurveySession) -> list[SurveySession]:
    return list(
        session.scalars(
            select(SurveySession)
            .where(SurveySession.follow_up_of_id == original.id)
            .order_by(SurveySession.id)
        )
    )


def request_follow_up(
    session: Session,
    interaction: Interaction,
    actor: str,
    settings: Settings,
    now: datetime,
) -> SurveySession:
    """A follow-up survey of this contact on its channel, due now (web: open now)."""
    original = interaction.survey
    if original is None:
        raise ResurveyError("this contact was never surveyed; there is nothing to ask again")
    if not original.status.is_final:
        raise ResurveyError(
            f"the contact's survey is still {original.status.value}; wait until it ends"
        )
    pending = [f for f in follow_ups(session, original) if not f.status.is_final]
    if pending:
        raise ResurveyError(
            f"a re-survey of this contact is already {pending[0].status.value} "
            f"(survey {pending[0].id})"
        )
    customer = original.customer or interaction.customer
    if customer is None:
        raise ResurveyError("the contact has no customer to ask")
    if customer.erased_at is not None:
        raise ResurveyError("the customer's personal data was erased")
    if customer.opted_out_at is not None or (
        customer.phone and phone_opted_out(session, customer.phone)
    ):
        raise ResurveyError("the customer opted out of surveys")
    kind = FOLLOW_UP_KIND[original.kind]
    if kind is SurveyKind.EMAIL and not customer.email:
        raise ResurveyError("the customer has no email address")
    if kind in (SurveyKind.SMS, SurveyKind.IVR_CALLBACK) and not customer.phone:
        raise ResurveyError("the customer has no phone number")
    follow_up = SurveySession(
        # The id, not the relationship: interaction.survey stays the original survey.
        interaction_id=interaction.id,
        follow_up_of_id=original.id,
        requested_by=actor[:200],
        customer_id=customer.id,
        channel=_CHANNEL[kind],
        kind=kind,
        flow=original.flow,
        language=original.language,
        attempts=0,
        created_at=now,
    )
    if kind is SurveyKind.WEB:
        survey_state.open_link(follow_up, now + timedelta(days=settings.web_survey_expiry_days))
        follow_up.link_token = new_token()
    else:
        survey_state.schedule(follow_up, now)
        if kind is SurveyKind.EMAIL:
            follow_up.link_token = new_token()
    session.add(follow_up)
    session.flush()
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action="survey.follow_up",
            subject_type="interaction",
            subject_id=str(interaction.id),
            detail={"survey": follow_up.id, "follow_up_of": original.id, "kind": kind.value},
        )
    )
    return follow_up
