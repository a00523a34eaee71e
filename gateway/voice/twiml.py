"""TwiML for the IVR survey, built with the Twilio SDK's VoiceResponse.

The prompt is inside the <Gather> so callers may press during it; a recorded prompt is
<Play>ed where its file exists, else the text is spoken by <Say> in the language's voice.

A step's document is built once per flow, step, language and set of recorded prompts and
then kept as text with its action URL left out (`step_twiml`): prompts are static data, and
building the document costs more CPU than the rest of a key press.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import Gather, VoiceResponse

from audio.library import audio_root, prompt_file
from audio.prompts import SAY_VOICES, Prompt, prompt_for
from gateway.config import Settings
from ivr_flows.engine import Flow, QuestionType, Step

MAX_COMMENT_SECONDS = 60
# Silence that ends a comment recording (Twilio's default is 5 s as well).
RECORD_SILENCE_SECONDS = 5


@dataclass(frozen=True)
class StepLink:
    """Where the caller's next input goes: the session and the step counter of the call."""

    session_id: int
    number: int
    question_key: str | None = None

    def url(self, settings: Settings) -> str:
        # What urlencode gives for these: the ids are digits, the question key is quoted.
        query = f"session={int(self.session_id)}&n={int(self.number)}"
        if self.question_key:
            query += f"&q={quote_plus(self.question_key)}"
        return f"{settings.public_base_url.rstrip('/')}/voice/survey/step?{query}"


def play_url(settings: Settings, language: str, prompt_id: str) -> str:
    base = settings.audio_base_url or f"{settings.public_base_url.rstrip('/')}/audio"
    return f"{base.rstrip('/')}/{language}/{prompt_id}.wav"


def _speak(
    target: VoiceResponse | Gather, prompt: Prompt, language: str, settings: Settings
) -> None:
    if _recorded(settings, language, prompt):
        target.play(play_url(settings, language, prompt.id))
        return
    voice, locale = SAY_VOICES.get(language, SAY_VOICES["en"])
    target.say(prompt.text, voice=voice, language=locale)


def _recorded(settings: Settings, language: str, prompt: Prompt) -> bool:
    """Whether the prompt's recording is on disk now (asked on each step: one stat)."""
    return _prompt_path(settings.audio_dir, language, prompt.id).is_file()


@functools.lru_cache(maxsize=4096)
def _prompt_path(audio_dir: Path | None, language: str, prompt_id: str) -> Path:
    """The file of a prompt's recording, its path joined once rather than on every step."""
    return prompt_file(audio_root(audio_dir), language, prompt_id)


# Stands for the action URL in a kept document; no prompt text or URL can contain it.
_ACTION = f"urn:step-action:{uuid.uuid4().hex}"
# Kept documents: key -> (the flow it was built from, the document). A flow loaded anew is
# another object and gets documents of its own; the oldest half goes when it is full.
_DOCUMENTS: dict[tuple[Any, ...], tuple[Flow, str]] = {}
MAX_DOCUMENTS = 2048


def step_twiml(step: Step, flow: Flow, language: str, link: StepLink, settings: Settings) -> str:
    """`render_step` as text, built once per flow, step, language and recorded prompts (a
    recording added later is played from the next step on) and kept with the action left out.
    """
    prompts = tuple(prompt_for(flow, say, language) for say in step.say)
    key = (
        id(flow),
        prompts,
        tuple(_recorded(settings, language, p) for p in prompts),
        step.finished,
        step.state.index,
        step.state.pending,
        language,
        settings.public_base_url,
        settings.audio_base_url,
    )
    kept = _DOCUMENTS.get(key)
    if kept is None or kept[0] is not flow:
        if len(_DOCUMENTS) >= MAX_DOCUMENTS:
            for old in list(_DOCUMENTS)[: MAX_DOCUMENTS // 2]:
                _DOCUMENTS.pop(old, None)
        kept = _DOCUMENTS[key] = (flow, str(_render(step, flow, language, _ACTION, settings)))
    return kept[1].replace(_ACTION, escape(link.url(settings)))


def render_step(
    step: Step, flow: Flow, language: str, link: StepLink, settings: Settings
) -> VoiceResponse:
    """What the caller hears for one engine step, and where their answer goes."""
    return _render(step, flow, language, link.url(settings), settings)


def _render(
    step: Step, flow: Flow, language: str, action: str, settings: Settings
) -> VoiceResponse:
    response = VoiceResponse()
    prompts = [prompt_for(flow, say, language) for say in step.say]
    if step.finished:
        for prompt in prompts:
            _speak(response, prompt, language, settings)
        response.hangup()
        return response

    question = flow.questions_for("ivr")[step.state.index]
    if question.type is QuestionType.COMMENT and step.state.pending is None:
        for prompt in prompts:
            _speak(response, prompt, language, settings)
        response.record(
            action=action,
            method="POST",
            max_length=min(question.max_seconds, MAX_COMMENT_SECONDS),
            finish_on_key="#",
            play_beep=True,
            timeout=RECORD_SILENCE_SECONDS,
        )
        # Twilio skips the action when nothing was recorded and goes on to the next verb:
        # the same step then arrives with no recording, which ends the comment as skipped.
        response.redirect(action, method="POST")
        return response

    two_digits = question.type is QuestionType.NPS and step.state.pending is None
    gather = Gather(
        input="dtmf",
        action=action,
        method="POST",
        num_digits=2 if two_digits else 1,
        # Scores of 0-10 end with # (or a pause); a 1-5 key needs no terminator, and with
        # none a stray # reaches us as a wrong key and gets the re-prompt saying what to press.
        finish_on_key="#" if two_digits else "",
        timeout=flow.timeout_for(question),
        action_on_empty_result=True,
    )
    for prompt in prompts:
        _speak(gather, prompt, language, settings)
    response.append(gather)
    return response


def hangup(
    settings: Settings, language: str | None = None, prompt: Prompt | None = None
) -> VoiceResponse:
    """A polite end: an optional prompt, then <Hangup/>."""
    response = VoiceResponse()
    if prompt is not None and language is not None:
        _speak(response, prompt, language, settings)
    response.hangup()
    return response
