"""The arrows of the house point one way: channels import the core, never each other; the core
imports no channel; no two modules import each other, directly or round a circle.

Built by grimp from every import statement, those inside functions included.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import grimp
import pytest
from flask import Flask

from gateway.dispatch import RECONCILE_SMS_TASK, HandOverStep, sweep_steps

PACKAGES = ("gateway", "sms", "audio", "ivr_flows")
# Where the parts are put together: the web app's factory and the command line.
COMPOSITION_ROOTS = frozenset({"gateway", "gateway.cli"})
# A survey reaches a customer through one of these; each may import the core only.
CHANNELS = ("sms", "gateway.voice", "gateway.websurvey", "gateway.sip")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def channel_of(module: str) -> str | None:
    for channel in CHANNELS:
        if module == channel or module.startswith(channel + "."):
            return channel
    return None


def arrows(graph: grimp.ImportGraph) -> Iterable[tuple[str, str]]:
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            yield importer, imported


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of modules (Tarjan), each one an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def crossings(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Arrows from one channel into another."""
    return [
        (importer, imported)
        for importer, imported in arrows(graph)
        if channel_of(importer) and channel_of(imported)
        if channel_of(importer) != channel_of(imported)
    ]


def upward(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Arrows from the core (anything but a channel or a composition root) into a channel."""
    return [
        (importer, imported)
        for importer, imported in arrows(graph)
        if importer not in COMPOSITION_ROOTS and not channel_of(importer)
        if channel_of(imported)
    ]


def test_no_import_circles(graph: grimp.ImportGraph) -> None:
    assert circles(graph) == []


def test_channels_never_import_each_other(graph: grimp.ImportGraph) -> None:
    assert crossings(graph) == []


def test_the_core_imports_no_channel(graph: grimp.ImportGraph) -> None:
    """Not even the sweep: each channel adds its steps to it (`gateway.dispatch.add_sweep_step`)."""
    assert upward(graph) == []


def test_every_channel_step_of_the_sweep_is_added_by_its_channel(app: Flask) -> None:
    """The sweep runs SMS's reconciliation and expiry, voice's silent calls and the web links'
    expiry, and none of them is the core's: each channel adds its own in its `init_app`."""
    steps = sweep_steps(app)
    owners = [getattr(step, "step", step).__module__ for step in steps]
    assert [channel_of(owner) for owner in owners] == [
        "gateway.voice",
        "sms",
        "sms",
        "gateway.websurvey",
    ]
    assert [step.task for step in steps if isinstance(step, HandOverStep)] == [RECONCILE_SMS_TASK]


def test_the_checks_find_a_circle_a_crossing_and_an_upward_arrow() -> None:
    bad = grimp.ImportGraph()
    for importer, imported in [
        ("gateway.dispatch", "gateway.surveys"),
        ("gateway.surveys", "gateway.dispatch"),
        ("sms.service", "gateway.voice.service"),
        ("gateway.dispatch", "gateway.websurvey.service"),
        ("gateway.dispatch", "sms.sweep"),
        ("gateway.retries", "sms"),
        ("gateway", "sms.views"),
    ]:
        bad.add_import(importer=importer, imported=imported)
    assert circles(bad) == [["gateway.dispatch", "gateway.surveys"]]
    assert crossings(bad) == [("sms.service", "gateway.voice.service")]
    assert upward(bad) == [
        ("gateway.dispatch", "gateway.websurvey.service"),
        ("gateway.dispatch", "sms.sweep"),
        ("gateway.retries", "sms"),
    ]


def test_every_webhook_and_page_commits_the_requests_session() -> None:
    """One transaction idiom for views: the request's session (`current_session()`), committed
    by the view, rolled back when the request ends in an error; no view opens its own."""
    root = Path(__file__).resolve().parent.parent
    views = [path for package in PACKAGES for path in (root / package).rglob("views.py")]
    assert len(views) >= 5
    assert [str(p.relative_to(root)) for p in views if "session_scope(" in p.read_text()] == []
