"""The SIP voice channel end to end: SIPp hands callers over as a PBX would, on loopback."""

from __future__ import annotations

import dataclasses
import io
import logging
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.db import utcnow
from gateway.models import Answer, VoiceRecording
from gateway.privacy import anonymise_customer
from gateway.recordings import RecordingUnavailable, open_recording
from gateway.sip.call import RECORD_SILENCE_SECONDS
from ivr_flows import load_flows
from tests.sip.conftest import (
    BEEP,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    WAIT_SECONDS,
    GatewayThread,
    RtpPeer,
    Sipp,
    call_record,
    free_port,
    prompt_fingerprints,
)

FIVE_SCORES = {"overall": 5, "cost": 4, "speed": 3, "politeness": 5, "quality": 4}


def test_a_handed_over_caller_answers_with_rfc4733_keys_and_the_survey_completes(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
    russian_prompts: dict[bytes, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.sip")
    gateway = start_gateway()
    pbx = sipp(gateway)

    result = pbx.run("survey_54354.xml", ear.port, operator="op-7", interaction="hotline-42")

    assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    heard = ear.heard(russian_prompts)
    assert heard[0] == "post_call/greeting"
    assert heard[-1] == "post_call/thanks"
    gateway.wait_until_idle()
    record = call_record(gateway.app, "hotline-42")
    assert record is not None
    assert record.operator == "op-7"
    assert record.customer_phone == "+79161234567"
    assert record.scores == FIVE_SCORES
    assert record.status == "completed"
    # Every call is logged on arrival, answer and end, the caller's number masked.
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("gateway.sip")]
    assert [line.split(" ", 3)[3].split()[0] for line in lines if "*********67" in line] == [
        "from",
        "answered:",
        "ended",
    ]
    assert not [line for line in lines if "9161234567" in line]


def test_a_caller_who_hangs_up_mid_survey_keeps_the_answers_given(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
) -> None:
    gateway = start_gateway()
    pbx = sipp(gateway)

    result = pbx.run("hangup_after_two_keys.xml", ear.port, interaction="hotline-43")

    assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    gateway.wait_until_idle()
    record = call_record(gateway.app, "hotline-43")
    assert record is not None
    assert record.scores == {"overall": 5, "cost": 4}
    assert record.status == "partial"


def test_silence_and_a_wrong_key_are_asked_again_as_on_twilio(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
    russian_prompts: dict[bytes, str],
) -> None:
    post_call = load_flows()["post_call"]
    # Two seconds of silence are a timeout here (the flow's own is 6 s).
    quick = {"post_call": dataclasses.replace(post_call, gather_timeout_seconds=2)}
    gateway = start_gateway(flows=quick)
    pbx = sipp(gateway)
    caller = pbx.start("answered_then_gateway_hangs_up.xml", ear.port, interaction="hotline-44")
    try:
        ear.wait_to_hear(russian_prompts, "post_call/greeting")
        ear.press("5")
        ear.wait_to_hear(russian_prompts, "post_call/q/cost")
        # silence: the question's timeout passes with no key
        ear.wait_to_hear(russian_prompts, "post_call/reprompt_rating")
        ear.press("9")  # no such score
        ear.wait_to_hear(russian_prompts, "post_call/reprompt_rating", times=2)
        for question, key in (("cost", "4"), ("speed", "3"), ("politeness", "5")):
            if question != "cost":
                ear.wait_to_hear(russian_prompts, f"post_call/q/{question}")
            ear.press(key)
        ear.wait_to_hear(russian_prompts, "post_call/q/quality")
        ear.press("4")
        ear.wait_to_hear(russian_prompts, "post_call/q/comment")
        ear.press("#")
        output, _ = caller.communicate(timeout=WAIT_SECONDS)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate()

    assert caller.returncode == 0, (output or "")[-2000:] + pbx.errors()
    heard = ear.heard(russian_prompts)
    cost_asked = heard.index("post_call/q/cost")
    assert heard[cost_asked : cost_asked + 4] == [
        "post_call/q/cost",
        "post_call/reprompt_rating",  # after the silence
        "post_call/reprompt_rating",  # after the 9
        "post_call/q/speed",
    ]
    assert heard[-1] == "post_call/thanks"
    gateway.wait_until_idle()
    record = call_record(gateway.app, "hotline-44")
    assert record is not None
    assert record.scores == FIVE_SCORES
    assert record.status == "completed"


def test_keys_by_sip_info_answer_when_the_pbx_sends_no_telephone_events(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
) -> None:
    gateway = start_gateway()
    pbx = sipp(gateway)

    result = pbx.run("info_keys_54354.xml", ear.port, interaction="hotline-45")

    assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    gateway.wait_until_idle()
    record = call_record(gateway.app, "hotline-45")
    assert record is not None
    assert record.scores == FIVE_SCORES
    assert record.status == "completed"


def test_a_call_with_no_rtp_from_the_caller_is_hung_up_and_its_survey_closed(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
) -> None:
    gateway = start_gateway(sip_rtp_timeout_seconds=1.0)
    pbx = sipp(gateway)

    # The caller sends nothing at all: the gateway's BYE ends the scenario.
    result = pbx.run("answered_then_gateway_hangs_up.xml", ear.port, interaction="hotline-46")

    assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    gateway.wait_until_idle()
    record = call_record(gateway.app, "hotline-46")
    assert record is not None
    assert record.scores == {}
    assert record.status == "expired"


def test_a_call_beyond_sip_max_calls_gets_503_with_retry_after_so_the_pbx_can_fail_over(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
    russian_prompts: dict[bytes, str],
) -> None:
    gateway = start_gateway(sip_max_calls=1)
    first = sipp(gateway).start(
        "answered_then_gateway_hangs_up.xml", ear.port, interaction="hotline-47"
    )
    try:
        ear.wait_to_hear(russian_prompts, "post_call/greeting")
        pbx = sipp(gateway)

        result = pbx.run("full_503.xml", free_port(), interaction="hotline-48")

        assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
        assert call_record(gateway.app, "hotline-48") is None
    finally:
        first.kill()
        first.communicate()


def test_a_pbx_that_prefers_pcma_hears_the_prompts_in_a_law_and_the_survey_completes(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    tone_prompts: Path,
) -> None:
    gateway = start_gateway()
    pcma_prompts = prompt_fingerprints(tone_prompts, "ru", PCMA)
    ear = RtpPeer(payload_type=PCMA)
    caller = sipp(gateway).start(
        "answered_then_gateway_hangs_up.xml",
        ear.port,
        interaction="hotline-49",
        codecs=f"{PCMA} {PCMU} {TELEPHONE_EVENT}",  # A-law first, as most European PBXs
    )
    try:
        ear.wait_to_hear(pcma_prompts, "post_call/greeting")
        for key in "54354":
            ear.press(key)
        ear.wait_to_hear(pcma_prompts, "post_call/q/comment")
        ear.press("#")
        output, _ = caller.communicate(timeout=WAIT_SECONDS)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate()
        ear.close()

    assert caller.returncode == 0, (output or "")[-2000:]
    assert ear.heard(pcma_prompts)[-1] == "post_call/thanks"
    assert ear.other_packets == 0  # not one packet of PCMU
    gateway.wait_until_idle()
    record = call_record(gateway.app, "hotline-49")
    assert record is not None
    assert record.scores == FIVE_SCORES
    assert record.status == "completed"


def test_a_voice_comment_is_recorded_after_the_tone_and_kept_until_the_customer_is_erased(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
    russian_prompts: dict[bytes, str],
) -> None:
    gateway = start_gateway()
    caller = sipp(gateway).start(
        "answered_then_gateway_hangs_up.xml", ear.port, interaction="hotline-52"
    )
    try:
        ear.wait_to_hear(russian_prompts, "post_call/greeting")
        for key in "54354":
            ear.press(key)
        ear.wait_to_hear(russian_prompts, BEEP)
        ear.speak(1.5)
        ear.press("#")
        output, _ = caller.communicate(timeout=WAIT_SECONDS)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate()

    assert caller.returncode == 0, (output or "")[-2000:]
    assert ear.heard(russian_prompts)[-1] == "post_call/thanks"
    gateway.wait_until_idle()
    app = gateway.app
    with app.app_context():
        session = app.extensions["database"].session()
        answer = session.scalar(select(Answer).where(Answer.question_key == "comment"))
        assert answer is not None and answer.recording_url is not None
        assert answer.recording_duration in (1, 2)
        url = answer.recording_url
        stream = open_recording(app.config["SETTINGS"], url, session)
        with wave.open(io.BytesIO(b"".join(stream.chunks))) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert 1.2 <= wav.getnframes() / 8000 <= 1.6 + RECORD_SILENCE_SECONDS
        survey = answer.session
        assert survey.status.value == "completed"
        customer = survey.customer
        assert customer is not None

        anonymise_customer(session, customer, utcnow())
        session.commit()

        assert session.scalar(select(func.count()).select_from(VoiceRecording)) == 0
        with pytest.raises(RecordingUnavailable):
            open_recording(app.config["SETTINGS"], url, session)
        session.close()


@pytest.mark.parametrize("spoken_seconds", [1.5, 0.0], ids=["after-speaking", "in-silence"])
def test_a_caller_who_hangs_up_during_the_voice_comment_keeps_the_answers_and_what_was_said(
    start_gateway: Callable[..., GatewayThread],
    sipp: Callable[[GatewayThread], Sipp],
    ear: RtpPeer,
    russian_prompts: dict[bytes, str],
    spoken_seconds: float,
) -> None:
    gateway = start_gateway()
    pbx = sipp(gateway)
    caller = pbx.start("caller_hangs_up_when_told.xml", ear.port, interaction="hotline-53")
    try:
        ear.wait_to_hear(russian_prompts, "post_call/greeting")
        for key in "54354":
            ear.press(key)
        ear.wait_to_hear(russian_prompts, BEEP)
        if spoken_seconds:
            ear.speak(spoken_seconds)
        pbx.hang_up()  # a BYE while the comment is being recorded
        output, _ = caller.communicate(timeout=WAIT_SECONDS)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate()

    assert caller.returncode == 0, (output or "")[-2000:] + pbx.errors()
    gateway.wait_until_idle()
    assert "post_call/thanks" not in ear.heard(russian_prompts)
    record = call_record(gateway.app, "hotline-53")
    assert record is not None
    assert record.scores == FIVE_SCORES
    app = gateway.app
    with app.app_context():
        session = app.extensions["database"].session()
        try:
            comment = session.scalar(select(Answer).where(Answer.question_key == "comment"))
            if spoken_seconds:
                # What was said is kept and answers the last question.
                assert comment is not None and comment.recording_url is not None
                assert comment.recording_duration in (1, 2)
                stream = open_recording(app.config["SETTINGS"], comment.recording_url, session)
                with wave.open(io.BytesIO(b"".join(stream.chunks))) as wav:
                    assert 1.2 <= wav.getnframes() / 8000 <= 1.6 + RECORD_SILENCE_SECONDS
            else:
                # Nothing said: no recording; hanging up at the comment is how a caller says
                # they have nothing to add, on Twilio too.
                assert comment is None
                assert session.scalar(select(func.count()).select_from(VoiceRecording)) == 0
            assert record.status == "completed"
        finally:
            session.close()
