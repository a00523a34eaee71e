"""The SIP user agent: admits calls from the PBX, answers them, runs their survey.

Built on aiosipua (SIP messages, transactions, dialogs over asyncio) and aiortp (RTP, RFC
4733 telephone-events, G.711). One process holds up to SIP_MAX_CALLS calls on one event loop;
database steps run in a small thread pool.

Admission, in order: a source address outside SIP_ALLOWED_PEERS gets 403; a call beyond
SIP_MAX_CALLS gets 503 Service Unavailable with Retry-After (the gateway is full, not the
caller busy: a PBX may send the caller to another survey gateway); an offer without PCMU or
PCMA gets 488; no free RTP port gets 503 with Retry-After, a database failure 503; a caller
with no survey to run (opted out, surveyed already) gets 603 Decline. Every call is logged
with the caller's number masked.

With SIP_REGISTRAR set, the agent also registers at the PBX and dials the call-back surveys
queued for it in the database (gateway/sip/uac.py), within the same SIP_MAX_CALLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from aiosipua import (
    DialogState,
    IncomingCall,
    OutgoingCall,
    Registration,
    RegistrationState,
    SipDigestAuth,
    SipRequest,
    SipUAS,
)
from aiosipua import transport as aiosipua_transport
from aiosipua.rtp_bridge import CallSession
from aiosipua.sdp import SdpMessage
from aiosipua.transport import UdpSipTransport
from flask import Flask

from gateway.phone_surveys import OpenedSurvey
from gateway.phones import mask_phone
from gateway.sip.call import Conversation
from gateway.sip.handover import handed_over_call, held_by, instance_of
from gateway.sip.media import (
    SUPPORTED_CODECS,
    TELEPHONE_EVENT,
    PortPool,
    prompt_root,
)
from gateway.sip.store import Dial, StepTaken, SurveyStore
from gateway.sip.uac import (
    REGISTER_RETRY_SECONDS,
    SurveyUAC,
    dial_uri,
    outcome_of,
    sdp_offer,
)
from ivr_flows.engine import Given

logger = logging.getLogger(__name__)

USER_AGENT = "survey-gateway"
DB_THREADS = 8
DRAIN_SECONDS = 10.0  # at most this long to apply the keys of a call that ended
DIAL_POLL_SECONDS = 1.0  # how often the agent looks for call-backs queued for it
# Retry-After of a 503 for a full gateway: a slot frees as soon as any survey ends (a
# post_call survey lasts about 40 s), and a proxy that honours it sends nothing here meanwhile.
FULL_RETRY_AFTER_SECONDS = 10
T = TypeVar("T")


@dataclass
class ActiveCall:
    """A call from its INVITE to its end: handed over by the PBX, or a call-back we dialled."""

    call_id: str
    label: str  # masked caller and SIP Call-ID, for the log
    incoming: IncomingCall | None = None
    outgoing: OutgoingCall | None = None
    dial: Dial | None = None  # a call-back's try
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
        self.instance = instance_of(self.advertised, self.bind_port)
        self._allowed = [ipaddress.ip_network(p, strict=False) for p in settings.sip_allowed_peers]
        self.ports = PortPool(*settings.sip_rtp_ports)
        self.calls: dict[str, ActiveCall] = {}
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        self._prompts = prompt_root(settings.audio_dir)
        self._executor = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="sip-db")
        self._uas: SipUAS | None = None
        self._uac: SurveyUAC | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._dialer: asyncio.Task[None] | None = None
        self._resender: asyncio.Task[None] | None = None
        self._registration: Registration | None = None
        self._register_retry: asyncio.Task[None] | None = None
        self._registrar: tuple[str, int] | None = None
        self.registered = 0  # REGISTERs the PBX accepted (the first and every refresh)
        self._registering_since: float | None = None
        self.answered = 0
        self.refused: dict[int, int] = {}

    # --- life of the server -------------------------------------------------------------

    async def start(self) -> None:
        await self._close_left_over()
        transport = UdpTransport(local_addr=(self.bind_host, self.bind_port))
        advertised = (self.advertised, self.bind_port)
        uac = SurveyUAC(transport, advertised_addr=advertised)
        uas = SipUAS(transport, user_agent=USER_AGENT, advertised_addr=advertised, uac=uac)
        uas.on_invite = self._on_invite
        uas.on_bye = self._on_bye
        uas.on_ack_timeout = partial(self._on_gone, reason="no ACK")
        uas._handlers["INFO"] = self._on_info  # DTMF by SIP INFO (RFC 2976 + dtmf-relay)
        await uas.start()
        self._uas = uas
        self._uac = uac
        loop = asyncio.get_running_loop()
        self._watchdog = loop.create_task(self._watch_rtp())
        if self.settings.sip_registrar:
            await self._register()
            self._dialer = loop.create_task(self._dial_queued())
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
        for task in (self._dialer, self._register_retry, self._resender):
            if task is not None:
                task.cancel()
        for active in list(self.calls.values()):
            await self._end(active, "gateway stopping", send_bye=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._registration is not None and self._registration.granted_expires:
            self._registration.unregister()  # the PBX stops routing to us at once
        if self._uas is not None:
            await self._uas.stop()
        self._executor.shutdown(wait=True)

    async def _close_left_over(self) -> None:
        """Close the surveys of calls this address held when its process died without ending
        them (killed, a crash, the machine lost): their callers are gone, the answers stay."""
        try:
            closed = await self._in_thread(self.store.close_left_over, held_by(self.instance))
        except Exception:
            # The sweep closes them after IVR_SESSION_TIMEOUT_MINUTES instead.
            logger.exception("surveys of calls held before a restart could not be closed")
            return
        if closed:
            logger.warning(
                "closed %s survey(s) of calls this SIP agent held before it was restarted: %s",
                len(closed),
                ", ".join(f"{survey_id} {status}" for survey_id, status in closed),
            )

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

    def _refuse(
        self,
        incoming: IncomingCall,
        code: int,
        why: str,
        label: str,
        *,
        retry_after: int | None = None,
    ) -> None:
        if retry_after is None:
            incoming.reject(code)
        else:  # aiosipua's reject() adds no headers; this is it with Retry-After
            extra = {"Retry-After": str(retry_after)}
            incoming._send_response(code, "Service Unavailable", extra_headers=extra)
            incoming.dialog.terminate()
        if self._uas is not None:
            self._uas._calls.pop(incoming.call_id, None)
        self.refused[code] = self.refused.get(code, 0) + 1
        logger.info("call %s refused with %s: %s", label, code, why)

    def _on_invite(self, incoming: IncomingCall) -> None:
        call = handed_over_call(incoming.invite, self.instance)
        source = incoming.source_addr[0]
        caller = mask_phone(call.caller) if call.caller else "anonymous"
        label = f"{caller} [{incoming.call_id[:24]}]"
        if not self._allowed_peer(source):
            self._refuse(incoming, 403, f"{source} is not in SIP_ALLOWED_PEERS", label)
            return
        if len(self.calls) >= self.settings.sip_max_calls:
            self._refuse(
                incoming,
                503,
                f"full: SIP_MAX_CALLS={self.settings.sip_max_calls}",
                label,
                retry_after=FULL_RETRY_AFTER_SECONDS,
            )
            return
        offer = incoming.sdp_offer
        audio = offer.audio if offer is not None else None
        if audio is None or not any(c.payload_type in SUPPORTED_CODECS for c in audio.codecs):
            self._refuse(incoming, 488, "no PCMU or PCMA offered", label)
            return
        active = ActiveCall(incoming.call_id, label, incoming, provider_id=call.provider_id)
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
        if incoming is None:
            return
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
        if incoming is None:
            return False
        try:
            call = handed_over_call(incoming.invite, self.instance)
            opened = await self._in_thread(self.store.open, call)
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
            self._refuse(
                incoming,
                503,
                "no free RTP port in SIP_RTP_PORTS",
                active.label,
                retry_after=FULL_RETRY_AFTER_SECONDS,
            )
            self._release(active)
            return False
        self._converse(active, opened, media)
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

    def _converse(self, active: ActiveCall, opened: OpenedSurvey, media: CallSession) -> None:
        """The call's keys go to a new conversation, which plays its prompts on `media`."""
        media.on_dtmf = lambda digit, _duration: self._key(active, digit)
        active.opened = opened
        active.media = media
        conversation = Conversation(
            active.label,
            opened,
            media,
            media.chosen_payload_type,
            self._prompts,
            partial(self._step, active),
            partial(self._save_recording, active),
        )
        media.on_audio = lambda pcm, _timestamp: conversation.audio(pcm)
        active.conversation = conversation

    async def _media_for(self, active: ActiveCall) -> CallSession | None:
        offer = active.incoming.sdp_offer if active.incoming is not None else None
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

    async def _save_recording(
        self, active: ActiveCall, question_key: str, pcm: bytes
    ) -> tuple[str, int] | None:
        opened = active.opened
        if opened is None:
            return None
        return await self._in_thread(
            self.store.save_recording, opened.survey_id, active.provider_id, question_key, pcm
        )

    def _key(self, active: ActiveCall, digit: str) -> None:
        if active.conversation is not None and active.ended_by is None:
            active.conversation.key(digit)

    # --- call-backs through the PBX --------------------------------------------------------

    def _credentials(self) -> SipDigestAuth:
        return SipDigestAuth(self.settings.sip_username or "", self.settings.sip_password or "")

    @property
    def _domain(self) -> str:
        registrar = self.settings.sip_registrar or ""
        return self.settings.sip_domain or parse_listen(registrar)[0]

    async def _register(self) -> None:
        """Register as SIP_USERNAME at SIP_REGISTRAR; aiosipua answers the digest challenge
        and refreshes at 90 % of the granted interval; a refusal is tried again later."""
        uac = self._uac
        if uac is None or not self.settings.sip_registrar:
            return
        host, port = parse_listen(self.settings.sip_registrar)
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, family=socket.AF_INET
        )
        self._registrar = (str(infos[0][4][0]), int(infos[0][4][1]))
        self._resender = asyncio.get_running_loop().create_task(
            uac.resend_unanswered(self._registrar)
        )
        user = self.settings.sip_username
        registration = Registration(
            uac,
            f"sip:{user}@{self._domain}",
            self._registrar,
            expires=self.settings.sip_register_expires,
            auth=self._credentials(),
            contact_uri=f"sip:{user}@{self.advertised}:{self.bind_port}",
            user_agent=USER_AGENT,
        )
        registration.on_registered = self._on_registered
        registration.on_failed = self._on_register_failed
        registration.on_expired = self._on_register_expired
        self._registration = registration
        registration.register()

    def _on_registered(self, registration: Registration) -> None:
        self.registered += 1
        logger.info(
            "registered at %s as %s for %s s",
            self.settings.sip_registrar,
            registration.aor,
            registration.granted_expires,
        )

    def _on_register_failed(self, registration: Registration, code: int, reason: str) -> None:
        logger.error(
            "the PBX at %s refused the registration of %s: %s %s (check SIP_USERNAME and "
            "SIP_PASSWORD); trying again in %.0f s",
            self.settings.sip_registrar,
            registration.aor,
            code,
            reason,
            REGISTER_RETRY_SECONDS,
        )
        self._register_again(REGISTER_RETRY_SECONDS)

    def _on_register_expired(self, registration: Registration) -> None:
        logger.warning("the registration of %s expired unrefreshed; again", registration.aor)
        self._register_again(0)

    def _check_registration(self) -> None:
        """A REGISTER the PBX never answered (down, unreachable) is sent again: aiosipua
        reports refusals and expiry, not silence."""
        registration = self._registration
        if registration is None or registration.state is not RegistrationState.REGISTERING:
            self._registering_since = None
            return
        now = time.monotonic()
        if self._registering_since is None:
            self._registering_since = now
        elif now - self._registering_since > REGISTER_RETRY_SECONDS:
            logger.warning("no answer from the registrar %s; again", self.settings.sip_registrar)
            self._registering_since = now
            registration.register()

    def _register_again(self, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            if self._registration is not None:
                self._registration.register()

        self._register_retry = asyncio.get_running_loop().create_task(later())

    async def _dial_queued(self) -> None:
        """Dial the call-backs queued for a SIP agent while there is room under SIP_MAX_CALLS."""
        while True:
            await asyncio.sleep(DIAL_POLL_SECONDS)
            self._check_registration()
            room = min(self.settings.sip_max_calls - len(self.calls), self.ports.free)
            if room <= 0 or self._registrar is None:
                continue
            try:
                dials = await self._in_thread(self.store.claim_dials, held_by(self.instance), room)
            except Exception:
                logger.exception("call-backs queued for SIP could not be read; again soon")
                continue
            for dial in dials:
                self._place(dial)

    def _place(self, dial: Dial) -> None:
        """Send the INVITE of a call-back through the PBX; `_callback` follows it up."""
        uac, registrar = self._uac, self._registrar
        port = self.ports.take()
        if uac is None or registrar is None or port is None:
            asyncio.get_running_loop().create_task(
                self._not_answered(dial, "failed", "no free RTP port in SIP_RTP_PORTS")
            )
            return
        user = self.settings.sip_username
        outgoing = uac.send_invite(
            f"sip:{user}@{self._domain}",
            dial_uri(dial.phone, self._domain),
            registrar,
            sdp_offer(self.advertised, port),
            user_agent=USER_AGENT,
            auth=self._credentials(),
        )
        label = f"{mask_phone(dial.phone)} [{outgoing.call_id[:24]}]"
        active = ActiveCall(
            outgoing.call_id, label, outgoing=outgoing, dial=dial, provider_id=dial.provider_id
        )
        active.port = port
        self.calls[active.call_id] = active
        self._no_calls.clear()
        logger.info("call-back %s: survey %s, try %s", label, dial.survey_id, dial.attempt_id)
        active.task = asyncio.get_running_loop().create_task(self._callback(active))

    async def _callback(self, active: ActiveCall) -> None:
        outgoing, dial = active.outgoing, active.dial
        if outgoing is None or dial is None or self._uac is None:
            return
        try:
            try:
                await outgoing.wait_answered(self.settings.sip_ring_seconds)
            except TimeoutError:
                self._uac.cancel(outgoing)
                await self._not_answered(dial, "no-answer", None, label=active.label)
                self._release(active)
                return
            except RuntimeError:
                code = outgoing._reject_code
                await self._not_answered(dial, outcome_of(code), str(code), label=active.label)
                self._release(active)
                return
            if not await self._answered(active, outgoing, dial):
                return
            conversation = active.conversation
            if conversation is not None:
                await conversation.run()
            await self._end(active, "survey over", send_bye=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("call-back %s failed", active.label)
            if active.opened is None and dial is not None:
                await self._not_answered(dial, "failed", "error", label=active.label)
            await self._end(active, "error", send_bye=True)

    async def _answered(self, active: ActiveCall, outgoing: OutgoingCall, dial: Dial) -> bool:
        """The customer picked up: RTP on the port we offered, in the codec the PBX chose,
        and the survey begins. False (and the call hung up) when it cannot."""
        answer = outgoing.sdp_answer
        audio = answer.audio if answer is not None else None
        media = None
        if (
            answer is not None
            and audio is not None
            and any(c.payload_type in SUPPORTED_CODECS for c in audio.codecs)
            and active.port is not None
        ):
            media = CallSession(
                local_ip=self.bind_host,
                rtp_port=active.port,
                offer=answer,
                advertised_ip=self.advertised if self.advertised != self.bind_host else None,
                supported_codecs=list(SUPPORTED_CODECS),
                dtmf_payload_type=dtmf_payload_type(answer),
                plc=False,
            )
            try:
                await media.start()
            except OSError:
                logger.warning("RTP port %s is taken by another program", active.port)
                media = None
        active.media = media
        if media is None:
            self._hang_up(active)
            await self._not_answered(dial, "failed", "no G.711 in the answer", label=active.label)
            self._release(active)
            return False
        opened = await self._in_thread(self.store.begin_callback, dial.survey_id, dial.provider_id)
        if opened is None:
            logger.info("call-back %s: its survey was closed elsewhere", active.label)
            self._hang_up(active)
            self._release(active)
            await media.close()
            return False
        self._converse(active, opened, media)
        self.answered += 1
        logger.info(
            "call-back %s answered: survey %s (%s, %s), RTP port %s",
            active.label,
            opened.survey_id,
            opened.flow.key,
            opened.language,
            active.port,
        )
        return True

    async def _not_answered(
        self, dial: Dial, outcome: str, code: str | None, *, label: str = ""
    ) -> None:
        """Settle a try that never became a conversation: busy, no answer, refused, failed."""
        give_back = outcome == "refused"
        if give_back:
            logger.error(
                "the PBX refused the call-back of survey %s with %s: the gateway's SIP account "
                "(SIP_USERNAME, SIP_PASSWORD) may not dial out; the try is not counted",
                dial.survey_id,
                code,
            )
        try:
            status = await self._in_thread(
                partial(
                    self.store.end_callback,
                    dial.survey_id,
                    dial.provider_id,
                    outcome,
                    code,
                    give_back=give_back,
                )
            )
        except Exception:
            # The dispatcher recovers the survey when its lease expires.
            logger.exception("call-back of survey %s could not be settled", dial.survey_id)
            return
        logger.info(
            "call-back %s ended %s%s; survey %s",
            label or f"of survey {dial.survey_id}",
            outcome,
            f" ({code})" if code else "",
            status or "-",
        )

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
        _incoming, dialog = uas._find_dialog(request.call_id or "")
        active = self.calls.get(request.call_id or "")
        if dialog is None or active is None:
            uas._send_error(request, 481, "Call/Transaction Does Not Exist")
            return
        if not uas._validate_in_dialog(dialog, request):
            return
        response = dialog.create_response(request, 200, "OK")
        uas.transport.send_reply(response)
        digit = dtmf_from_info(request)
        if digit:
            self._key(active, digit)

    async def _end(self, active: ActiveCall, reason: str, *, send_bye: bool = False) -> None:
        """End a call once: stop its survey task, hang up if asked, close the survey."""
        if active.ended_by is not None:
            return
        active.ended_by = reason
        if active.dial is not None and active.opened is None:
            await self._end_unanswered(active)
            return
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
            self._hang_up(active)
        status = None
        if active.opened is not None:
            try:
                if active.dial is not None:
                    status = await self._in_thread(
                        self.store.end_callback,
                        active.dial.survey_id,
                        active.provider_id,
                        "answered",
                    )
                else:
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

    async def _end_unanswered(self, active: ActiveCall) -> None:
        """A call-back ended before its survey began (the gateway stopping): cancel it if it
        still rings; the try counts as canceled and is called again later."""
        current = asyncio.current_task()
        if active.task is not None and active.task is not current and not active.task.done():
            active.task.cancel()
        outgoing = active.outgoing
        if outgoing is not None and self._uac is not None:
            if outgoing.dialog.state is DialogState.EARLY:
                self._uac.cancel(outgoing)
            else:
                self._hang_up(active)
        if active.media is not None:
            await active.media.close()
        if active.dial is not None and active.task is not current:
            await self._not_answered(active.dial, "canceled", None, label=active.label)
        self._release(active)

    def _hang_up(self, active: ActiveCall) -> None:
        if active.incoming is not None:
            active.incoming.hangup()
        elif (
            active.outgoing is not None
            and self._uac is not None
            and active.outgoing.dialog.state is DialogState.CONFIRMED
        ):
            active.outgoing.hangup(self._uac)

    def _release(self, active: ActiveCall) -> None:
        self.calls.pop(active.call_id, None)
        if not self.calls:
            self._no_calls.set()
        if self._uas is not None:
            self._uas._calls.pop(active.call_id, None)
        if self._uac is not None and active.outgoing is not None:
            self._uac.remove_call(active.call_id)
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
