"""`survey-gateway surveys rebuild-scores`: the rollup recomputed from raw answers."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import delete, select

from gateway.cli import main
from gateway.reports.models import OperatorDayParameter, OperatorDayScore
from tests.reports.factories import Seeder, at


def test_rebuild_scores_restores_a_lost_rollup_from_the_raw_answers(
    live_app, database_url, tmp_path
):
    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        operator = Seeder(session).operator("op-cli", "North")
        Seeder(session).survey(operator, {"overall": 4, "speed": 5}, at("2026-09-05"))
        session.commit()
        kept = session.execute(select(OperatorDayScore.responses)).scalars().all()
        assert kept == [1]
        session.execute(delete(OperatorDayParameter))
        session.execute(delete(OperatorDayScore))
        session.commit()

    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        main, ["surveys", "rebuild-scores", "--from", "2026-09-01", "--to", "2026-09-30"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "rebuilt 1 operator-day rows" in result.output
    with live_app.app_context():
        session = database.session()
        assert session.execute(select(OperatorDayScore.responses)).scalars().all() == [1]
        assert session.execute(
            select(OperatorDayParameter.key, OperatorDayParameter.total)
        ).all() == [("speed", 5.0)]


def test_rebuild_scores_refuses_a_backward_period(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        main, ["surveys", "rebuild-scores", "--from", "2026-09-30", "--to", "2026-09-01"], env=env
    )
    assert result.exit_code != 0
    assert "before" in result.output
