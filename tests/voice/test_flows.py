"""Flows as data: validation at load, the pure engine, and the prompts the IVR speaks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import ivr_flows.loader as loader
from audio.prompts import number_words, prompt_for, spoken_prompts
from ivr_flows import FlowError, FlowState, load_flows, parse_flow
from ivr_flows.engine import (
    Invalid,
    NoInput,
    Recorded,
    Say,
    SayKind,
    Value,
    advance,
    start,
)

FLOWS_DIR = Path(loader.__file__).parent


def raw_flow(name: str = "post_call") -> dict[str, Any]:
    data = yaml.safe_load((FLOWS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_shipped_flows_load_and_every_one_serves_the_ivr() -> None:
    flows = load_flows()
    assert {"post_call", "quick_csat", "post_call_nps"} <= set(flows)
    for flow in flows.values():
        assert flow.questions_for("ivr"), flow.key


def test_nps_flow_asks_the_four_parameters_then_nps_on_both_channels() -> None:
    flow = load_flows()["post_call_nps"]
    keys = ["overall", "cost", "speed", "politeness", "quality", "nps"]
    assert [q.key for q in flow.questions_for("ivr")] == keys
    assert [q.key for q in flow.questions_for("sms")] == keys
    nps = flow.question("nps")
    assert nps.confirm and nps.value_range == (0, 10)
    assert set(nps.sms_text) == {"ru", "en"}
    assert flow.timeout_for(nps) < flow.gather_timeout_seconds


def test_an_unknown_question_type_is_refused_with_a_clear_message() -> None:
    data = raw_flow()
    data["questions"][1]["type"] = "stars"
    with pytest.raises(FlowError, match=r"question 'cost': unknown question type 'stars'"):
        parse_flow(data, "post_call.yaml")


def test_a_prompt_missing_for_a_language_is_refused() -> None:
    data = raw_flow()
    del data["prompts"]["thanks"]["en"]
    with pytest.raises(FlowError, match=r"prompt 'thanks': no text for language en"):
        parse_flow(data)


def test_a_question_text_missing_for_a_language_is_refused() -> None:
    data = raw_flow("quick_csat")
    data["questions"][0]["text"] = {"ru": "Оцените"}
    with pytest.raises(FlowError, match=r"question 'overall', text: no text for language en"):
        parse_flow(data)


def test_a_confirming_question_needs_the_confirm_prompt() -> None:
    data = raw_flow("post_call_nps")
    del data["prompts"]["confirm"]
    with pytest.raises(FlowError, match="confirms but no 'confirm' prompt"):
        parse_flow(data)


def _question(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(q for q in data["questions"] if q["key"] == key)


MISTAKES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("no key", lambda d: d.pop("key"), r"post_call\.yaml: the flow has no key"),
    ("no greeting", lambda d: d["prompts"].pop("greeting"), r"prompt 'greeting' is missing"),
    ("no question", lambda d: d.update(questions=[]), r"flow 'post_call': it asks no question"),
    (
        "a key twice",
        lambda d: d["questions"].append(dict(_question(d, "cost"))),
        r"flow 'post_call': question keys repeat",
    ),
    ("a question without key", lambda d: _question(d, "cost").pop("key"), r"a question has no key"),
    (
        "a misspelt field",
        lambda d: _question(d, "cost").update(wieght=2),
        r"question 'cost': unknown field\(s\) wieght",
    ),
    (
        "an unknown channel",
        lambda d: _question(d, "cost").update(channels=["fax"]),
        r"question 'cost': channels must be among ivr, sms, web",
    ),
    (
        "a voice comment by SMS",
        lambda d: _question(d, "comment").update(channels=["ivr", "sms"]),
        r"question 'comment': a voice comment is asked by phone only",
    ),
    (
        "a text that is no mapping",
        lambda d: _question(d, "cost").update(text="Rate the cost"),
        r"question 'cost', text: expected a mapping of language to text",
    ),
    (
        "an importance of no parameter",
        lambda d: _question(d, "importance_cost").update(importance_of="overall"),
        r"question 'importance_cost': importance_of must name a parameter question",
    ),
    (
        "no way to ask again",
        lambda d: d["prompts"].pop("reprompt_rating"),
        r"question 'overall': no reprompt and no prompt 'reprompt_rating'",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in MISTAKES], ids=[n for n, _, _ in MISTAKES]
)
def test_a_mistake_in_a_flow_file_is_refused_saying_where(
    change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    data = raw_flow()
    change(data)
    with pytest.raises(FlowError, match=message):
        parse_flow(data, "post_call.yaml")


def test_a_flow_file_that_is_no_flow_or_repeats_a_key_stops_the_loading(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(FlowError, match=r"a\.yaml: a flow must be a mapping"):
        load_flows(tmp_path)
    (tmp_path / "a.yaml").write_text("key: [unclosed\n", encoding="utf-8")
    with pytest.raises(FlowError, match=r"a\.yaml: not valid YAML"):
        load_flows(tmp_path)
    shipped = (FLOWS_DIR / "quick_csat.yaml").read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(shipped, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(shipped, encoding="utf-8")
    with pytest.raises(FlowError, match=r"b\.yaml: flow key 'quick_csat' is defined twice"):
        load_flows(tmp_path)


def test_an_invalid_flow_stops_start_up(tmp_path: Path) -> None:
    from gateway import create_app

    data = raw_flow("quick_csat")
    data["questions"][0]["type"] = "smiley"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(FlowError, match="unknown question type 'smiley'"):
        create_app(
            {
                "env": "test",
                "var_dir": tmp_path / "var",
                "database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                "flows_dir": tmp_path,
            }
        )


class TestEngine:
    flow = load_flows()["post_call"]
    nps_flow = load_flows()["post_call_nps"]

    def test_start_greets_and_asks_the_first_question(self) -> None:
        step = start(self.flow, "ivr")
        assert step.say == (Say(SayKind.GREETING), Say(SayKind.QUESTION, "overall"))
        assert step.state == FlowState()

    def test_a_value_in_range_is_recorded_and_the_next_question_asked(self) -> None:
        step = advance(self.flow, "ivr", FlowState(), Value(4, "4"))
        assert step.recorded is not None and step.recorded.value == 4
        assert step.say == (Say(SayKind.QUESTION, "cost"),)

    @pytest.mark.parametrize("given", [Value(6, "6"), Value(0, "0"), Invalid("*"), NoInput()])
    def test_wrong_or_no_input_reprompts_at_most_twice_then_skips(self, given: Any) -> None:
        state = FlowState()
        for expected in (1, 2):
            step = advance(self.flow, "ivr", state, given)
            assert step.recorded is None
            assert step.say == (Say(SayKind.REPROMPT, "overall"),)
            state = step.state
            assert state.reprompts == expected
        step = advance(self.flow, "ivr", state, given)
        assert step.recorded is not None and step.recorded.value is None
        assert step.state.index == 1

    def test_the_question_setting_overrides_the_flow_reprompt_limit(self) -> None:
        import dataclasses

        question = dataclasses.replace(self.flow.questions[0], max_reprompts=0)
        flow = dataclasses.replace(self.flow, questions=(question, *self.flow.questions[1:]))
        step = advance(flow, "ivr", FlowState(), NoInput())
        assert step.recorded is not None and step.recorded.value is None

    def test_a_voice_comment_is_recorded_with_its_url_and_duration(self) -> None:
        last = len(self.flow.questions_for("ivr")) - 1
        step = advance(self.flow, "ivr", FlowState(last), Recorded("https://r/RE1", 9))
        assert step.finished
        assert step.recorded is not None
        assert (step.recorded.recording_url, step.recorded.recording_duration) == (
            "https://r/RE1",
            9,
        )

    def test_nps_is_read_back_by_phone_and_stored_on_key_one(self) -> None:
        at_nps = FlowState(5)
        step = advance(self.nps_flow, "ivr", at_nps, Value(10, "10"))
        assert step.recorded is None
        assert step.say == (Say(SayKind.CONFIRM, "nps", 10),)
        done = advance(self.nps_flow, "ivr", step.state, Value(1, "1"))
        assert done.finished and done.recorded is not None and done.recorded.value == 10
        again = advance(self.nps_flow, "ivr", step.state, Value(2, "2"))
        assert again.recorded is None and again.say == (Say(SayKind.QUESTION, "nps"),)

    def test_nps_by_sms_is_one_reply(self) -> None:
        step = advance(self.nps_flow, "sms", FlowState(5), Value(10, "10"))
        assert step.finished and step.recorded is not None and step.recorded.value == 10

    def test_nps_out_of_range_reprompts(self) -> None:
        step = advance(self.nps_flow, "ivr", FlowState(5), Value(11, "11"))
        assert step.say == (Say(SayKind.REPROMPT, "nps"),)


def test_every_spoken_prompt_has_a_unique_id_and_text_in_each_language() -> None:
    for flow in load_flows().values():
        for language in flow.languages:
            prompts = list(spoken_prompts(flow, language))
            ids = [p.id for p in prompts]
            assert len(ids) == len(set(ids)), flow.key
            assert all(p.text and "{value}" not in p.text for p in prompts)
            assert not any(p.id.split("/")[-1].startswith("sms_") for p in prompts)


def test_read_backs_cover_every_nps_value_in_words() -> None:
    flow = load_flows()["post_call_nps"]
    ids = {p.id: p.text for p in spoken_prompts(flow, "en")}
    assert [f"post_call_nps/confirm/{n}" in ids for n in range(11)] == [True] * 11
    assert ids["post_call_nps/confirm/0"].startswith("You entered zero.")
    assert number_words(10, "ru") == "десять"
    assert number_words(7, "en") == "seven"
    say = prompt_for(flow, Say(SayKind.CONFIRM, "nps", 3), "ru")
    assert say.id == "post_call_nps/confirm/3" and "три" in say.text
