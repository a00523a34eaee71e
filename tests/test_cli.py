"""The `survey-gateway` command line, run as an operator runs it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from gateway import devserver
from gateway.cli import main
from gateway.config import load_settings
from gateway.models import ApiKey
from ivr_flows import FLOWS_DIR
from tests.factories import interaction_payload

REPO = Path(__file__).resolve().parents[1]


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(
    live_app, database_url, tmp_path
):
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    result = runner.invoke(
        main, ["apikey", "create", "--name", "crm", "--role", "integration"], env=env
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("sgw_")

    with live_app.app_context():
        rows = live_app.extensions["database"].session().scalars(select(ApiKey)).all()
        assert len(rows) == 1
        assert key not in (rows[0].key_hash, rows[0].prefix)
    response = live_app.test_client().post(
        "/api/v1/interactions",
        json=interaction_payload(),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201


def test_supervisor_key_needs_a_team(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        main, ["apikey", "create", "--name", "boss", "--role", "supervisor"], env=env
    )
    assert result.exit_code != 0
    assert "--team" in result.output


def test_db_upgrade_migrates_a_new_embedded_database(tmp_path):
    env = {"SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "survey-gateway.sqlite3").exists()


def test_the_embedded_database_is_the_projects_whatever_the_current_directory(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SURVEY_GATEWAY_VAR_DIR", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings({})
    assert settings.var_dir == REPO / "var"
    assert settings.database_url == f"sqlite:///{REPO / 'var' / 'survey-gateway.sqlite3'}"


def test_a_command_with_no_database_says_where_it_looked_and_creates_nothing(tmp_path):
    var = tmp_path / "elsewhere"
    env = {"DATABASE_URL": None, "SURVEY_GATEWAY_VAR_DIR": str(var)}
    result = CliRunner().invoke(
        main, ["apikey", "create", "--name", "crm", "--role", "integration"], env=env
    )
    assert result.exit_code == 1
    assert f"no database file at {var / 'survey-gateway.sqlite3'}" in result.output
    assert "SURVEY_GATEWAY_VAR_DIR" in result.output and "db upgrade" in result.output
    assert not (var / "survey-gateway.sqlite3").exists()


def test_a_database_without_the_gateways_tables_is_named(tmp_path):
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    env = {"DATABASE_URL": f"sqlite:///{path}", "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["surveys", "dispatch-due"], env=env)
    assert result.exit_code == 1
    assert f"the database sqlite:///{path} has no gateway tables" in result.output


def _broken_flows(tmp_path: Path) -> Path:
    """A copy of the shipped flows where post_call's speed question has a type no one knows."""
    flows = tmp_path / "flows"
    flows.mkdir()
    for shipped in FLOWS_DIR.glob("*.yaml"):
        (flows / shipped.name).write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    post_call = flows / "post_call.yaml"
    text = post_call.read_text(encoding="utf-8").replace(
        "  - key: speed\n    type: rating\n", "  - key: speed\n    type: stars\n", 1
    )
    post_call.write_text(text, encoding="utf-8")
    return flows


def test_a_broken_flow_stops_make_run_with_its_message_before_anything_starts(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SURVEY_GATEWAY_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWS_DIR", str(_broken_flows(tmp_path)))
    started = []
    monkeypatch.setattr(devserver.subprocess, "Popen", lambda *a, **k: started.append(a))

    assert devserver.run_all(port=8999) == 2
    assert started == []
    assert "flow 'post_call', question 'speed': unknown question type 'stars'" in (
        capsys.readouterr().err
    )


def test_a_broken_flow_stops_a_command_with_its_message(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "FLOWS_DIR": str(_broken_flows(tmp_path))}
    result = CliRunner().invoke(main, ["surveys", "dispatch-due"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: flow 'post_call', question 'speed': unknown question type 'stars'"
    )
