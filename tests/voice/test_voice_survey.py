"""The post-call IVR survey over HTTP, with webhooks signed and shaped as Twilio sends them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import (
    Answer,
    Incident,
    Interaction,
    SurveySession,
    SurveyStatus,
    WebhookReceipt,
)
from tests.conftest import PUBLIC_BASE_URL
from tests.voice.conftest import CALLER, HOTLINE, Call, new_call_sid, query_of

RATINGS = ["overall", "cost", "speed", "politeness", "quality"]


def answers(session: Session, call: Call) -> dict[str, int | None]:
    survey = survey_of(session, call)
    rows = session.scalars(select(Answer).where(Answer.session_id == survey.id)).all()
    return {a.question_key: a.value for a in rows}


def survey_of(session: Session, call: Call) -> SurveySession:
    survey = session.scalar(
        select(SurveySession)
        .where(SurveySession.provider_id == call.call_sid)
        .execution_options(populate_existing=True)
    )
    assert survey is not None
    return survey


def gather(call: Call) -> Any:
    assert call.twiml is not None
    found = call.twiml.find("Gather")
    assert found is not None, call.bodies[-1]
    return found


def test_whole_flow_records_every_answer_and_the_api_shows_scores(
    make_call: Callable[..., Call], client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    call = make_call()
    response = call.start("operator=op-7&interaction=pbx-1001")
    assert response.status_code == 200
    first = gather(call)
    assert first.attrib["input"] == "dtmf"
    assert first.attrib["numDigits"] == "1"
    assert first.attrib["timeout"] == "6"
    assert first.attrib["actionOnEmptyResult"] == "true"
    assert query_of(first.attrib["action"])["q"] == "overall"
    assert first.attrib["action"].startswith(f"{PUBLIC_BASE_URL}/voice/survey/step?")
    # greeting and question play inside the Gather, so the caller may answer during them
    assert [child.tag for child in first] == ["Play", "Play"]
    assert first[0].text == f"{PUBLIC_BASE_URL}/audio/ru/post_call/greeting.wav"
    assert first[1].text == f"{PUBLIC_BASE_URL}/audio/ru/post_call/q/overall.wav"

    for key, digit in zip(RATINGS, "54345", strict=True):
        assert query_of(call.action)["q"] == key
        assert call.press(digit).status_code == 200
    # the comment: a prompt, then <Record> with a beep, # to finish, 60 s at most
    assert call.verbs() == ["Play", "Record", "Redirect"]
    record = call.twiml.find("Record")  # type: ignore[union-attr]
    assert record is not None
    assert record.attrib["maxLength"] == "60"
    assert record.attrib["finishOnKey"] == "#"
    assert record.attrib["playBeep"] == "true"
    call.record("https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1", 12)
    assert call.verbs() == ["Play", "Hangup"]
    assert call.heard() == [f"{PUBLIC_BASE_URL}/audio/ru/post_call/thanks.wav"]
    assert call.status("completed").status_code == 200

    found = client.get(
        "/api/v1/interactions",
        query_string={"channel": "call", "external_id": "pbx-1001"},
        headers=auth,
    )
    assert found.status_code == 200
    (item,) = found.get_json()["items"]
    assert item["survey"]["status"] == "completed"
    assert item["survey"]["channel"] == "ivr"
    assert item["survey"]["kind"] == "post_call"
    assert item["scores"] == {"overall": 5, "cost": 4, "speed": 3, "politeness": 4, "quality": 5}
    assert item["operator"]["external_id"] == "op-7"
    assert item["customer"]["phone"] == CALLER

    comment = session.scalar(select(Answer).where(Answer.question_key == "comment"))
    assert comment is not None
    assert comment.recording_url is not None and comment.recording_url.endswith("/RE1")
    assert comment.recording_duration == 12


def test_each_answer_is_committed_as_it_arrives_and_a_hangup_keeps_them(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    call.press("2")
    call.press("4")
    assert answers(session, call) == {"overall": 2, "cost": 4}
    call.status("completed")
    survey = survey_of(session, call)
    assert survey.status is SurveyStatus.PARTIAL
    assert survey.finished_at is not None
    # a low overall score opened an incident for the operator
    assert session.scalar(select(Incident).where(Incident.session_id == survey.id)) is not None


def test_a_hangup_at_the_optional_comment_completes_the_survey(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    for digit in "45454":
        call.press(digit)
    assert call.twiml is not None and call.twiml.find("Record") is not None
    call.status("completed")
    assert survey_of(session, call).status is SurveyStatus.COMPLETED
    assert "comment" not in answers(session, call)


def test_a_comment_recorded_as_the_caller_hangs_up_is_kept_after_the_status_callback(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    for digit in "45454":
        call.press(digit)
    action = call.action
    call.status("completed")  # Twilio's status callback overtakes the <Record> action
    call.post(
        action,
        {
            "RecordingUrl": "https://api.twilio.com/x/Recordings/RE9",
            "RecordingDuration": "7",
            "Digits": "hangup",
        },
    )
    comment = session.scalar(select(Answer).where(Answer.question_key == "comment"))
    assert comment is not None and comment.recording_duration == 7
    assert survey_of(session, call).status is SurveyStatus.COMPLETED


def test_a_hangup_before_any_answer_expires_the_survey(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    call.status("completed")
    assert survey_of(session, call).status is SurveyStatus.EXPIRED


def test_wrong_keys_reprompt_twice_then_skip_the_question(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    step_urls = []
    for key in ("9", "*"):
        call.press(key)
        step_urls.append(call.action)
        assert query_of(call.action)["q"] == "overall"
        assert call.heard() == [f"{PUBLIC_BASE_URL}/audio/ru/post_call/reprompt_rating.wav"]
    assert len(set(step_urls)) == 2  # each try has its own step: retries stay recognisable
    call.press("#")
    assert query_of(call.action)["q"] == "cost"
    assert answers(session, call) == {"overall": None}
    skipped = session.scalar(select(Answer).where(Answer.question_key == "overall"))
    assert skipped is not None and skipped.raw_input == "#"


def test_silence_reprompts_then_skips_and_the_flow_goes_on(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    call.press("5")
    call.silence()
    assert query_of(call.action)["q"] == "cost"
    call.silence()
    call.silence()
    assert query_of(call.action)["q"] == "speed"
    assert answers(session, call) == {"overall": 5, "cost": None}


def test_a_retried_webhook_records_one_answer_and_gets_the_same_twiml(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    first_start = call.start()
    again = call.start()
    assert again.data == first_start.data
    action = call.action
    first = call.post(action, {"Digits": "4"})
    retry = call.post(action, {"Digits": "4"})
    assert retry.status_code == 200
    assert retry.data == first.data
    survey = survey_of(session, call)
    assert answers(session, call) == {"overall": 4}
    assert survey.state == {"index": 1, "reprompts": 0, "pending": None, "step": 1}
    receipts = session.scalar(
        select(func.count(WebhookReceipt.id)).where(WebhookReceipt.provider_id == call.call_sid)
    )
    assert receipts == 2


def test_a_retry_of_an_earlier_step_after_the_next_one_gets_its_stored_answer(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    first_action = call.action
    first = call.post(first_action, {"Digits": "4"})
    call.press("2")  # the next question is answered
    late_retry = call.post(first_action, {"Digits": "5"})  # Twilio's retry of the first
    assert late_retry.data == first.data
    assert answers(session, call) == {"overall": 4, "cost": 2}
    assert survey_of(session, call).state["index"] == 2


def test_a_retry_in_a_call_begun_before_steps_were_numbered_gets_its_stored_answer(
    make_call: Callable[..., Call], session: Session
) -> None:
    """A call in progress while the gateway is upgraded: its position has no step number."""
    call = make_call()
    call.start()
    action = call.action
    first = call.post(action, {"Digits": "4"})
    survey = survey_of(session, call)
    survey.state = {k: v for k, v in (survey.state or {}).items() if k != "step"}
    session.commit()
    retry = call.post(action, {"Digits": "5"})
    assert retry.data == first.data
    assert answers(session, call) == {"overall": 4}
    assert survey_of(session, call).state["index"] == 1


@pytest.mark.parametrize(
    "signature", ["", "forged-signature", "signed-with-another-token"], ids=str
)
def test_forged_or_missing_signatures_get_403_and_record_nothing(
    make_call: Callable[..., Call], session: Session, signature: str
) -> None:
    call = make_call()
    kwargs: dict[str, Any] = (
        {"signed": False}
        if signature == ""
        else (
            {"token": "not-the-auth-token"}
            if signature == "signed-with-another-token"
            else {"signature": signature}
        )
    )
    response = call.post(
        f"{PUBLIC_BASE_URL}/voice/survey?operator=op-1", {"DialCallStatus": "completed"}, **kwargs
    )
    assert response.status_code == 403
    assert session.scalar(select(func.count(Interaction.id))) == 0
    assert session.scalar(select(func.count(SurveySession.id))) == 0


def test_a_forged_step_changes_nothing(make_call: Callable[..., Call], session: Session) -> None:
    call = make_call()
    call.start()
    response = call.post(call.action, {"Digits": "5"}, signature="forged")
    assert response.status_code == 403
    assert answers(session, call) == {}
    # a status callback with a tampered body is refused too
    response = call.post(
        f"{PUBLIC_BASE_URL}/voice/status", {"CallStatus": "completed"}, signature="forged"
    )
    assert response.status_code == 403
    assert survey_of(session, call).status is SurveyStatus.ACTIVE


@pytest.mark.parametrize("dial_status", ["no-answer", "busy", "failed", "canceled"])
def test_a_caller_who_never_reached_the_operator_is_not_surveyed(
    make_call: Callable[..., Call], session: Session, dial_status: str
) -> None:
    call = make_call()
    call.start("operator=op-1&interaction=pbx-9", dial_status=dial_status)
    assert call.verbs() == ["Hangup"]
    interaction = session.scalar(select(Interaction).where(Interaction.external_id == "pbx-9"))
    assert interaction is not None
    assert interaction.operator_id is None  # nothing recorded about the operator
    assert interaction.disposition == f"operator_{dial_status}"
    assert session.scalar(select(func.count(SurveySession.id))) == 0


def test_answered_dial_status_starts_the_survey(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start(dial_status="answered")
    assert call.twiml is not None and call.twiml.find("Gather") is not None


def test_the_interaction_is_the_parent_call_without_an_interaction_parameter(
    make_call: Callable[..., Call], session: Session
) -> None:
    parent = new_call_sid()
    call = make_call(parent_call_sid=parent)
    call.start("operator=op-2")
    interaction = session.scalar(select(Interaction))
    assert interaction is not None
    assert interaction.external_id == parent
    assert interaction.channel.value == "call"

    plain = make_call()
    plain.start("operator=op-2")
    assert (
        session.scalar(select(Interaction).where(Interaction.external_id == plain.call_sid))
        is not None
    )


def test_an_interaction_posted_by_the_pbx_is_completed_not_duplicated(
    make_call: Callable[..., Call], client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    posted = client.post(
        "/api/v1/interactions",
        headers=auth,
        json={
            "external_id": "pbx-42",
            "channel": "call",
            "ended_at": "2026-11-23T10:00:00+03:00",
            "operator": {"external_id": "op-9", "name": "Anna"},
            "customer": {"phone": "+79160000042", "language": "en"},
        },
    )
    assert posted.status_code == 201, posted.get_json()
    call = make_call(caller="+79160000042")
    call.start("operator=op-other&interaction=pbx-42&lang=ru")
    # the customer's language wins over the URL's
    assert gather(call)[0].text == f"{PUBLIC_BASE_URL}/audio/en/post_call/greeting.wav"
    assert session.scalar(select(func.count(Interaction.id))) == 1
    interaction = session.scalar(select(Interaction))
    assert interaction is not None and interaction.operator is not None
    assert interaction.operator.external_id == "op-9"
    assert interaction.survey is not None and interaction.survey.language == "en"


def test_lang_parameter_then_default_language(
    make_call: Callable[..., Call], session: Session
) -> None:
    english = make_call(caller="+79160000001")
    english.start("operator=op-1&lang=en")
    assert survey_of(session, english).language == "en"
    default = make_call(caller="+79160000002")
    default.start("operator=op-1&lang=xx")
    assert survey_of(session, default).language == "ru"


def test_an_outbound_leg_surveys_the_called_number(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call(caller=HOTLINE, called="8 916 555-44-33", direction="outbound-api")
    call.start("operator=op-1", dial_status=None)
    interaction = session.scalar(select(Interaction))
    assert interaction is not None and interaction.customer is not None
    assert interaction.customer.phone == "+79165554433"


def test_an_anonymous_caller_is_surveyed_without_a_customer(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call(caller="anonymous")
    call.start()
    call.press("5")
    interaction = session.scalar(select(Interaction))
    assert interaction is not None and interaction.customer_id is None
    assert answers(session, call) == {"overall": 5}


def test_one_survey_per_interaction_a_second_call_is_not_surveyed_again(
    make_call: Callable[..., Call], session: Session
) -> None:
    first = make_call()
    first.start("operator=op-1&interaction=pbx-5")
    second = make_call()
    second.start("operator=op-1&interaction=pbx-5")
    assert second.verbs() == ["Hangup"]
    assert session.scalar(select(func.count(SurveySession.id))) == 1


def test_a_step_of_another_call_is_refused(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    intruder = make_call()
    intruder.post(call.action, {"Digits": "1"})
    assert intruder.verbs() == ["Hangup"]
    assert answers(session, call) == {}


def test_the_quick_flow_needs_no_code(make_call: Callable[..., Call], session: Session) -> None:
    call = make_call()
    call.start("operator=op-1&flow=quick_csat&lang=en")
    assert gather(call)[1].text == f"{PUBLIC_BASE_URL}/audio/en/quick_csat/q/overall.wav"
    call.press("4")
    assert call.verbs() == ["Play", "Hangup"]
    survey = survey_of(session, call)
    assert survey.status is SurveyStatus.COMPLETED
    assert survey.flow == "quick_csat"


class TestNpsOverThePhone:
    def _to_nps(self, call: Call) -> None:
        call.start("operator=op-1&flow=post_call_nps&lang=en")
        for digit in "54345":
            call.press(digit)

    def test_two_digits_ended_by_pound_are_read_back_before_they_are_stored(
        self, make_call: Callable[..., Call], session: Session
    ) -> None:
        call = make_call()
        self._to_nps(call)
        nps = gather(call)
        assert nps.attrib["numDigits"] == "2"
        assert nps.attrib["finishOnKey"] == "#"
        assert nps.attrib["timeout"] == "4"
        call.press("10")
        confirm = gather(call)
        assert confirm.attrib["numDigits"] == "1"
        assert call.heard() == [f"{PUBLIC_BASE_URL}/audio/en/post_call_nps/confirm/10.wav"]
        assert "nps" not in answers(session, call)
        call.press("1")
        assert call.verbs()[-1] == "Hangup"
        assert answers(session, call)["nps"] == 10
        assert survey_of(session, call).status is SurveyStatus.COMPLETED

    def test_two_re_enters_the_score(
        self, make_call: Callable[..., Call], session: Session
    ) -> None:
        call = make_call()
        self._to_nps(call)
        call.press("7")  # one digit then a pause: Twilio submits "7"
        call.press("2")
        assert call.heard() == [f"{PUBLIC_BASE_URL}/audio/en/post_call_nps/q/nps.wav"]
        call.press("9")
        call.press("1")
        assert answers(session, call)["nps"] == 9

    def test_without_recordings_the_read_back_says_the_number_in_words(
        self, make_call: Callable[..., Call], tmp_path: Path, app: Flask
    ) -> None:
        without_recordings(app, tmp_path)
        call = make_call()
        call.start("operator=op-1&flow=post_call_nps&lang=ru")
        say = gather(call).find("Say")
        assert say is not None
        assert say.attrib == {"voice": "Polly.Tatyana", "language": "ru-RU"}
        for digit in "54345":
            call.press(digit)
        call.press("10")
        assert call.heard()[0].startswith("Вы ввели десять.")


def without_recordings(app: Flask, tmp_path: Path) -> None:
    """Point the gateway at an empty audio folder, so every prompt falls back to <Say>."""
    app.config["SETTINGS"] = dataclasses.replace(
        app.config["SETTINGS"], audio_dir=tmp_path / "no-recordings"
    )


def test_the_survey_says_the_text_where_no_recording_exists(
    make_call: Callable[..., Call], app: Flask, tmp_path: Path
) -> None:
    without_recordings(app, tmp_path)
    call = make_call()
    call.start("operator=op-1&lang=en")
    says = gather(call).findall("Say")
    assert [s.attrib["voice"] for s in says] == ["Polly.Joanna", "Polly.Joanna"]
    assert says[0].attrib["language"] == "en-US"
    assert says[1].text is not None and says[1].text.startswith("How satisfied are you")


def test_a_silent_comment_is_skipped_and_the_survey_completes(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start()
    for digit in "55555":
        call.press(digit)
    redirect = call.twiml.find("Redirect")  # type: ignore[union-attr]
    assert redirect is not None and redirect.text == call.action
    call.post(redirect.text, {})  # nothing recorded: Twilio follows the <Redirect>
    assert call.verbs()[-1] == "Hangup"
    assert survey_of(session, call).status is SurveyStatus.COMPLETED
    assert answers(session, call)["comment"] is None


def test_status_callbacks_after_completion_change_nothing(
    make_call: Callable[..., Call], session: Session
) -> None:
    call = make_call()
    call.start("operator=op-1&flow=quick_csat")
    call.press("5")
    call.status("completed")
    call.status("completed")
    assert survey_of(session, call).status is SurveyStatus.COMPLETED
