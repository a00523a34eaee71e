"""Call-back surveys through the call centre's PBX: the gateway registers there with digest
authentication and places the survey's call through it; SIPp plays the PBX on loopback."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.db import utcnow
from gateway.interactions import CustomerInput, InteractionInput, OperatorInput, record_interaction
from gateway.models import InteractionChannel, SurveyAttempt, SurveySession, SurveyStatus
from gateway.sip.handover import held_by, instance_of
from gateway.sip.store import SurveyStore
from gateway.surveys import scores_of
from gateway.voice import callback_surveys
from tests.conftest import empty_database, make_test_app
from tests.sip.conftest import (
    WAIT_SECONDS,
    GatewayThread,
    RtpPeer,
    Sipp,
    free_port,
    sip_settings,
)

CUSTOMER = "+79161234567"
ACCOUNT = {"user": "survey-gw", "password": "k7-Lm2pQ"}
FIVE_SCORES = {"overall": 5, "cost": 4, "speed": 3, "politeness": 5, "quality": 4}


@dataclass(frozen=True)
class CallbackRecord:
    status: str
    scores: dict[str, int]
    outcomes: list[str | None]
    attempts: int


def queue_callback(app: Flask, external_id: str) -> int:
    """A call-back survey claimed by the dispatcher, and its send task run as a worker runs
    it: with SIP_REGISTRAR set, the try is reserved and queued for the SIP agent."""
    settings = app.config["SETTINGS"]
    database = app.extensions["database"]
    with app.app_context(), database.session_scope() as session:
        interaction, _ = record_interaction(
            session,
            InteractionInput(
                external_id=external_id,
                channel=InteractionChannel.REQUEST,
                ended_at=utcnow(),
                operator=OperatorInput("op-9"),
                customer=CustomerInput(phone=CUSTOMER),
                survey="ivr_callback",
            ),
            settings,
            utcnow(),
        )
        survey = interaction.survey
        assert survey is not None
        survey.status = SurveyStatus.SENDING  # as the dispatcher hands it over
        survey.claimed_until = utcnow() + timedelta(minutes=5)
        session.flush()
        survey_id = survey.id

    def no_twilio(_settings: Any) -> Any:
        raise AssertionError("a call-back through the PBX must not reach Twilio")

    with app.app_context():
        queued = callback_surveys.place_survey_call(
            database.session_scope, settings, survey_id, utcnow, no_twilio
        )
    assert queued is not None
    return survey_id


def callback_record(app: Flask, survey_id: int) -> CallbackRecord:
    with app.app_context():
        session = app.extensions["database"].session()
        try:
            survey = session.get(SurveySession, survey_id)
            assert survey is not None
            outcomes = list(
                session.scalars(
                    select(SurveyAttempt.outcome)
                    .where(SurveyAttempt.session_id == survey_id)
                    .order_by(SurveyAttempt.number)
                )
            )
            return CallbackRecord(survey.status.value, scores_of(survey), outcomes, survey.attempts)
        finally:
            session.close()


@dataclass
class Pbx:
    """SIPp listening as the PBX on `port`."""

    process: subprocess.Popen[str]
    port: int
    workdir: Path

    def finished(self) -> tuple[int, str]:
        """SIPp's exit code once it has handled its calls, and what it said."""
        try:
            output, _ = self.process.communicate(timeout=WAIT_SECONDS + 15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob("*.log"))
        return self.process.returncode, (output or "")[-3000:] + logs


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Callable[..., Pbx]]:
    """SIPp as the PBX; killed after the test if it is still running."""
    started: list[Pbx] = []

    def listen(scenario: str, calls: int, **keys: str) -> Pbx:
        port = free_port()
        workdir = tmp_path / f"pbx-{len(started)}"
        workdir.mkdir()
        process = Sipp(0, workdir).listen(scenario, port, calls, **ACCOUNT, **keys)
        started.append(Pbx(process, port, workdir))
        return started[-1]

    yield listen
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
        running.process.communicate()


def registrar_settings(port: int, **overrides: Any) -> dict[str, Any]:
    return {
        "sip_registrar": f"127.0.0.1:{port}",
        "sip_username": ACCOUNT["user"],
        "sip_password": ACCOUNT["password"],
        "twilio_auth_token": None,  # no Twilio setting at all
        **overrides,
    }


def test_the_agent_registers_with_digest_auth_and_again_before_the_binding_expires(
    start_gateway: Callable[..., GatewayThread],
    pbx: Callable[..., Pbx],
) -> None:
    registrar = pbx("registrar_digest.xml", 1)
    gateway = start_gateway(**registrar_settings(registrar.port))

    # The registrar grants 2 s and checks both REGISTERs' digest answers: SIPp exits 0.
    code, output = registrar.finished()

    assert code == 0, output
    deadline = time.monotonic() + WAIT_SECONDS
    while gateway.server.registered < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.server.registered == 2


def test_a_callback_survey_is_dialled_through_the_pbx_and_answered_with_rfc4733_keys(
    start_gateway: Callable[..., GatewayThread],
    pbx: Callable[..., Pbx],
    ear: RtpPeer,
    russian_prompts: dict[bytes, str],
) -> None:
    pbx_process = pbx("pbx_callback_54354.xml", 2, rtp_port=str(ear.port))
    gateway = start_gateway(**registrar_settings(pbx_process.port))

    survey_id = queue_callback(gateway.app, "request-70")
    code, output = pbx_process.finished()

    assert code == 0, output
    gateway.wait_until_idle()
    heard = ear.heard(russian_prompts)
    assert heard[0] == "post_call/greeting"
    assert heard[-1] == "post_call/thanks"
    record = callback_record(gateway.app, survey_id)
    assert record.scores == FIVE_SCORES
    assert record.status == "completed"
    assert record.outcomes == ["answered"]


def test_a_busy_line_is_acknowledged_and_the_callback_tried_again_later(
    start_gateway: Callable[..., GatewayThread], pbx: Callable[..., Pbx]
) -> None:
    pbx_process = pbx("pbx_busy_486.xml", 2)
    gateway = start_gateway(**registrar_settings(pbx_process.port))

    survey_id = queue_callback(gateway.app, "request-71")
    code, output = pbx_process.finished()

    assert code == 0, output  # the 486 was acknowledged
    gateway.wait_until_idle()
    record = callback_record(gateway.app, survey_id)
    assert record.outcomes == ["busy"]
    assert record.status == "scheduled"  # again after IVR_CALLBACK_RETRY_MINUTES
    assert record.attempts == 1


def test_a_restarted_agent_settles_the_callbacks_it_held_ringing_or_answered(
    database_url: str, tmp_path: Path
) -> None:
    app = make_test_app(database_url, tmp_path / "var", **sip_settings(), **registrar_settings(9))
    store = SurveyStore(app)  # no agent runs: nothing else claims the queued calls
    held = held_by(instance_of("127.0.0.1", 5060))
    try:
        ringing, answered = queue_callback(app, "request-72"), queue_callback(app, "request-73")
        dials = {d.survey_id: d for d in store.claim_dials(held, 10)}
        assert set(dials) == {ringing, answered}
        assert store.begin_callback(answered, dials[answered].provider_id) is not None
        # The agent dies here: neither call is ended. Its next start settles both.

        closed = dict(store.close_left_over(held))

        assert closed == {ringing: "scheduled", answered: "expired"}
        assert callback_record(app, ringing).outcomes == ["failed"]  # called again later
        assert callback_record(app, answered).outcomes == ["answered"]
    finally:
        database = app.extensions["database"]
        database.session.remove()
        empty_database(database.engine)
        database.dispose()


def test_an_answer_that_crosses_the_cancel_is_acknowledged_and_hung_up(
    start_gateway: Callable[..., GatewayThread], pbx: Callable[..., Pbx]
) -> None:
    pbx_process = pbx("pbx_answers_after_cancel.xml", 2)
    gateway = start_gateway(**registrar_settings(pbx_process.port, sip_ring_seconds=1.0))

    survey_id = queue_callback(gateway.app, "request-74")
    # The PBX answers 200 OK after the gateway's CANCEL; it exits 0 only after an ACK of that
    # 200 and a BYE in its dialog.
    code, output = pbx_process.finished()

    assert code == 0, output
    gateway.wait_until_idle()
    assert gateway.server._uac is not None and gateway.server._uac.late_answers == 1
    record = callback_record(gateway.app, survey_id)
    assert record.outcomes == ["no-answer"]
    assert record.status == "scheduled"  # called again after IVR_CALLBACK_RETRY_MINUTES


def proxy_authorizations(workdir: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """What pbx_proxy_auth_407.xml logged: each method's request URI and the parameters of
    its Proxy-Authorization."""
    found = {}
    for log in workdir.glob("*_logs.log"):
        for line in log.read_text().splitlines():
            match = re.match(r"(REGISTER|INVITE) (\S+) Digest (.*)", line.strip())
            if match:
                params = {
                    name: quoted or bare
                    for name, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', match[3])
                }
                found[match[1]] = (match[2], params)
    return found


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_a_pbx_that_asks_for_proxy_authentication_gets_it_on_the_register_and_the_invite(
    start_gateway: Callable[..., GatewayThread], pbx: Callable[..., Pbx]
) -> None:
    pbx_process = pbx("pbx_proxy_auth_407.xml", 2)
    gateway = start_gateway(**registrar_settings(pbx_process.port))

    survey_id = queue_callback(gateway.app, "request-75")
    # SIPp exits 0 only if the REGISTER and the INVITE after its 407s carried
    # Proxy-Authorization, and the 486 that follows was acknowledged.
    code, output = pbx_process.finished()

    assert code == 0, output
    assert gateway.server.registered == 1
    answered = proxy_authorizations(pbx_process.workdir)
    assert set(answered) == {"REGISTER", "INVITE"}
    for method, (request_uri, params) in answered.items():
        # RFC 2617 3.2.2 with qop=auth, from the nonce the PBX gave and the account's password
        ha1 = md5(f"{ACCOUNT['user']}:pbx.test:{ACCOUNT['password']}")
        ha2 = md5(f"{method}:{params['uri']}")
        expected = md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
        assert params["username"] == ACCOUNT["user"]
        assert params["realm"] == "pbx.test"
        assert params["nonce"].endswith("r1" if method == "REGISTER" else "i2")
        assert params["qop"] == "auth"
        assert params["uri"] == request_uri
        assert params["response"] == expected
    gateway.wait_until_idle()
    assert callback_record(gateway.app, survey_id).outcomes == ["busy"]
