"""gunicorn takes the gateway's settings however it is started: with the README's production
command from anywhere, as `survey-gateway run` starts it from anywhere, and as plain
`gunicorn wsgi:app` in the project's folder (gunicorn.conf.py)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from gunicorn.app.wsgiapp import WSGIApplication

from gateway import gunicorn_config
from gateway.devserver import _commands

REPO = Path(__file__).resolve().parents[1]


def _readme_command() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    production = readme.split("## Production deployment", 1)[1]
    line = re.search(r"^gunicorn .*$", production, re.M)
    assert line is not None, "the README shows no gunicorn command for production"
    return shlex.split(line.group(0), comments=True)


def _run_command() -> list[str]:
    web = dict(_commands(8000, 2))["web"]
    assert web[1:3] == ["-m", "gunicorn"]
    return web[2:]


@pytest.mark.parametrize(
    ("argv", "in_project"),
    [
        pytest.param(_readme_command(), False, id="README's, from anywhere"),
        pytest.param(_run_command(), False, id="survey-gateway run's, from anywhere"),
        pytest.param(["gunicorn", "wsgi:app"], True, id="plain, in the project's folder"),
    ],
)
def test_gunicorn_opens_no_control_socket_and_tells_prometheus_of_exits(
    argv: list[str], in_project: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO if in_project else tmp_path)
    monkeypatch.setattr(sys, "argv", argv)
    settings = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    # No socket at the one path per user that two gateways on a machine would share.
    assert settings.control_socket_disable is True
    assert settings.child_exit is gunicorn_config.child_exit
