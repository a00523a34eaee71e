"""The TwiML of each step is built once and kept: what the caller hears is the same as a
document built afresh, with each call's own action URL; a recording added later is played."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask

from audio.library import prompt_file
from gateway.voice.twiml import StepLink, render_step, step_twiml
from ivr_flows import Flow, load_flows
from ivr_flows.engine import Given, Invalid, NoInput, Step, Value, advance, start


def answer_to(step: Step, flow: Flow) -> Given:
    """The highest value of the question (a read-back, if the flow has one), or silence; a
    read-back is confirmed with 1."""
    if step.state.pending is not None:
        return Value(1, "1")
    question = step.current_question(flow, "ivr")
    span = question.value_range if question is not None else None
    return Value(span[1], str(span[1])) if span else NoInput()


def steps_of(flow: Flow) -> list[Step]:
    """A walk through the flow touching each kind of step: the start, a wrong key and its
    re-prompt, silence, a read-back awaiting confirmation, every question, the end."""
    step = start(flow, "ivr")
    seen = [step]
    wrong: list[Given] = [NoInput(), Invalid("*")]
    while not step.finished and len(seen) < 60:
        step = advance(flow, "ivr", step.state, wrong.pop() if wrong else answer_to(step, flow))
        seen.append(step)
    assert step.finished
    return seen


def test_a_kept_document_is_what_building_it_afresh_gives(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    for flow in load_flows().values():
        if "ivr" not in flow.channels:
            continue
        for language in flow.languages:
            for number, step in enumerate(steps_of(flow)):
                for link in (StepLink(7, number, "q1"), StepLink(12345, number + 1)):
                    built = str(render_step(step, flow, language, link, settings))
                    assert step_twiml(step, flow, language, link, settings) == built
                    # and again, from what was kept
                    assert step_twiml(step, flow, language, link, settings) == built


def test_a_prompt_recorded_while_running_is_played_from_the_next_step(
    app: Flask, tmp_path: Path
) -> None:
    settings = dataclasses.replace(app.config["SETTINGS"], audio_dir=tmp_path)
    flow = load_flows()["post_call"]
    step = start(flow, "ivr")
    link = StepLink(1, 1, "overall")
    assert "<Play>" not in step_twiml(step, flow, "ru", link, settings)
    greeting = prompt_file(tmp_path, "ru", "post_call/greeting")
    greeting.parent.mkdir(parents=True)
    greeting.write_bytes(b"RIFF")
    heard = step_twiml(step, flow, "ru", link, settings)
    assert heard.count("<Play>") == 1
    assert heard == str(render_step(step, flow, "ru", link, settings))


def test_a_step_link_is_its_fields_url_encoded(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    base = f"{settings.public_base_url.rstrip('/')}/voice/survey/step?"
    for link, query in [
        (StepLink(7, 3, "overall"), {"session": 7, "n": 3, "q": "overall"}),
        (StepLink(12345, 0), {"session": 12345, "n": 0}),
        (StepLink(1, 2, "a b/ü&c=d"), {"session": 1, "n": 2, "q": "a b/ü&c=d"}),
    ]:
        assert link.url(settings) == base + urlencode(query)
