"""The SMS channel's own texts (keyword replies, help) and how survey texts become messages.

Each text stays within two SMS segments in every language (a test counts them): Cyrillic is
sent as UCS-2, 70 characters in one segment, 67 per part of a longer message.
"""

from __future__ import annotations

from ivr_flows import Flow
from ivr_flows.engine import Question, Say, SayKind
from sms.segments import segments

MAX_SEGMENTS = 2

TEXTS: dict[str, dict[str, str]] = {
    # Added to the first message of a survey when it still fits in two segments.
    "opt_out_hint": {
        "ru": "Отказ от опросов: СТОП",
        "en": "Reply STOP to opt out.",
    },
    "opted_out": {
        "ru": "Вы отписались от опросов и больше не получите их. Чтобы вернуться, ответьте СТАРТ.",
        "en": "You have unsubscribed and will get no more surveys. Reply START to resubscribe.",
    },
    "opted_in": {
        "ru": "Вы снова подписаны на опросы о качестве обслуживания. Отказ: СТОП.",
        "en": "You are subscribed to our service surveys again. Reply STOP to opt out.",
    },
    "help": {
        "ru": "Опрос о качестве обслуживания: отвечайте цифрой от 1 до 5. Отказ: СТОП.",
        "en": "Service quality survey: reply with a digit from 1 to 5. Reply STOP to opt out.",
    },
    "survey_over": {
        "ru": "Спасибо! Этот опрос уже завершён, ответ не нужен.",
        "en": "Thank you! This survey has already ended; no reply is needed.",
    },
    "reprompt_nps": {
        "ru": "Ответьте числом от 0 до 10.",
        "en": "Please reply with a number from 0 to 10.",
    },
    "reprompt_rating": {
        "ru": "Ответьте одной цифрой от 1 до 5, где 5 — отлично.",
        "en": "Please reply with one digit from 1 to 5, where 5 is excellent.",
    },
    "reprompt_importance": {
        "ru": "Ответьте одной цифрой от 1 до 5, где 5 — очень важно.",
        "en": "Please reply with one digit from 1 to 5, where 5 is very important.",
    },
}


def text(name: str, language: str) -> str:
    """One of the channel's own texts, in `language` (Russian where it has none)."""
    variants = TEXTS[name]
    return variants.get(language) or variants["ru"]


def _prompt(flow: Flow, names: tuple[str, ...], language: str) -> str | None:
    for name in names:
        if name in flow.prompts and flow.prompts[name].get(language):
            return flow.prompt(name, language)
    return None


def first_message(flow: Flow, language: str) -> str:
    """The survey's first SMS: greeting, first question and the opt-out hint, dropping the
    hint, then the greeting, when they would not fit in two segments.

    A flow may carry a shorter `sms_greeting` prompt for this message.
    """
    greeting = _prompt(flow, ("sms_greeting", "greeting"), language)
    question = flow.questions_for("sms")[0].text_for("sms", language)
    hint = text("opt_out_hint", language)
    candidates = ([greeting, question, hint], [greeting, question], [question, hint], [question])
    for parts in candidates:
        body = "\n".join(part for part in parts if part)
        if segments(body) <= MAX_SEGMENTS:
            return body
    return question


def reprompt(flow: Flow, question: Question, language: str) -> str:
    """How to answer `question` by SMS: the flow's `sms_reprompt_<type>`, else ours."""
    found = _prompt(flow, (f"sms_reprompt_{question.type.value}",), language)
    return found or text(f"reprompt_{question.type.value}", language)


def render(flow: Flow, says: tuple[Say, ...], language: str) -> str:
    """What the engine says, as one SMS text."""
    parts: list[str] = []
    for say in says:
        if say.kind is SayKind.GREETING:
            parts.append(_prompt(flow, ("sms_greeting", "greeting"), language) or "")
        elif say.kind is SayKind.QUESTION and say.question_key:
            parts.append(flow.question(say.question_key).text_for("sms", language))
        elif say.kind is SayKind.REPROMPT and say.question_key:
            parts.append(reprompt(flow, flow.question(say.question_key), language))
        elif say.kind is SayKind.THANKS:
            parts.append(flow.prompt("thanks", language))
    return "\n".join(part for part in parts if part)
