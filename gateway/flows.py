"""The survey flows an app runs: loaded once when the app is built, then held by the app.

They are the app's, never the process's: `create_app(flows=...)` builds an app with others
(a test's, an extra flow), and two apps of one process run each its own. The app keeps them
in `app.extensions["flows"]` and its sessionmaker gives them to every session it makes, so
domain code given a session (or a row loaded through one) finds them with `flows_of` and
needs neither Flask nor a process-wide cache; views, tasks and commands use `current_flows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from flask import current_app
from sqlalchemy.orm import Session, object_session

from ivr_flows import Flow, load_flows

Flows = Mapping[str, Flow]

_KEY = "flows"


def init_app(app: Any, flows: Flows | None = None) -> None:
    """Hold `flows` (else those in FLOWS_DIR, loaded and checked now: a broken flow stops
    start-up, never a caller mid-call) and hand them to each session of the app's database."""
    directory: Path = app.config["SETTINGS"].flows_dir
    held: Flows = MappingProxyType(dict(load_flows(directory) if flows is None else flows))
    app.extensions[_KEY] = held
    database = app.extensions["database"]
    database.session_factory.configure(info={_KEY: held})


def current_flows() -> Flows:
    """The current app's flows (inside an app context: a request, a task, a command)."""
    return cast(Flows, current_app.extensions[_KEY])


def flows_of(session: Session) -> Flows:
    """The flows of the app whose database made `session`."""
    try:
        return cast(Flows, session.info[_KEY])
    except KeyError:
        raise RuntimeError("this session was not made by a gateway app: it has no flows") from None


def flows_of_row(row: object) -> Flows:
    """The flows of the app whose session loaded (or added) `row`."""
    session = object_session(row)
    if session is None:
        raise RuntimeError(f"{type(row).__name__} is in no session: its app's flows are unknown")
    return flows_of(session)
