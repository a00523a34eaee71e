"""The SIP user agent: admits calls from the PBX, answers them, runs their survey.

Built on aiosipua (SIP messages, transactions, dialogs over asyncio) and aiortp (RTP, RFC
4733 telephone-events, G.711). One process holds up to SIP_MAX_CALLS calls on one event loop;
database steps run in a small thread pool.

Admission, in order: a source address outside SIP_ALLOWED_PEERS gets 403; a call beyond
SIP_MAX_CALLS gets 486 Busy Here; an offer without PCMU or PCMA gets 488; no free RTP port
or a database failure gets 503; a caller with no survey to run (opted out, surveyed already)
gets 603 Decline. Every call is logged with the caller's number masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from aiosipua import DialogState, IncomingCall, SipRequest, SipUAS
from aiosipua import transport as aiosipua_transport
from aiosipua.rtp_bridge import CallSession
from aiosipua.sdp import SdpMessage
from aiosipua.transport import UdpSipTransport
from flask import Flask

from gateway.phone_surveys import OpenedSurvey
from gateway.phones import mask_phone
from gateway.sip.call import Conversation
from gateway.sip.handover import handed_over_call
from gateway.sip.media import (
    SUPPORTED_CODECS,
    TELEPHONE_EVENT,
    PortPool,
    prompt_root,
)
from gateway.sip.store import StepTaken, SurveyStore
from ivr_flows.engine import Given

logger = logging.getLogger(__name__)

USER_AGENT = "survey-gateway"
DB_THREADS = 8
DRAIN_SECONDS = 10.0  # at most this long to apply the keys of a call that ended
T = TypeVar("T")


@dataclass
class ActiveCall:
    """A call from its INVITE to its end."""

    incoming: IncomingCall
    label: str  # masked caller and SIP Call-ID, for the log
    started: float = field(default_factory=time.monotonic)
    port: int | None = None
    media: CallSession | None = None
    conversation: Conversation | None = None
    opened: OpenedSurvey | None = None
    provider_id: str = ""
    task: asyncio.Task[None] | None = None
    ended_by: str | None = None


class _UdpProtocol(aiosipua_transport._UdpProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiosipua asserts an asyncio.DatagramTransport here, which Python 3.11's selector
        # transport is not a subclass of; `start` below keeps the transport instead.
        pass


class UdpTransport(UdpSipTransport):
    """aiosipua's UDP transport, started without its Python 3.12-only type assertion."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=self.local_addr
        )
        self._udp_transport = transport


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def dtmf_payload_type(offer: SdpMessage) -> int:
    """The caller's telephone-event payload type: the answer must use the offered one."""
    audio = offer.audio
    if audio is not None:
        for codec in audio.codecs:
            if (codec.encoding_name or "").lower() == "telephone-event":
                return codec.payload_type
    return TELEPHONE_EVENT


def dtmf_from_info(request: SipRequest) -> str | None:
    """The key of a SIP INFO: `application/dtmf-relay` (Signal=5) or `application/dtmf` (5)."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    text = request.text.strip()
    if content_type == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                return value.strip()[:1] or None
        return None
    if content_type == "application/dtmf":
        return text[:1] or None
    return None


class SipServer:
    def __init__(self, app: Flask) -> None:
        self.store = SurveyStore(app)
        settings = self.store.settings
        if not settings.sip_listen:
            raise ValueError("SIP_LISTEN is not set")
        self.settings = settings
        self.bind_host, self.bind_port = parse_listen(settings.sip_listen)
        self.advertised = settings.sip_advertised_address or self.bind_host
        self._allowed = [ipaddress.ip_network(p, strict=False) for p in settings.sip_allowed_peers]
        self.ports = PortPool(*settings.sip_rtp_ports)
        self.calls: dict[str, ActiveCall] = {}
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        self._prompts = prompt_root(settings.audio_dir)
        self._executor = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="sip-db")
        self._uas: SipUAS | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.answered = 0
        self.refused: dict[int, int] = {}

    # --- life of the server -------------------------------------------------------------

    async def start(self) -> None:
        transport = UdpTransport(local_addr=(self.bind_host, self.bind_port))
        advertised = (self.advertised, self.bind_port)
        uas = SipUAS(transport, user_agent=USER_AGENT, advertised_addr=advertised)
        uas.on_invite = self._on_invite
        uas.on_bye = self._on_bye
        uas.on_ack_timeout = partial(self._on_gone, reason="no ACK")
        uas._handlers["INFO"] = self._on_info  # DTMF by SIP INFO (RFC 2976 + dtmf-relay)
        await uas.start()
        self._uas = uas
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_rtp())
        logger.info(
            "SIP user agent on udp %s:%s (advertised %s), up to %s calls, RTP %s-%s",
            self.bind_host,
            self.bind_port,
            self.advertised,
            self.settings.sip_max_calls,
            *self.settings.sip_rtp_ports,
        )

    async def stop(self) -> None:
        """Hang up every call (their surveys keep what they have) and stop listening."""
        for active in list(self.calls.values()):
            await self._end(active, "gateway stopping", send_bye=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._uas is not None:
            await self._uas.stop()
        self._executor.shutdown(wait=True)

    async def serve_forever(self) -> None:
        await self.start()
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stopped.set)
        try:
            await stopped.wait()
        finally:
            await self.stop()

    async def until_idle(self) -> None:
        """Return once no call is in progress (every ended call's survey closed)."""
        await self._no_calls.wait()

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # --- admission ----------------------------------------------------------------------

    def _allowed_peer(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._allowed)

    def _refuse(self, incoming: IncomingCall, code: int, why: str, label: str) -> None:
        incoming.reject(code)
        if self._uas is not None:
            self._uas._calls.pop(incoming.call_id, None)
        self.refused[code] = self.refused.get(code, 0) + 1
        logger.info("call %s refused with %s: %s", label, code, why)

    def _on_invite(self, incoming: IncomingCall) -> None:
        call = handed_over_call(incoming.invite)
        source = incoming.source_addr[0]
        caller = mask_phone(call.caller) if call.caller else "anonymous"
        label = f"{caller} [{incoming.call_id[:24]}]"
        if not self._allowed_peer(source):
            self._refuse(incoming, 403, f"{source} is not in SIP_ALLOWED_PEERS", label)
            return
        if len(self.calls) >= self.settings.sip_max_calls:
            self._refuse(incoming, 486, f"SIP_MAX_CALLS={self.settings.sip_max_calls}", label)
            return
        offer = incoming.sdp_offer
        audio = offer.audio if offer is not None else None
        if audio is None or not any(c.payload_type in SUPPORTED_CODECS for c in audio.codecs):
            self._refuse(incoming, 488, "no PCMU or PCMA offered", label)
            return
        active = ActiveCall(incoming, label, provider_id=call.provider_id)
        self.calls[incoming.call_id] = active
        self._no_calls.clear()
        logger.info(
            "call %s from %s: operator %s, hotline call %s",
            label,
            source,
            call.operator or "-",
            call.external_id,
        )
        active.task = asyncio.get_running_loop().create_task(self._run(active))

    # --- a call -------------------------------------------------------------------------

    async def _run(self, active: ActiveCall) -> None:
        incoming = active.incoming
        try:
            if not await self._answer(active):
                return
            conversation = active.conversation
            if conversation is not None:
                await conversation.run()
            await self._end(active, "survey over", send_bye=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("call %s failed", active.label)
            if incoming.dialog.state is DialogState.CONFIRMED:
                await self._end(active, "error", send_bye=True)
            else:
                self._refuse(incoming, 503, "error while answering", active.label)
                self._release(active)

    async def _answer(self, active: ActiveCall) -> bool:
        incoming = active.incoming
        try:
            opened = await self._in_thread(self.store.open, handed_over_call(incoming.invite))
        except Exception:
            logger.exception("call %s: the survey could not be opened", active.label)
            self._refuse(incoming, 503, "database unavailable", active.label)
            self._release(active)
            return False
        if active.ended_by is not None:  # CANCEL while the survey was opened
            if opened is not None:
                await self._in_thread(self.store.end, opened.survey_id, active.provider_id)
            return False
        if opened is None:
            self._refuse(incoming, 603, "no survey to run for this call", active.label)
            self._release(active)
            return False
        active.opened = opened
        media = await self._media_for(active)
        if media is None:
            await self._in_thread(self.store.end, opened.survey_id, active.provider_id)
            self._refuse(incoming, 503, "no free RTP port in SIP_RTP_PORTS", active.label)
            self._release(active)
            return False
        media.on_dtmf = lambda digit, _duration: self._key(active, digit)
        active.media = media
        active.conversation = Conversation(
            active.label,
            opened,
            media,
            media.chosen_payload_type,
            self._prompts,
            partial(self._step, active),
        )
        incoming.accept(media.sdp_answer)
        self.answered += 1
        logger.info(
            "call %s answered: survey %s (%s, %s), RTP port %s",
            active.label,
            opened.survey_id,
            opened.flow.key,
            opened.language,
            active.port,
        )
        return True

    async def _media_for(self, active: ActiveCall) -> CallSession | None:
        offer = active.incoming.sdp_offer
        if offer is None:
            return None
        for _attempt in range(3):  # a port another program holds is skipped
            port = self.ports.take()
            if port is None:
                return None
            media = CallSession(
                local_ip=self.bind_host,
                rtp_port=port,
                offer=offer,
                advertised_ip=self.advertised if self.advertised != self.bind_host else None,
                supported_codecs=list(SUPPORTED_CODECS),
                dtmf_payload_type=dtmf_payload_type(offer),
                plc=False,
            )
            try:
                await media.start()
            except OSError:
                logger.warning("RTP port %s is taken by another program; skipping it", port)
                continue
            active.port = port
            return media
        return None

    async def _step(self, active: ActiveCall, given: Given) -> StepTaken | None:
        opened = active.opened
        if opened is None:
            return None
        return await self._in_thread(self.store.give, opened.survey_id, active.provider_id, given)

    def _key(self, active: ActiveCall, digit: str) -> None:
        if active.conversation is not None and active.ended_by is None:
            active.conversation.key(digit)

    # --- the end of a call --------------------------------------------------------------

    def _on_bye(self, incoming: IncomingCall, _request: SipRequest) -> None:
        active = self.calls.get(incoming.call_id)
        if active is not None:
            asyncio.get_running_loop().create_task(self._end(active, "caller hung up"))

    def _on_gone(self, incoming: IncomingCall, reason: str) -> None:
        active = self.calls.get(incoming.call_id)
        if active is not None:
            asyncio.get_running_loop().create_task(self._end(active, reason))

    def _on_info(self, request: SipRequest, addr: tuple[str, int]) -> None:
        uas = self._uas
        if uas is None:
            return
        incoming = uas.get_call(request.call_id or "")
        active = self.calls.get(request.call_id or "")
        if incoming is None or active is None:
            uas._send_error(request, 481, "Call/Transaction Does Not Exist")
            return
        if not uas._validate_in_dialog(incoming.dialog, request):
            return
        response = incoming.dialog.create_response(request, 200, "OK")
        uas.transport.send_reply(response)
        digit = dtmf_from_info(request)
        if digit:
            self._key(active, digit)

    async def _end(self, active: ActiveCall, reason: str, *, send_bye: bool = False) -> None:
        """End a call once: stop its survey task, hang up if asked, close the survey."""
        if active.ended_by is not None:
            return
        active.ended_by = reason
        if active.conversation is not None:
            active.conversation.hang_up()
        current = asyncio.current_task()
        if active.task is not None and active.task is not current and not active.task.done():
            # Keys that came before the hang-up are applied first (each a short transaction).
            try:
                await asyncio.wait_for(asyncio.shield(active.task), DRAIN_SECONDS)
            except TimeoutError:
                active.task.cancel()
            except Exception:
                logger.debug("call %s: its task failed while ending", active.label)
        if send_bye:
            active.incoming.hangup()
        status = None
        if active.opened is not None:
            try:
                status = await self._in_thread(
                    self.store.end, active.opened.survey_id, active.provider_id
                )
            except Exception:
                # The sweep closes a survey left active (IVR_SESSION_TIMEOUT_MINUTES).
                logger.exception("call %s: its survey could not be closed", active.label)
        self._release(active)
        if active.media is not None:
            await active.media.close()
        logger.info(
            "call %s ended (%s) after %.0f s; survey %s",
            active.label,
            reason,
            time.monotonic() - active.started,
            status or "-",
        )

    def _release(self, active: ActiveCall) -> None:
        self.calls.pop(active.incoming.call_id, None)
        if not self.calls:
            self._no_calls.set()
        if self._uas is not None:
            self._uas._calls.pop(active.incoming.call_id, None)
        if active.port is not None:
            self.ports.give_back(active.port)
            active.port = None

    async def _watch_rtp(self) -> None:
        """End calls whose caller has sent no RTP for SIP_RTP_TIMEOUT_SECONDS."""
        timeout = self.settings.sip_rtp_timeout_seconds
        heard: dict[str, tuple[int, float]] = {}
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for call_id, active in list(self.calls.items()):
                if active.media is None or active.ended_by is not None:
                    continue
                received = int(active.media.stats.get("packets_received", 0))
                last_count, last_time = heard.get(call_id, (-1, now))
                if received != last_count:
                    heard[call_id] = (received, now)
                elif now - last_time >= timeout:
                    asyncio.get_running_loop().create_task(
                        self._end(active, f"no RTP for {timeout:.0f} s", send_bye=True)
                    )
            for call_id in set(heard) - set(self.calls):
                del heard[call_id]


def run(app: Flask) -> None:
    """`survey-gateway sip` (gateway/cli.py): serve until SIGINT or SIGTERM."""
    asyncio.run(SipServer(app).serve_forever())
