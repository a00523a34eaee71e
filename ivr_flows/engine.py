"""Survey flows as pure state machines: no Flask, no database, no Twilio.

Given a flow, a channel, a state and what the customer gave, `advance` returns the next
state, the answer to record (if any) and what to say next. Only `FlowState` is stored,
in the survey session's row; voice renders `Step.say` as TwiML, SMS as text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class FlowError(ValueError):
    """A flow definition is invalid; raised when flows load, never mid-survey."""


class QuestionType(enum.StrEnum):
    RATING = "rating"  # 1-5 satisfaction
    IMPORTANCE = "importance"  # 1-5 importance of a parameter, for CSI weights
    NPS = "nps"  # 0-10 likelihood to recommend
    COMMENT = "comment"  # a voice comment (<Record>); IVR only

    @property
    def value_range(self) -> tuple[int, int] | None:
        return {
            QuestionType.RATING: (1, 5),
            QuestionType.IMPORTANCE: (1, 5),
            QuestionType.NPS: (0, 10),
        }.get(self)


CHANNELS = ("ivr", "sms", "web")


@dataclass(frozen=True)
class Question:
    key: str
    type: QuestionType
    text: Mapping[str, str]  # spoken (IVR) and default SMS text, per language
    sms_text: Mapping[str, str] = field(default_factory=dict)  # shorter SMS form
    web_text: Mapping[str, str] = field(default_factory=dict)  # the web page's, if not `text`
    reprompt: Mapping[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] = CHANNELS
    parameter: bool = False  # a per-parameter quality score (counts in CSI)
    operator_controlled: bool = True  # counts in the operator's own figures
    weight: float = 1.0  # configured CSI weight when no importance was asked
    importance_of: str | None = None
    gather_timeout_seconds: int | None = None  # None: the flow's setting
    max_reprompts: int | None = None
    max_seconds: int = 60  # for comments
    confirm: bool = False  # IVR: read the value back before storing it (long NPS input)

    @property
    def value_range(self) -> tuple[int, int] | None:
        return self.type.value_range

    def accepts(self, value: int) -> bool:
        bounds = self.value_range
        return bounds is not None and bounds[0] <= value <= bounds[1]

    def text_for(self, channel: str, language: str) -> str:
        if channel == "sms" and language in self.sms_text:
            return self.sms_text[language]
        if channel == "web" and language in self.web_text:
            return self.web_text[language]
        return self.text[language]


@dataclass(frozen=True)
class Flow:
    key: str
    name: str
    languages: tuple[str, ...]
    channels: tuple[str, ...]
    prompts: Mapping[str, Mapping[str, str]]  # greeting, thanks, reprompt_*, ...
    questions: tuple[Question, ...]
    gather_timeout_seconds: int = 6
    max_reprompts: Mapping[str, int] = field(default_factory=lambda: {"ivr": 2, "sms": 1})
    ask_importance: bool = False

    def questions_for(self, channel: str) -> tuple[Question, ...]:
        return tuple(
            q
            for q in self.questions
            if channel in q.channels
            and (self.ask_importance or q.type is not QuestionType.IMPORTANCE)
        )

    def question(self, key: str) -> Question:
        for q in self.questions:
            if q.key == key:
                return q
        raise KeyError(key)

    def prompt(self, name: str, language: str) -> str:
        return self.prompts[name][language]

    def reprompts_allowed(self, question: Question, channel: str) -> int:
        if question.max_reprompts is not None:
            return question.max_reprompts
        return self.max_reprompts.get(channel, 1)

    def timeout_for(self, question: Question) -> int:
        return question.gather_timeout_seconds or self.gather_timeout_seconds


@dataclass(frozen=True)
class FlowState:
    """Where a survey stands: the question index and how often it was re-asked."""

    index: int = 0
    reprompts: int = 0
    pending: int | None = None  # a value read back, awaiting confirmation

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "reprompts": self.reprompts, "pending": self.pending}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FlowState:
        if not data:
            return cls()
        return cls(int(data["index"]), int(data.get("reprompts", 0)), data.get("pending"))


# What the customer gave in answer to the current question.
@dataclass(frozen=True)
class Value:
    value: int
    raw: str | None = None


@dataclass(frozen=True)
class Invalid:
    raw: str | None = None


@dataclass(frozen=True)
class NoInput:
    pass


@dataclass(frozen=True)
class Recorded:
    url: str
    duration_seconds: int


Given = Value | Invalid | NoInput | Recorded


@dataclass(frozen=True)
class RecordedAnswer:
    """An answer to store; `value` None means the question was skipped."""

    question_key: str
    value: int | None
    raw_input: str | None = None
    recording_url: str | None = None
    recording_duration: int | None = None


class SayKind(enum.StrEnum):
    GREETING = "greeting"
    QUESTION = "question"
    REPROMPT = "reprompt"
    CONFIRM = "confirm"
    THANKS = "thanks"


@dataclass(frozen=True)
class Say:
    kind: SayKind
    question_key: str | None = None
    value: int | None = None  # for CONFIRM: the value read back


@dataclass(frozen=True)
class Step:
    state: FlowState
    say: tuple[Say, ...]
    recorded: RecordedAnswer | None = None
    finished: bool = False

    def current_question(self, flow: Flow, channel: str) -> Question | None:
        questions = flow.questions_for(channel)
        return None if self.finished else questions[self.state.index]


def start(flow: Flow, channel: str) -> Step:
    """The greeting and the first question."""
    questions = flow.questions_for(channel)
    if not questions:
        return Step(FlowState(), (Say(SayKind.GREETING), Say(SayKind.THANKS)), finished=True)
    return Step(
        FlowState(),
        (Say(SayKind.GREETING), Say(SayKind.QUESTION, questions[0].key)),
    )


def advance(flow: Flow, channel: str, state: FlowState, given: Given) -> Step:
    """Apply what the customer gave to the current question and move on."""
    questions = flow.questions_for(channel)
    if state.index >= len(questions):
        return Step(state, (Say(SayKind.THANKS),), finished=True)
    question = questions[state.index]

    if state.pending is not None:
        return _confirm(flow, channel, state, state.pending, question, given)

    if isinstance(given, Recorded) and question.type is QuestionType.COMMENT:
        answer = RecordedAnswer(
            question.key, None, recording_url=given.url, recording_duration=given.duration_seconds
        )
        return _next(questions, state, answer)
    if isinstance(given, Value) and question.accepts(given.value):
        # A read-back is for keys pressed on a phone; a text reply is seen as typed.
        if question.confirm and channel == "ivr":
            pending = FlowState(state.index, state.reprompts, given.value)
            return Step(pending, (Say(SayKind.CONFIRM, question.key, given.value),))
        return _next(questions, state, RecordedAnswer(question.key, given.value, given.raw))
    if question.type is QuestionType.COMMENT:
        # Silence on a comment is an answer too: the customer had nothing to add.
        return _next(questions, state, RecordedAnswer(question.key, None))
    if state.reprompts < flow.reprompts_allowed(question, channel):
        again = FlowState(state.index, state.reprompts + 1)
        return Step(again, (Say(SayKind.REPROMPT, question.key),))
    raw = given.raw if isinstance(given, Value | Invalid) else None
    return _next(questions, state, RecordedAnswer(question.key, None, raw))


def _confirm(
    flow: Flow, channel: str, state: FlowState, pending: int, question: Question, given: Given
) -> Step:
    """Key 1 keeps the value read back (`pending`); anything else asks the question again."""
    if isinstance(given, Value) and given.value == 1:
        answer = RecordedAnswer(question.key, pending, str(pending))
        return _next(flow.questions_for(channel), replace(state, pending=None), answer)
    return Step(FlowState(state.index, state.reprompts), (Say(SayKind.QUESTION, question.key),))


def _next(questions: tuple[Question, ...], state: FlowState, answer: RecordedAnswer) -> Step:
    following = state.index + 1
    if following >= len(questions):
        return Step(FlowState(following), (Say(SayKind.THANKS),), answer, finished=True)
    return Step(FlowState(following), (Say(SayKind.QUESTION, questions[following].key),), answer)
