"""Load and validate flow definitions (YAML). A bad flow stops start-up, never a caller."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ivr_flows.engine import CHANNELS, Flow, FlowError, Question, QuestionType

FLOWS_DIR = Path(__file__).parent
REQUIRED_PROMPTS = ("greeting", "thanks")
_QUESTION_FIELDS = {
    "key",
    "type",
    "text",
    "sms_text",
    "web_text",
    "reprompt",
    "channels",
    "parameter",
    "operator_controlled",
    "weight",
    "importance_of",
    "gather_timeout_seconds",
    "max_reprompts",
    "max_seconds",
    "confirm",
}


def _texts(value: Any, where: str, languages: tuple[str, ...], required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise FlowError(f"{where}: expected a mapping of language to text")
    texts = {str(k): str(v).strip() for k, v in value.items() if v is not None}
    missing = [lang for lang in languages if not texts.get(lang)]
    if missing and (required or texts):
        raise FlowError(f"{where}: no text for language {', '.join(missing)}")
    return texts


def _question(raw: Mapping[str, Any], flow_key: str, languages: tuple[str, ...]) -> Question:
    key = raw.get("key")
    where = f"flow {flow_key!r}, question {key!r}"
    if not key or not isinstance(key, str):
        raise FlowError(f"flow {flow_key!r}: a question has no key")
    unknown = set(raw) - _QUESTION_FIELDS
    if unknown:
        raise FlowError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        qtype = QuestionType(raw.get("type", "rating"))
    except ValueError:
        known = ", ".join(t.value for t in QuestionType)
        raise FlowError(
            f"{where}: unknown question type {raw.get('type')!r} (known: {known})"
        ) from None
    channels = tuple(raw.get("channels", CHANNELS))
    if qtype is QuestionType.COMMENT and "channels" not in raw:
        channels = ("ivr",)  # a voice comment; the web page has its own comment box
    if not set(channels) <= set(CHANNELS):
        raise FlowError(f"{where}: channels must be among {', '.join(CHANNELS)}")
    if qtype is QuestionType.COMMENT and ("sms" in channels or "web" in channels):
        raise FlowError(f"{where}: a voice comment is asked by phone only")
    return Question(
        key=key,
        type=qtype,
        text=_texts(raw.get("text"), f"{where}, text", languages, required=True),
        sms_text=_texts(raw.get("sms_text"), f"{where}, sms_text", languages, required=False),
        web_text=_texts(raw.get("web_text"), f"{where}, web_text", languages, required=False),
        reprompt=_texts(raw.get("reprompt"), f"{where}, reprompt", languages, required=False),
        channels=channels,
        parameter=bool(raw.get("parameter", False)),
        operator_controlled=bool(raw.get("operator_controlled", True)),
        weight=float(raw.get("weight", 1.0)),
        importance_of=raw.get("importance_of"),
        gather_timeout_seconds=raw.get("gather_timeout_seconds"),
        max_reprompts=raw.get("max_reprompts"),
        max_seconds=int(raw.get("max_seconds", 60)),
        confirm=bool(raw.get("confirm", False)),
    )


def parse_flow(data: Mapping[str, Any], source: str = "<flow>") -> Flow:
    """Build a `Flow` from its YAML data, or raise FlowError naming what is wrong."""
    if not isinstance(data, Mapping):
        raise FlowError(f"{source}: a flow must be a mapping")
    key = data.get("key")
    if not key:
        raise FlowError(f"{source}: the flow has no key")
    languages = tuple(data.get("languages", ("ru", "en")))
    channels = tuple(data.get("channels", CHANNELS))
    prompts_raw = data.get("prompts") or {}
    prompts = {
        name: _texts(text, f"flow {key!r}, prompt {name!r}", languages, required=True)
        for name, text in prompts_raw.items()
    }
    for name in REQUIRED_PROMPTS:
        if name not in prompts:
            raise FlowError(f"flow {key!r}: prompt {name!r} is missing")
    questions = tuple(_question(q, key, languages) for q in data.get("questions") or ())
    if not questions:
        raise FlowError(f"flow {key!r}: it asks no question")
    keys = [q.key for q in questions]
    if len(keys) != len(set(keys)):
        raise FlowError(f"flow {key!r}: question keys repeat")
    parameters = {q.key for q in questions if q.parameter}
    for q in questions:
        if q.type is QuestionType.IMPORTANCE and q.importance_of not in parameters:
            raise FlowError(
                f"flow {key!r}, question {q.key!r}: importance_of must name a parameter question"
            )
        if q.type is not QuestionType.COMMENT and not q.reprompt:
            needed = f"reprompt_{q.type.value}"
            if needed not in prompts:
                raise FlowError(
                    f"flow {key!r}, question {q.key!r}: no reprompt and no prompt {needed!r}"
                )
        if q.confirm and "confirm" not in prompts:
            raise FlowError(f"flow {key!r}: question {q.key!r} confirms but no 'confirm' prompt")
    settings = data.get("settings") or {}
    return Flow(
        key=str(key),
        name=str(data.get("name", key)),
        languages=languages,
        channels=channels,
        prompts=prompts,
        questions=questions,
        gather_timeout_seconds=int(settings.get("gather_timeout_seconds", 6)),
        # A web page shows buttons: an empty submission skips the question at once.
        max_reprompts={"ivr": 2, "sms": 1, "web": 0, **(settings.get("max_reprompts") or {})},
        ask_importance=bool(settings.get("ask_importance", False)),
    )


# libyaml's parser where PyYAML was built with it (its wheels are): the same safe subset,
# parsed several times faster; every web and worker process loads the flows at start-up.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_flows(directory: Path = FLOWS_DIR) -> dict[str, Flow]:
    """Every `*.yaml` flow in `directory`, validated, keyed by flow key."""
    flows: dict[str, Flow] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
        except yaml.YAMLError as exc:
            raise FlowError(f"{path.name}: not valid YAML: {exc}") from exc
        flow = parse_flow(data, path.name)
        if flow.key in flows:
            raise FlowError(f"{path.name}: flow key {flow.key!r} is defined twice")
        flows[flow.key] = flow
    return flows
