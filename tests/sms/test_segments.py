"""SMS segments: the encoding rules, and every text the gateway sends within two segments."""

from __future__ import annotations

import pytest

from ivr_flows import load_flows
from ivr_flows.engine import Say, SayKind
from sms import texts
from sms.segments import count_segments, segments


def test_gsm7_fits_160_in_one_segment_then_153_per_part() -> None:
    assert count_segments("a" * 160) == count_segments("a" * 160)
    assert count_segments("a" * 160).encoding == "GSM-7"
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 306) == 2
    assert segments("a" * 307) == 3


def test_gsm7_extension_characters_count_double_and_are_never_split() -> None:
    assert count_segments("€" * 80).units == 160
    assert segments("€" * 80) == 1
    assert segments("€" * 81) == 2
    # 152 septets then an escape pair: the pair moves whole to the second part.
    assert segments("a" * 152 + "[" + "a" * 152) == 3
    assert segments("a" * 151 + "[" + "a" * 153) == 2


def test_one_non_gsm_character_makes_the_whole_text_ucs2() -> None:
    assert count_segments("a" * 70).encoding == "GSM-7"
    assert count_segments("a" * 69 + "—").encoding == "UCS-2"
    assert segments("a" * 69 + "—") == 1
    assert segments("a" * 70 + "—") == 2


def test_cyrillic_is_70_in_one_segment_then_67_per_part() -> None:
    assert segments("я" * 70) == 1
    assert segments("я" * 71) == 2
    assert segments("я" * 134) == 2
    assert segments("я" * 135) == 3


def test_an_emoji_takes_two_units_and_is_never_split() -> None:
    assert count_segments("😀").units == 2
    assert segments("я" * 68 + "😀") == 1
    assert segments("я" * 66 + "😀" + "я" * 66) == 3


def _every_text() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for flow in load_flows().values():
        if "sms" not in flow.channels or not flow.questions_for("sms"):
            continue
        for language in flow.languages:
            where = f"{flow.key}/{language}"
            found.append((f"{where}: first message", texts.first_message(flow, language)))
            for question in flow.questions_for("sms"):
                found.append((f"{where}: {question.key}", question.text_for("sms", language)))
                found.append(
                    (f"{where}: reprompt {question.key}", texts.reprompt(flow, question, language))
                )
                found.append(
                    (
                        f"{where}: reprompt and {question.key} again",
                        texts.render(flow, (Say(SayKind.REPROMPT, question.key),), language),
                    )
                )
            found.append((f"{where}: thanks", texts.render(flow, (Say(SayKind.THANKS),), language)))
    for name, variants in texts.TEXTS.items():
        for language in ("ru", "en"):
            found.append((f"{name}/{language}", variants[language]))
    return found


@pytest.mark.parametrize(("where", "text"), _every_text(), ids=[w for w, _ in _every_text()])
def test_every_text_of_every_flow_fits_in_two_segments(where: str, text: str) -> None:
    assert text.strip(), where
    assert segments(text) <= 2, f"{where}: {count_segments(text)}"


def test_the_first_message_carries_the_greeting_the_question_and_the_opt_out_hint() -> None:
    flow = load_flows()["post_call"]
    body = texts.first_message(flow, "ru")
    assert body.splitlines() == [
        flow.prompt("sms_greeting", "ru"),
        flow.question("overall").text_for("sms", "ru"),
        texts.text("opt_out_hint", "ru"),
    ]
    assert count_segments(body).encoding == "UCS-2"
