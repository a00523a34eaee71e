"""`survey-gateway surveys verify-scores`, `rebuild-scores` and `rescore` on a live database."""

from __future__ import annotations

import re

from click.testing import CliRunner
from sqlalchemy import delete, select, update

from gateway.cli import main
from gateway.models import SurveySession
from gateway.reports.models import ScoreBucket, ScoreBucketParameter
from tests.reports.factories import Seeder, at

SEPTEMBER = ["--from", "2026-09-01", "--to", "2026-09-30"]


def _run(database_url, tmp_path, *args, **env):
    env = {
        "DATABASE_URL": database_url,
        "SURVEY_GATEWAY_VAR_DIR": str(tmp_path),
        "REPORT_TIMEZONE": "Europe/Moscow",
        **env,
    }
    return CliRunner().invoke(main, ["surveys", *args], env=env)


def test_verify_finds_a_damaged_rollup_and_rebuild_repairs_it(live_app, database_url, tmp_path):
    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        operator = Seeder(session).operator("op-cli", "North")
        Seeder(session).survey(operator, {"overall": 4, "speed": 5}, at("2026-09-05"))
        Seeder(session).survey(operator, {"overall": 2}, at("2026-09-06"))
        session.commit()
        assert session.scalars(select(ScoreBucket.responses)).all() == [1, 1]
        # A bulk SQL change that bypasses the gateway: the rollup loses a day.
        session.execute(delete(ScoreBucketParameter))
        session.execute(delete(ScoreBucket).where(ScoreBucket.overall_4 == 1))
        session.commit()

    found = _run(database_url, tmp_path, "verify-scores", *SEPTEMBER)
    assert found.exit_code == 1, found.output
    assert "2026-09-05" in found.output and "responses 0 (expected 1)" in found.output
    assert "2026-09-06" not in found.output

    rebuilt = _run(database_url, tmp_path, "rebuild-scores", *SEPTEMBER)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt 2 buckets" in rebuilt.output
    with live_app.app_context():
        session = database.session()
        assert session.scalars(select(ScoreBucket.responses)).all() == [1, 1]
        assert session.execute(
            select(ScoreBucketParameter.key, ScoreBucketParameter.total)
        ).all() == [("speed", 5.0)]

    clean = _run(database_url, tmp_path, "verify-scores", *SEPTEMBER)
    assert clean.exit_code == 0, clean.output
    assert "matches the raw rows" in clean.output


def test_verify_reports_a_frozen_score_that_its_answers_do_not_give(
    live_app, database_url, tmp_path
):
    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        operator = Seeder(session).operator("op-frozen")
        survey = Seeder(session).survey(operator, {"overall": 5}, at("2026-09-05"))
        session.commit()
        session.execute(
            update(SurveySession).where(SurveySession.id == survey.id).values(score_overall=1)
        )
        session.commit()
    found = _run(database_url, tmp_path, "verify-scores", *SEPTEMBER)
    assert found.exit_code == 1
    assert f"survey {survey.id}: frozen score differs from its answers" in found.output


def test_rebuild_and_rescore_refuse_what_they_cannot_do(database_url, tmp_path):
    backward = _run(
        database_url, tmp_path, "rebuild-scores", "--from", "2026-09-30", "--to", "2026-09-01"
    )
    assert backward.exit_code != 0
    assert "before" in backward.output
    no_period = _run(database_url, tmp_path, "rebuild-scores")
    assert no_period.exit_code != 0
    assert "--all" in no_period.output or "--from" in no_period.output
    unknown = _run(database_url, tmp_path, "rescore", *SEPTEMBER, "--flow", "gone")
    assert unknown.exit_code != 0
    assert "flow 'gone' is not loaded" in unknown.output


def test_rescore_applies_new_weights_to_the_period_named_and_is_audited(
    live_app, database_url, tmp_path
):
    from gateway.models import AuditEvent
    from ivr_flows import FLOWS_DIR

    database = live_app.extensions["database"]
    with live_app.app_context():
        session = database.session()
        operator = Seeder(session).operator("op-rescore")
        answers = {"overall": 4, "cost": 1, "speed": 5, "politeness": 5, "quality": 5}
        september = Seeder(session).survey(operator, answers, at("2026-09-05"))
        october = Seeder(session).survey(operator, answers, at("2026-10-05"))
        session.commit()
        assert september.score_csi == october.score_csi == 75.0  # four parameters, weight 1

    # The flow files as edited: the cost no longer weighs in post_call's CSI.
    edited = tmp_path / "flows"
    edited.mkdir()
    for shipped in FLOWS_DIR.glob("*.yaml"):
        (edited / shipped.name).write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    post_call = edited / "post_call.yaml"
    text, changed = re.subn(
        r"(- key: cost\n(?:.*\n)*?\s+weight: )1\.0", r"\g<1>0.0", post_call.read_text(), count=1
    )
    assert changed == 1
    post_call.write_text(text, encoding="utf-8")
    done = _run(
        database_url, tmp_path, "rescore", *SEPTEMBER, "--flow", "post_call", FLOWS_DIR=str(edited)
    )
    assert done.exit_code == 0, done.output
    assert "rescored 1 surveys of flow post_call" in done.output
    with live_app.app_context():
        session = database.session()
        scores = dict(session.execute(select(SurveySession.id, SurveySession.score_csi)).all())
        assert scores == {september.id: 100.0, october.id: 75.0}  # October keeps its weights
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "surveys.rescore"))
        assert [(a.subject_id, a.detail["surveys"]) for a in audit] == [("post_call", 1)]
    clean = _run(
        database_url, tmp_path, "verify-scores", "--from", "2026-09-01", "--to", "2026-10-31"
    )
    assert clean.exit_code == 0, clean.output
