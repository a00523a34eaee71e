"""The suite's own shortcuts (tests/speed.py) change nothing a test sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import Rule

from tests import speed
from tests.conftest import make_test_app


def _outcome(build: Any, rule: Rule, value: str) -> Any:
    try:
        return build(rule, **dict.fromkeys(rule.arguments, value), extra="q")
    except Exception as exc:  # a converter refusing the value: the same refusal either way
        return type(exc).__name__


def test_apps_share_each_routes_url_builders_and_they_build_what_werkzeugs_would(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    own = speed.WERKZEUG_COMPILE_BUILDER
    if own is None or not speed.MEMO_APPLIES:
        pytest.skip("this Werkzeug compiles its builders another way: the memo is off")
    other = make_test_app(database_url, tmp_path / "var")
    try:
        theirs = {(r.rule, r.endpoint): r for r in other.url_map.iter_rules()}
        rules = list(app.url_map.iter_rules())
        assert len(rules) == len(theirs) > 50
        for rule in rules:
            twin = theirs[rule.rule, rule.endpoint]
            assert rule._build.__func__ is twin._build.__func__, rule.rule
            for append_unknown in (False, True):
                shared = rule._compile_builder(append_unknown)
                compiled = own(rule, append_unknown)
                for value in ("1", "csv", "x y/ж"):
                    assert _outcome(shared, rule, value) == _outcome(compiled, rule, value)
    finally:
        other.extensions["database"].dispose()
