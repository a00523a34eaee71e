"""The IVR load benchmark still runs end to end: gunicorn, signed webhooks, its own database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_one_caller_for_two_seconds_completes_surveys_and_the_database_agrees() -> None:
    run = subprocess.run(
        [sys.executable, "bench/ivr_load.py", "--callers", "1", "--seconds", "2", "--warmup", "0"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The gateway's row ends with its completed surveys and its errors, whatever figures the
    # benchmark prints before them.
    gateway = re.search(r"^gateway \(post_call\)\s.*\s(\d+)\s+(\d+)$", run.stdout, re.M)
    assert gateway is not None, run.stdout
    assert int(gateway.group(1)) > 0 and int(gateway.group(2)) == 0, run.stdout
    assert re.search(r"^gateway / bare: \d", run.stdout, re.M), run.stdout
