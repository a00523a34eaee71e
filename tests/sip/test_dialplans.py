"""The Asterisk and FreeSWITCH examples of docs/telephony.md are the PBX's side of the contract:
they must send what the gateway reads, and the SIPp scenarios that play the PBX send the same."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from aiosipua import SipMessage

from gateway.sip.handover import CALL_ID_HEADER, OPERATOR_HEADER, handed_over_call
from ivr_flows import load_flows
from tests.sip.conftest import SCENARIOS

DOC = Path(__file__).parents[2] / "docs" / "telephony.md"
HANDOVER_HEADERS = {OPERATOR_HEADER, CALL_ID_HEADER}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _asterisk_dialplan() -> str:
    return next(b for b in _blocks("") if "[hotline]" in b)


def _freeswitch_dialplan() -> str:
    return _blocks("xml")[0]


def test_the_asterisk_dialplan_sets_the_headers_the_gateway_reads() -> None:
    dialplan = _asterisk_dialplan()

    assert set(re.findall(r"PJSIP_HEADER\(add,([\w-]+)\)", dialplan)) == HANDOVER_HEADERS
    assert "Dial(PJSIP/${OPERATOR},60,g)" in dialplan  # goes on after the operator hangs up
    flow = re.search(r"sip:(\w+)@", dialplan)
    assert flow is not None and flow.group(1) in load_flows()


def test_the_freeswitch_dialplan_sets_the_headers_the_gateway_reads() -> None:
    dialplan = _freeswitch_dialplan()

    assert set(re.findall(r"sip_h_([\w-]+)=", dialplan)) == HANDOVER_HEADERS
    assert "hangup_after_bridge=false" in dialplan
    flow = re.search(r"sofia/external/(\w+)@", dialplan)
    assert flow is not None and flow.group(1) in load_flows()


def test_every_sipp_scenario_hands_the_call_over_as_the_dialplans_do() -> None:
    # pbx_* and registrar_* play the PBX the gateway registers at and calls out through.
    handing_over = [
        s for s in SCENARIOS.glob("*.xml") if not s.name.startswith(("pbx_", "registrar_"))
    ]
    assert len(handing_over) >= 8
    for scenario in handing_over:
        invite = re.search(r"<!\[CDATA\[\s*(INVITE .*?)\]\]>", scenario.read_text(), re.S)
        assert invite is not None, scenario.name
        headers = set(re.findall(r"^\s*(X-[\w-]+):", invite.group(1), re.M))
        assert headers == HANDOVER_HEADERS, scenario.name


def test_an_invite_as_the_dialplans_send_it_names_operator_call_flow_and_customer() -> None:
    raw = (
        "INVITE sip:post_call@192.0.2.10:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
        'From: "Ivan" <sip:89161234567@192.0.2.1>;tag=a\r\n'
        "To: <sip:post_call@192.0.2.10>\r\n"
        "Call-ID: abc@192.0.2.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "X-Operator: op-17\r\n"
        "X-Call-Id: 1700000000.42\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    call = handed_over_call(SipMessage.parse(raw), "192.0.2.10:5060")  # type: ignore[arg-type]

    assert (call.operator, call.external_id, call.flow, call.caller) == (
        "op-17",
        "1700000000.42",
        "post_call",
        "89161234567",
    )
    # The call is named after the SIP process holding it: a restart closes its own calls.
    assert call.provider_id.startswith("sip:192.0.2.10:5060/")
    other = SipMessage.parse(raw.replace("abc@", "abd@"))
    assert call.provider_id != handed_over_call(other, "192.0.2.10:5060").provider_id  # type: ignore[arg-type]


def test_a_pbx_without_headers_may_name_them_in_the_request_uri() -> None:
    raw = (
        "INVITE sip:quick_csat@192.0.2.10;operator=op-3;interaction=C-9;lang=en SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-2\r\n"
        "From: <sip:anonymous@anonymous.invalid>;tag=b\r\n"
        "To: <sip:quick_csat@192.0.2.10>\r\n"
        "Call-ID: def@192.0.2.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "P-Asserted-Identity: <sip:+79161234567@192.0.2.1>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    call = handed_over_call(SipMessage.parse(raw), "192.0.2.10:5060")  # type: ignore[arg-type]

    assert (call.operator, call.external_id, call.flow, call.lang, call.caller) == (
        "op-3",
        "C-9",
        "quick_csat",
        "en",
        "+79161234567",
    )


def test_the_sip_channel_imports_the_core_only_never_another_channel() -> None:
    package = Path(__file__).parents[2] / "gateway" / "sip"
    imported: set[str] = set()
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    channels = ("gateway.voice", "sms", "gateway.twilio_client", "gateway.twilio_inbound")
    assert not [name for name in imported if name.startswith(channels)]
    assert "gateway.phone_surveys" in imported
