"""The gateway as a client of the PBX: its registration, and the call-back surveys it dials.

SIP_REGISTRAR names the PBX; the agent registers there as SIP_USERNAME (digest
authentication on 401/407, re-REGISTER at 90 % of the interval the PBX grants, again a minute
after a refusal) and sends each call-back survey's INVITE through it, answering its
challenge with the same credentials. aiosipua's UAC does the transactions; this adds what it
leaves out over UDP: the ACK of a final non-2xx answer (RFC 3261 17.1.1.3), without which a
PBX re-sends its 401/407/486 until its timer gives up, the re-sending of an INVITE or
REGISTER that got no answer (17.1.1.2, 17.1.2.2), without which one lost packet loses a try,
and the end of a call answered as we cancelled it: a 200 OK that crossed our CANCEL is ACKed
and the call hung up with BYE (9.1, 15), or the PBX would hold a silent line open until its
own timers end it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiosipua import (
    DialogState,
    OutgoingCall,
    SipRequest,
    SipResponse,
    SipUAC,
    TransactionState,
    parse_address,
    parse_sdp,
    stringify_uri,
)
from aiosipua.sdp import SdpMessage
from aiosipua.transaction import T1, T2
from aiosipua.uac_responses import _send_ack

from gateway.sip.media import TELEPHONE_EVENT

logger = logging.getLogger(__name__)

REGISTER_RETRY_SECONDS = 60.0  # after a refused or unanswered REGISTER

# What a final answer to a call-back's INVITE means for the survey (as Twilio's call statuses).
BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480, 487})
REFUSED_US = frozenset({401, 403, 407})  # the gateway's own account: not the customer's fault
TIMER_B = 64 * T1  # a request unanswered this long is given up (RFC 3261 Timer B and F)
RESENT = ("INVITE", "REGISTER")


def outcome_of(code: int) -> str:
    """The try's outcome for a final answer `code` to its INVITE."""
    if code in BUSY:
        return "busy"
    if code in NO_ANSWER:
        return "no-answer"
    if code in REFUSED_US:
        return "refused"
    return "failed"


def _branch(message: SipRequest | SipResponse) -> str | None:
    vias = message.via
    return vias[0].branch if vias else None


class SurveyUAC(SipUAC):
    """aiosipua's UAC, acknowledging every final non-2xx answer to an INVITE, and ending a
    call answered after we cancelled it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Calls we CANCELled, by Call-ID, with when: a 200 OK may cross the CANCEL until
        # the INVITE's transaction times out (Timer B).
        self.cancelled: dict[str, tuple[OutgoingCall, float]] = {}
        self.late_answers = 0  # calls answered after our CANCEL, acknowledged and hung up

    def cancel(self, call: OutgoingCall) -> None:
        """CANCEL a ringing call, remembering it for an answer that crosses the CANCEL."""
        now = time.monotonic()
        for call_id, (_call, at) in list(self.cancelled.items()):
            if now - at > TIMER_B:
                del self.cancelled[call_id]
        if call.cancel(self) is not None:
            self.cancelled[call.call_id] = (call, now)

    def handle_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        cseq = response.cseq
        if (
            cseq is not None
            and cseq.method.upper() == "INVITE"
            and 200 <= response.status_code < 300
            and response.call_id in self.cancelled
        ):
            self._end_late_answer(response)
            return
        if cseq is not None and cseq.method.upper() == "INVITE" and response.status_code >= 300:
            self._ack_final(response, addr)
            call = self.get_call(response.call_id or "")
            if call is None or _branch(call.invite) != _branch(response):
                return  # a repeated answer to a transaction settled already: ACKed again
        super().handle_response(response, addr)

    async def resend_unanswered(self, next_hop: tuple[str, int]) -> None:
        """Re-send INVITEs and REGISTERs to `next_hop` while no answer (not even 100 Trying)
        came: after T1, then twice as long each time (REGISTER: at most T2), for TIMER_B."""
        due: dict[tuple[str, str], tuple[float, float]] = {}
        while True:
            await asyncio.sleep(T1 / 2)
            now = time.monotonic()
            waiting = {
                key: txn
                for key, txn in self.transactions.client_transactions.items()
                if txn.method in RESENT
                and txn.state is TransactionState.TRYING
                and txn.request is not None
                and now - txn.updated_at < TIMER_B
            }
            for key in set(due) - set(waiting):
                del due[key]
            for key, txn in waiting.items():
                next_at, interval = due.get(key, (txn.updated_at + T1, T1))
                if now < next_at or txn.request is None:
                    continue
                self.transport.send(txn.request, next_hop)
                interval = interval * 2 if txn.method == "INVITE" else min(interval * 2, T2)
                due[key] = (now + interval, interval)

    def _end_late_answer(self, response: SipResponse) -> None:
        """A 200 OK to an INVITE we cancelled: ACK it (again for each re-sent 200) and, the
        first time, hang up with BYE in the dialog it made (RFC 3261 15: a UAC that wants no
        session after a 2xx must still ACK it, then send BYE)."""
        call, _at = self.cancelled[response.call_id or ""]
        dialog = call.dialog
        to = response.to_addr
        if to is not None and to.tag and not dialog.remote_tag:
            dialog.remote_tag = to.tag
        contacts = response.contact
        if contacts:  # the 2xx's Contact is the dialog's remote target (RFC 3261 12.1.2)
            dialog.remote_target = stringify_uri(contacts[0].uri)
        _send_ack(self, call, response)
        if dialog.metadata.get("late_bye"):
            return
        dialog.metadata["late_bye"] = "sent"
        dialog.state = DialogState.CONFIRMED  # the 2xx made the dialog; BYE ends it
        self._send_in_dialog(dialog, "BYE", call.remote_addr)
        dialog.terminate()
        self.late_answers += 1
        logger.info(
            "call %s was answered after it was cancelled: acknowledged and hung up",
            (response.call_id or "")[:24],
        )

    def _ack_final(self, response: SipResponse, addr: tuple[str, int]) -> None:
        """ACK in the INVITE's transaction: its Via (branch), From, Call-ID and CSeq number,
        the answer's To (with the tag); the request URI is the INVITE's, which is To's URI."""
        to = response.get_header("To") or ""
        cseq = response.cseq
        if cseq is None:
            return
        try:
            uri = stringify_uri(parse_address(to).uri)
        except ValueError:
            return
        ack = SipRequest(method="ACK", uri=uri)
        top_via = response.headers.get_first("via")
        if top_via:
            ack.headers.append("Via", top_via)
        for name in ("From", "To", "Call-ID"):
            value = response.get_header(name)
            if value:
                ack.headers.set_single(name, value)
        ack.headers.set_single("CSeq", f"{cseq.seq} ACK")
        ack.headers.set_single("Max-Forwards", "70")
        self.transport.send(ack, addr)


def sdp_offer(address: str, port: int) -> SdpMessage:
    """Our offer for a call-back: PCMU, PCMA and RFC 4733 events on `port`."""
    session = str(int(time.time()))
    kind = "IP6" if ":" in address else "IP4"
    return parse_sdp(
        "v=0\r\n"
        f"o=- {session} {session} IN {kind} {address}\r\n"
        "s=survey-gateway\r\n"
        f"c=IN {kind} {address}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 {TELEPHONE_EVENT}\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        f"a=rtpmap:{TELEPHONE_EVENT} telephone-event/8000\r\n"
        f"a=fmtp:{TELEPHONE_EVENT} 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def dial_uri(phone: str, domain: str) -> str:
    """The customer's number as the PBX is asked to dial it: E.164 with '+' at the domain."""
    return f"sip:{phone}@{domain}"
