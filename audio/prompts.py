"""What the IVR says, as prompt ids and texts: one catalogue for TwiML, `audio build` and `check`.

A prompt id names one recording per language: `<flow>/<prompt>` for a flow prompt (greeting,
thanks, reprompt_rating, ...), `<flow>/q/<question>` for a question, `<flow>/q/<question>/reprompt`
for a question's own re-prompt and `<flow>/confirm/<n>` for the read-back of the value n.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ivr_flows.engine import Flow, Question, Say, SayKind

# Read-backs speak the value as a word: synthesised digits read "10" as "one zero" in places.
NUMBER_WORDS: dict[str, tuple[str, ...]] = {
    "ru": (
        "ноль",
        "один",
        "два",
        "три",
        "четыре",
        "пять",
        "шесть",
        "семь",
        "восемь",
        "девять",
        "десять",
    ),
    "en": (
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
    ),
}

# Twilio <Say> voices per language (Amazon Polly voices Twilio offers for the locale).
SAY_VOICES: dict[str, tuple[str, str]] = {
    "ru": ("Polly.Tatyana", "ru-RU"),
    "en": ("Polly.Joanna", "en-US"),
}

# Flow prompts that are not spoken as they are: SMS texts, and the templated read-back.
_NOT_SPOKEN_PREFIX = "sms_"
CONFIRM = "confirm"


@dataclass(frozen=True)
class Prompt:
    """One thing the caller hears, in one language."""

    id: str
    text: str


def number_words(value: int, language: str) -> str:
    """`value` (0-10) in words; other values as digits."""
    words = NUMBER_WORDS.get(language, NUMBER_WORDS["en"])
    return words[value] if 0 <= value < len(words) else str(value)


def confirm_text(flow: Flow, language: str, value: int) -> str:
    return flow.prompt(CONFIRM, language).replace("{value}", number_words(value, language))


def prompt_for(flow: Flow, say: Say, language: str) -> Prompt:
    """The prompt id and text of one thing the engine says."""
    if say.kind in (SayKind.QUESTION, SayKind.REPROMPT) and say.question_key is None:
        raise ValueError(f"{say.kind.value} without its question")
    if say.kind is SayKind.QUESTION and say.question_key is not None:
        question = flow.question(say.question_key)
        return Prompt(f"{flow.key}/q/{question.key}", question.text_for("ivr", language))
    if say.kind is SayKind.REPROMPT and say.question_key is not None:
        return reprompt_for(flow, flow.question(say.question_key), language)
    if say.kind is SayKind.CONFIRM:
        if say.value is None:
            raise ValueError("a read-back without its value")
        return Prompt(f"{flow.key}/{CONFIRM}/{say.value}", confirm_text(flow, language, say.value))
    name = say.kind.value  # greeting, thanks
    return Prompt(f"{flow.key}/{name}", flow.prompt(name, language))


def reprompt_for(flow: Flow, question: Question, language: str) -> Prompt:
    if question.reprompt:
        return Prompt(f"{flow.key}/q/{question.key}/reprompt", question.reprompt[language])
    name = f"reprompt_{question.type.value}"
    return Prompt(f"{flow.key}/{name}", flow.prompt(name, language))


def spoken_prompts(flow: Flow, language: str) -> Iterator[Prompt]:
    """Every prompt the IVR may say in this flow and language (for audio build and check)."""
    if "ivr" not in flow.channels:
        return
    for name in flow.prompts:
        if name.startswith(_NOT_SPOKEN_PREFIX) or name == CONFIRM:
            continue
        yield Prompt(f"{flow.key}/{name}", flow.prompt(name, language))
    # Every question of the flow, importance set included: a flow may switch it on later.
    for question in flow.questions:
        if "ivr" not in question.channels:
            continue
        yield Prompt(f"{flow.key}/q/{question.key}", question.text_for("ivr", language))
        if question.reprompt:
            yield reprompt_for(flow, question, language)
        bounds = question.value_range
        if question.confirm and bounds is not None:
            for value in range(bounds[0], bounds[1] + 1):
                yield Prompt(f"{flow.key}/{CONFIRM}/{value}", confirm_text(flow, language, value))
