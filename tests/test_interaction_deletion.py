"""Deleting a contact recorded by mistake: its surveys, answers, incidents and their alerts go
with it, audited; the reports no longer count it; nothing else is touched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import survey_state
from gateway.models import (
    AuditEvent,
    Incident,
    IncidentAlert,
    Interaction,
    Message,
    RecordingDeletion,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
)
from gateway.privacy import delete_interaction
from gateway.reports import service
from gateway.reports.rollup import verify
from gateway.surveys import record_answer
from ivr_flows.engine import RecordedAnswer
from tests.reports.factories import Seeder

pytestmark = pytest.mark.both_databases

SID = "RE" + "0123456789abcdef" * 2
RECORDING = f"https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/{SID}"


def test_a_deleted_contact_takes_its_incident_and_its_count_with_it(
    app: Flask, session: Session
) -> None:
    settings = app.config["SETTINGS"]
    zone = settings.report_zone
    now = datetime.now(UTC)
    seed = Seeder(session)
    operator = seed.operator("op-mistake", team="North")
    survey = seed.survey(operator, {}, now, status="active")
    record_answer(session, survey, RecordedAnswer("overall", 1), settings, now)  # an incident
    record_answer(
        session,
        survey,
        RecordedAnswer("comment", None, recording_url=RECORDING, recording_duration=4),
        settings,
        now,
    )
    session.flush()
    session.expire(survey, ["answers"])
    survey_state.finish(survey, now, completed=True)
    session.flush()
    incident = session.scalar(select(Incident).where(Incident.session_id == survey.id))
    assert incident is not None
    session.add(IncidentAlert(incident_id=incident.id, kind="opened", created_at=now))
    follow_up = SurveySession(
        interaction_id=survey.interaction_id,
        follow_up_of_id=survey.id,
        requested_by="supervisor:test",
        channel=SurveyChannel.SMS,
        kind=SurveyKind.SMS,
        flow="post_call",
        language="ru",
        status=SurveyStatus.ACTIVE,
    )
    session.add(follow_up)
    session.flush()
    sms = Message(session_id=follow_up.id, direction="outbound", phone="+79160000001", body="?")
    session.add(sms)
    kept = seed.survey(operator, {"overall": 5}, now)
    session.commit()
    mistaken = survey.interaction

    delete_interaction(session, mistaken, "admin:test", "a test call", now)
    session.commit()

    session.expire_all()
    assert session.get(Interaction, mistaken.id) is None
    assert session.scalar(select(func.count()).select_from(Incident)) == 0
    assert session.scalar(select(func.count()).select_from(IncidentAlert)) == 0
    remaining = session.scalars(select(SurveySession.id)).all()
    assert remaining == [kept.id]
    assert session.get_one(Message, sms.id).session_id is None  # the SMS log keeps what was sent
    assert session.scalar(select(RecordingDeletion.recording_sid)) == SID
    audited = {
        (a.action, a.subject_id, a.detail["reason"])
        for a in session.scalars(select(AuditEvent).where(AuditEvent.actor == "admin:test"))
    }
    assert audited == {
        ("interaction.delete", str(mistaken.id), "a test call"),
        ("incident.delete", str(incident.id), "a test call"),
    }

    day = now.astimezone(zone).date()
    assert verify(session, day, day, zone) == []
    flt = service.ReportFilter(day, day, zone=zone)
    (funnel,) = service.funnel_report(session, flt)
    assert (funnel["contacts"], funnel["surveys_completed"]) == (1, 1)
    (row,) = service.operators_report(session, flt, settings)
    assert row["responses"] == 1
    assert row["distribution"]["5"] == 1

    # A contact whose survey opened no incident goes the same way; the day is empty again.
    delete_interaction(session, kept.interaction, "admin:test", "a duplicate from the PBX", now)
    session.commit()
    session.expire_all()
    assert session.scalars(select(SurveySession.id)).all() == []
    assert verify(session, day, day, zone) == []
    assert service.operators_report(session, flt, settings) == []
