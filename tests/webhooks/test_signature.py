"""The receiver's verification code of docs/webhooks.md, run exactly as documented."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from gateway.webhooks.signing import signature_header

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def _documented_snippet() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- verify-snippet:.*?-->\n```python\n(.*?)```", text, re.S)
    assert found, "docs/webhooks.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), str(DOC), "exec"), namespace)
    return namespace


_SNIPPET = _documented_snippet()
verify_signature = _SNIPPET["verify_signature"]
SECRET = "whsec_test-secret"
BODY = '{"id":"evt_1","type":"survey.completed","data":{"name":"Иван"}}'.encode()


def test_the_documented_snippet_accepts_what_the_gateway_signs() -> None:
    header = signature_header(SECRET, int(time.time()), BODY)
    assert verify_signature(SECRET, header, BODY)


def test_the_documented_snippet_refuses_a_changed_body_or_another_secret() -> None:
    header = signature_header(SECRET, int(time.time()), BODY)
    assert not verify_signature(SECRET, header, BODY.replace(b"evt_1", b"evt_2"))
    assert not verify_signature("whsec_other", header, BODY)
    assert not verify_signature(SECRET, "garbage", BODY)
    assert not verify_signature(SECRET, "", BODY)


def test_the_documented_snippet_refuses_a_replay_outside_its_window() -> None:
    window = _SNIPPET["REPLAY_WINDOW_SECONDS"]
    old = signature_header(SECRET, int(time.time()) - window - 60, BODY)
    assert not verify_signature(SECRET, old, BODY)
    recent = signature_header(SECRET, int(time.time()) - window + 60, BODY)
    assert verify_signature(SECRET, recent, BODY)
