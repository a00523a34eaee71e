"""Calls the gateway refuses, and the keys it reads from SIP INFO bodies and SDP offers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiosipua import SipMessage, parse_sdp

from gateway.db import utcnow
from gateway.interactions import CustomerInput, upsert_customer
from gateway.optouts import opt_out_phone
from gateway.sip.server import dtmf_from_info, dtmf_payload_type
from tests.sip.conftest import GatewayThread, Sipp, call_record, free_port


def test_an_offer_without_g711_is_refused_with_488(
    start_gateway: Callable[..., GatewayThread], sipp: Callable[[GatewayThread], Sipp]
) -> None:
    gateway = start_gateway()
    pbx = sipp(gateway)

    result = pbx.run("codec_488.xml", free_port(), interaction="hotline-50")

    assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    assert call_record(gateway.app, "hotline-50") is None


def test_a_caller_who_opted_out_is_declined_and_asked_nothing(
    start_gateway: Callable[..., GatewayThread], sipp: Callable[[GatewayThread], Sipp]
) -> None:
    gateway = start_gateway()
    app = gateway.app
    with app.app_context(), app.extensions["database"].session_scope() as session:
        upsert_customer(session, CustomerInput(phone="+79161234567"), app.config["SETTINGS"])
        session.flush()
        opt_out_phone(session, "+79161234567", "sms:STOP", utcnow())
    pbx = sipp(gateway)

    result = pbx.run("declined_603.xml", free_port(), interaction="hotline-51")

    assert result.returncode == 0, result.stdout[-2000:] + pbx.errors()
    gateway.wait_until_idle()
    record = call_record(app, "hotline-51")
    assert record is not None  # the hotline call is recorded, with its operator
    assert record.operator == "op-1"
    assert record.status is None  # but no survey


def _info(content_type: str, body: str) -> SipMessage:
    raw = (
        "INFO sip:post_call@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-i\r\n"
        "From: <sip:pbx@127.0.0.1>;tag=a\r\nTo: <sip:post_call@127.0.0.1>;tag=b\r\n"
        f"Call-ID: i@127.0.0.1\r\nCSeq: 3 INFO\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    return SipMessage.parse(raw)


@pytest.mark.parametrize(
    ("content_type", "body", "key"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", "signal= #\r\n", "#"),
        ("application/dtmf", "7", "7"),
        ("application/dtmf-relay", "Duration=160\r\n", None),
        ("text/plain", "5", None),
    ],
)
def test_keys_are_read_from_the_info_bodies_pbxs_send(
    content_type: str, body: str, key: str | None
) -> None:
    assert dtmf_from_info(_info(content_type, body)) == key  # type: ignore[arg-type]


def test_the_answer_uses_the_telephone_event_payload_type_the_pbx_offered() -> None:
    offer = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:96 telephone-event/8000\r\n"
    )

    assert dtmf_payload_type(offer) == 96
