"""How `make test` spreads the suite over its workers (`--dist loadgroup`)."""

from __future__ import annotations

import pytest


def test_the_browser_tests_are_one_group_for_one_worker_and_its_chromium(
    request: pytest.FixtureRequest,
) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("run without --dist loadgroup: every test is in one process anyway")
    grouped = [i for i in request.session.items if i.get_closest_marker("xdist_group")]
    if not grouped:
        pytest.skip("no browser test in this run")
    # xdist hands a group to one worker by the group it writes into each node id; a pytest
    # that drops it spreads the group silently (see the pytest pin in pyproject.toml).
    ungrouped = [i.nodeid for i in grouped if not i.nodeid.endswith("@browser")]
    assert not ungrouped, "pytest-xdist did not group these: " + ", ".join(ungrouped[:3])
