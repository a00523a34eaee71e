"""The integration API fuzzed from its own OpenAPI document (Schemathesis): valid and invalid
requests for every operation, every check on, no failure allowed. A run of minutes, so under
`make test-slow` (CI runs it after `make test`). What only its short run used to reach in
`make test` (a key of absurd length, an unknown webhook option, a delivery of no such
subscription) has tests of its own there."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings

from gateway import throttle

# Every check is on. A schema-valid request may still break a rule no JSON schema states (a
# phone number that is no number, a period that ends before it starts): 422 says so. No NUL in
# generated strings: no column can store one, so every request with one is a 400 by design
# (gateway/security.py; tests/test_hardening.py), which would fail "valid data is accepted".
CONFIG = {
    "generation": {"allow-x00": False},
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
        }
    },
}
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def fuzz(app: Flask, headers: dict[str, str], examples: int) -> list[str]:
    """Run every operation with `examples` valid and `examples` invalid requests (the same ones
    each run: derandomized, so a failure in CI is a failure on every machine); the failures."""
    # Imported here, not at collection: Schemathesis takes seconds of CPU to import, and only
    # the test process that runs this test needs it (its pytest plugin is off, see pyproject).
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.generation.modes import GenerationMode

    config = SchemathesisConfig.from_dict(CONFIG)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=SUPPRESSED,
                database=None,
                derandomize=True,
            )
            def run(case: Any) -> None:
                # Sent as the caller's (so no check takes the key for a generated one) and put
                # on the case: Schemathesis judges a negative case by the case, and a key the
                # fuzzer removed or garbled is back when the request is sent.
                case.headers = {**(case.headers or {}), **headers}
                case.call_and_validate(headers=headers)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # report every operation's at once
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


@pytest.fixture(autouse=True)
def no_lock_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzer sends hundreds of bad keys on purpose (and expects 401 for each); the
    slow-down after failed keys has tests of its own (tests/test_access.py)."""
    monkeypatch.setattr(throttle, "AUTH_MAX_FAILURES", 10**9)


@pytest.fixture
def admin_auth(make_api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key('admin', name='fuzz')}"}


@pytest.mark.slow
def test_every_operation_keeps_its_contract(app, admin_auth):
    failures = fuzz(app, admin_auth, examples=100)
    assert not failures, "\n\n".join(failures)
