"""gunicorn's settings, read from the working directory (`gunicorn wsgi:app`)."""

import os

from prometheus_client import multiprocess


def child_exit(server: object, worker: object) -> None:
    """A web worker is gone: prometheus-client's multiprocess mode forgets its live figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
