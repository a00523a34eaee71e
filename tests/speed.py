"""What makes a test process cheaper without changing what any test sees (a pytest plugin of
the suite, see conftest's `pytest_plugins`)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.routing import Rule

_Builder = Callable[..., tuple[str, str]]

# Werkzeug's own, kept for the memo below and for the test that checks the memo against it.
WERKZEUG_COMPILE_BUILDER: Callable[[Rule, bool], _Builder] | None = getattr(
    Rule, "_compile_builder", None
)
# Whether this Werkzeug compiles builders from what the memo reads (else the memo is off).
MEMO_APPLIES = WERKZEUG_COMPILE_BUILDER is not None and "_trace" in Rule.compile.__code__.co_names


def _memoize_url_builders() -> None:
    """Compile each route's URL builders once per process, not once per app.

    A test process builds a hundred apps or more (per settings, per command line run), and
    Werkzeug compiles two builder functions for each of an app's 76 routes from a generated
    syntax tree: over half of building an app. A builder depends only on the rule's parsed
    parts and defaults, read here as Werkzeug's `Rule._compile_builder` reads them, so one
    compiled for an equal rule is the same function. The function takes the rule as its first
    argument, so sharing it shares no state. A rule with a default for one of its own
    variables, which bakes a converter's output in, is compiled as before. A Werkzeug that
    no longer compiles builders this way is left alone.
    """
    compile_builder = WERKZEUG_COMPILE_BUILDER
    if compile_builder is None or not MEMO_APPLIES:
        return
    compiled: dict[tuple[Any, ...], _Builder] = {}

    def memoized(self: Rule, append_unknown: bool = True) -> _Builder:
        defaults = self.defaults or {}
        if any(dynamic and name in defaults for dynamic, name in self._trace):
            return compile_builder(self, append_unknown)
        key = (self.rule, tuple(self._trace), repr(sorted(defaults.items())), append_unknown)
        builder = compiled.get(key)
        if builder is None:
            builder = compiled[key] = compile_builder(self, append_unknown)
        return builder

    Rule._compile_builder = memoized  # type: ignore[method-assign]


_memoize_url_builders()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Leave what collection made (modules, test items: a quarter of a million objects) out of
    the garbage collector's full passes, which otherwise walk it again every few seconds."""
    gc.collect()
    gc.freeze()
