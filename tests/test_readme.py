"""The README is the front door: every command, make target, setting, API path, flow and file
it shows must exist as shown. (The commands are run for real by the other tests: `make run`
by test_process, each CLI command by its own test; here each one shown is checked to be
there, with the options the README gives it.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from flask import Flask

from gateway.cli import main
from gateway.config import Settings, _env_name
from ivr_flows import load_flows

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
CODE_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
INLINE = re.findall(r"`([^`\n]+)`", README)


def _shell_commands() -> list[list[str]]:
    """Each `make` and `survey-gateway` command of the README's shell blocks, as words."""
    commands = []
    for block in CODE_BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith(("make ", ".venv/bin/survey-gateway ", "survey-gateway ")):
                commands.append(shlex.split(line, comments=True))
    return commands


def _cli_uses() -> list[list[str]]:
    """Every `survey-gateway ...` the README shows, in code blocks or inline."""
    uses = []
    for words in _shell_commands():
        for start, word in enumerate(words):
            if word.endswith("survey-gateway"):
                uses.append(words[start + 1 :])
    for text in INLINE:
        if text.startswith("survey-gateway "):
            uses.append(shlex.split(text)[1:])
    return uses


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = main
    rest = list(words)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


@pytest.mark.parametrize("words", _cli_uses(), ids=" ".join)
def test_each_command_shown_exists_with_the_options_shown(words: list[str]) -> None:
    command, rest = _resolve(words)
    assert not isinstance(command, click.Group), f"no command {' '.join(words)!r}"
    known = {name for param in command.params for name in getattr(param, "opts", [])}
    shown = {word.split("=")[0] for word in rest if word.startswith("--")}
    assert shown <= known, f"{' '.join(words)}: unknown options {shown - known}"


def test_each_make_target_shown_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w.-]*):", makefile, re.M))
    shown = {w[1] for w in _shell_commands() if w[:1] == ["make"] and len(w) > 1}
    shown |= {t.split()[1] for t in INLINE if re.fullmatch(r"make [\w-]+", t)}
    assert shown and shown <= targets, shown - targets


def test_each_setting_in_the_table_is_read_by_the_gateway() -> None:
    names = {_env_name(f) for f in Settings.__dataclass_fields__}
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            listed.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
    assert listed and listed <= names, f"not settings: {listed - names}"
    unlisted = names - listed
    assert not unlisted, f"settings missing from the README's table: {sorted(unlisted)}"


def _api_table() -> str:
    section = README.split("## The API", 1)[1].split("\n## ", 1)[0]
    return section.split("| method, path |", 1)[1].split("\n\n", 1)[0]


def _shape(path: str) -> str:
    """/a/{id}/b and /a/<int:x>/b alike: /a/{}/b."""
    return re.sub(r"\{\w+\}|<(?:\w+:)?\w+>", "{}", path)


def test_the_api_table_is_one_table_and_each_path_is_served(app: Flask) -> None:
    table = _api_table()
    assert "/api/v1/reports/operators" in table, "a blank line splits the API table"
    served = {
        (method, _shape(rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
    }
    shown = [
        (method, _shape(path))
        for row in table.splitlines()[2:]
        for method, path in re.findall(r"`(GET|POST|DELETE) (/[^`?]+)", row.split("|")[1])
    ]
    assert len(shown) > 10
    missing = [f"{m} {p}" for m, p in shown if (m, p) not in served]
    assert not missing, f"in the README's API table but not served: {missing}"


def test_the_trend_is_shown_with_its_required_period() -> None:
    trend = next(line for line in README.splitlines() if "/trend" in line and "| `GET" in line)
    assert "from=" in trend and "to=" in trend


def test_the_flows_described_are_the_ones_shipped_and_ask_what_is_said() -> None:
    flows = load_flows()
    section = README.split("### Flows", 1)[1].split("\n### ", 1)[0]
    for key in re.findall(r"`(\w+)` \(", section):
        assert key in flows, f"flow {key} is not shipped"
    post_call = flows["post_call"]
    asked = {q.key for q in post_call.questions_for("ivr")}
    if not any(k.startswith("importance_") for k in asked):
        assert "an importance set and" not in section.split("`post_call_nps`")[0]


def test_linked_files_exist() -> None:
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (REPO / link).exists(), link


def test_the_quick_start_does_not_background_make_run() -> None:
    for words in _shell_commands():
        assert words[:2] != ["make", "run"] or "&" not in words, "Ctrl-C cannot stop `make run &`"
