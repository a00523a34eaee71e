"""gunicorn's settings for the gateway's web processes.

`gunicorn wsgi:app` reads them through gunicorn.conf.py when started in the project's folder;
`survey-gateway run` names this module (`--config python:gateway.gunicorn_config`), so they
hold wherever it is started from.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess

# gunicorn 25 and later open a control socket for their `gunicornc` client at one path per
# user ($XDG_RUNTIME_DIR/gunicorn.ctl, else $HOME/.gunicorn/gunicorn.ctl): two gateways on one
# machine would take each other's, and a service account without a home would log an error at
# every start. Nothing of the gateway uses it.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """A web worker is gone: prometheus-client's multiprocess mode forgets its live figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
