"""gunicorn settings for the benchmarks: the gateway's own (gateway/gunicorn_config.py), and
each worker marks itself ready once the app is loaded.

The bench waits for every worker's mark before it loads the server, so that no worker is still
importing the app (seconds on a busy machine) while calls are timed and its CPU counted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.gunicorn_config import child_exit, control_socket_disable

__all__ = ["child_exit", "control_socket_disable", "post_worker_init"]


def post_worker_init(worker: Any) -> None:
    Path(os.environ["BENCH_READY_DIR"], str(worker.pid)).touch()
