"""One survey call over SIP: play what the engine says, gather keys, pass them on.

The engine decides everything (gateway.phone_surveys); this only turns SIP and RTP events
into its inputs, as the Twilio channel turns <Gather> results into them:

- a key pressed while a prompt plays stops it (barge-in), as inside Twilio's <Gather>;
  keys pressed ahead wait their turn and answer the next questions in order;
- no key within the question's timeout after its prompt is `NoInput`;
- 0-10 questions take up to two keys, ended by `#` or a pause;
- the voice comment is recorded after a tone, as Twilio's <Record>: until `#`, 5 seconds of
  silence, the question's max_seconds (at most 60) or the caller's hang-up; nothing said
  skips it;
- the caller's BYE, or no RTP from the caller for SIP_RTP_TIMEOUT_SECONDS, ends the call
  and the survey keeps the answers so far.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from audio.prompts import prompt_for
from gateway.phone_surveys import CHANNEL, OpenedSurvey, keys_given
from gateway.sip.media import FRAME_MS, PromptMissing, beep_frames, prompt_frames
from gateway.sip.store import StepTaken
from ivr_flows import Flow, FlowState
from ivr_flows.engine import Given, NoInput, Question, QuestionType, Recorded, Step

logger = logging.getLogger(__name__)

FINISH_KEY = "#"
FRAME_SECONDS = FRAME_MS / 1000
_HANGUP = ""  # queued after the last key of a call that ended
MAX_COMMENT_SECONDS = 60  # as on Twilio
RECORD_SILENCE_SECONDS = 5.0  # a comment ends after this much silence (Twilio's default)
VOICE_LEVEL = 300  # mean absolute 16-bit sample of a 20 ms frame that counts as speech


class _HungUp(Exception):
    """The call is over and every key pressed before it has been applied."""


class AudioOut(Protocol):
    def send_audio(self, payload: bytes, timestamp: int) -> None: ...


StepFunction = Callable[[Given], Awaitable[StepTaken | None]]
# (question key, 16-bit 8 kHz PCM) -> the stored recording's URL and whole seconds, or None
SaveRecording = Callable[[str, bytes], Awaitable[tuple[str, int] | None]]


def is_voice(pcm: bytes) -> bool:
    samples = array("h", pcm[: len(pcm) - len(pcm) % 2])
    return bool(samples) and sum(map(abs, samples)) / len(samples) >= VOICE_LEVEL


class Conversation:
    """The survey of one answered call; `run` returns when the survey or the call is over."""

    def __init__(
        self,
        label: str,
        opened: OpenedSurvey,
        audio: AudioOut,
        payload_type: int,
        prompts_root: Path,
        take_step: StepFunction,
        save_recording: SaveRecording | None = None,
    ) -> None:
        self.label = label
        self.opened = opened
        self._audio = audio
        self._payload_type = payload_type
        self._root = prompts_root
        self._take_step = take_step
        self._save_recording = save_recording
        self._recording: bytearray | None = None  # the comment being recorded
        self._last_voice: float | None = None
        self._keys: asyncio.Queue[str] = asyncio.Queue()
        self._timestamp = 0
        self._hung_up = False
        self.frames_sent = 0

    # --- input --------------------------------------------------------------------------

    def key(self, digit: str) -> None:
        """A key from RFC 4733 or SIP INFO."""
        if digit not in "0123456789*#" or len(digit) != 1:
            return
        if not self._hung_up:
            self._keys.put_nowait(digit)

    def audio(self, pcm: bytes) -> None:
        """The caller's decoded audio: kept only while a comment is recorded."""
        if self._recording is None or self._hung_up:
            return
        if len(self._recording) < MAX_COMMENT_SECONDS * 16000:
            self._recording += pcm
        if is_voice(pcm):
            self._last_voice = asyncio.get_running_loop().time()

    def hang_up(self) -> None:
        """The call ended: stop playing; keys pressed before still answer their questions."""
        if not self._hung_up:
            self._hung_up = True
            self._keys.put_nowait(_HANGUP)

    # --- the survey ---------------------------------------------------------------------

    async def run(self) -> None:
        flow, language = self.opened.flow, self.opened.language
        step, state = self.opened.step, self.opened.step.state
        while True:
            await self._say(flow, language, step, interruptible=not step.finished)
            if step.finished:
                return
            question = flow.questions_for(CHANNEL)[state.index]
            try:
                given = await self._gather(flow, question, state)
            except _HungUp:
                return
            taken = await self._take_step(given)
            if taken is None:
                logger.info("call %s: its survey was closed elsewhere; hanging up", self.label)
                return
            step, state = taken.step, taken.state

    async def _say(self, flow: Flow, language: str, step: Step, *, interruptible: bool) -> None:
        for say in step.say:
            if self._hung_up or (interruptible and not self._keys.empty()):
                return  # the caller has answered already
            prompt = prompt_for(flow, say, language)
            try:
                frames = prompt_frames(self._root, language, prompt.id, self._payload_type)
            except PromptMissing as exc:
                logger.error("call %s: %s; run `survey-gateway audio check`", self.label, exc)
                continue
            if not await self._play(frames, interruptible=interruptible):
                return

    async def _play(self, frames: tuple[bytes, ...], *, interruptible: bool) -> bool:
        """Send frames every 20 ms; False when a key stopped the prompt."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        for frame in frames:
            if self._hung_up or (interruptible and not self._keys.empty()):
                return False
            self._audio.send_audio(frame, self._timestamp)
            self._timestamp = (self._timestamp + len(frame)) & 0xFFFFFFFF
            self.frames_sent += 1
            due += FRAME_SECONDS
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return True

    async def _gather(self, flow: Flow, question: Question, state: FlowState) -> Given:
        timeout = flow.timeout_for(question)
        if question.type is QuestionType.COMMENT and state.pending is None:
            if self._save_recording is None:
                while (key := await self._next_key(timeout)) is not None and key != FINISH_KEY:
                    pass
                return keys_given(QuestionType.COMMENT, None)
            return await self._record(question)
        two_digits = question.type is QuestionType.NPS and state.pending is None
        first = await self._next_key(timeout)
        if first is None:
            return keys_given(question.type, None)
        digits = first
        if two_digits and first != FINISH_KEY:
            second = await self._next_key(timeout)
            if second is not None and second != FINISH_KEY:
                digits += second
        return keys_given(question.type, digits)

    async def _record(self, question: Question) -> Given:
        """The voice comment: a tone, then the caller's audio until `#`, silence, the limit or
        the hang-up. Recorded when anything was said (kept even if the caller hung up)."""
        save = self._save_recording
        if save is None:
            return NoInput()
        await self._play(beep_frames(self._payload_type), interruptible=False)
        loop = asyncio.get_running_loop()
        started = loop.time()
        limit = min(question.max_seconds or MAX_COMMENT_SECONDS, MAX_COMMENT_SECONDS)
        self._recording, self._last_voice = bytearray(), None
        hung_up = False
        try:
            while True:
                now = loop.time()
                quiet_for = now - (self._last_voice or started)
                if now - started >= limit or quiet_for >= RECORD_SILENCE_SECONDS:
                    break
                left = min(limit - (now - started), RECORD_SILENCE_SECONDS - quiet_for)
                if await self._next_key(max(left, FRAME_SECONDS)) == FINISH_KEY:
                    break  # other keys are ignored, as by <Record finishOnKey="#">
        except _HungUp:
            hung_up = True
        pcm, spoke = bytes(self._recording), self._last_voice is not None
        self._recording = None
        if not spoke:
            if hung_up:
                raise _HungUp
            return NoInput()
        try:
            saved = await save(question.key, pcm)
        except Exception:
            logger.exception("call %s: the voice comment could not be stored", self.label)
            saved = None
        if saved is None:
            return NoInput()
        url, seconds = saved
        logger.info("call %s: a voice comment of %s s recorded", self.label, seconds)
        return Recorded(url, seconds)

    async def _next_key(self, timeout: float) -> str | None:
        """The next key, or None after `timeout` seconds of silence."""
        try:
            key = await asyncio.wait_for(self._keys.get(), timeout)
        except TimeoutError:
            return None
        if key == _HANGUP:
            raise _HungUp
        return key
