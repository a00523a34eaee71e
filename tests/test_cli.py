"""The `survey-gateway` command line, run as an operator runs it."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import main
from gateway.models import ApiKey
from tests.factories import interaction_payload


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
