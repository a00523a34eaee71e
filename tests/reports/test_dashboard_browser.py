"""The dashboard in a real browser (headless Chromium): a supervisor reads the ranking, finds
the API's figures in it, opens an operator (chart, voice comment), then a contact; another
team's supervisor is refused that operator; an operator sees only their own figures; wrong
passwords lock an account. `make screenshots` keeps a PNG of each page."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from gateway.db import utcnow
from gateway.models import Answer
from gateway.surveys import open_incident
from tests.reports.factories import Seeder

RATED = ("cost", "speed", "politeness", "quality")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"report_min_responses": 8}


@pytest.fixture
def recent_weeks(live_app: Flask) -> dict[str, int]:
    """Three weeks of answers up to yesterday for four operators in two teams, committed."""
    rng = random.Random(12)
    now = utcnow()
    with live_app.app_context():
        session = live_app.extensions["database"].session()
        seeder = Seeder(session)
        styles = {
            ("op-1", "Анна Петрова", "Север"): (4, 5, 5, 5, 4),
            ("op-2", "Борис Иванов", "Север"): (3, 4, 4, 5, 2),
            ("op-3", "Вера Смирнова", "Юг"): (5, 5, 4, 3, 5),
            ("op-4", "Глеб Орлов", "Юг"): (2, 3, 4, 5),
        }
        ids: dict[str, int] = {}
        for (external_id, name, team), scores in styles.items():
            operator = seeder.operator(external_id, team, name)
            count = 4 if external_id == "op-4" else 14  # op-4: too few answers for a rank
            for n in range(count):
                answers = {"overall": rng.choice(scores)}
                answers.update({key: rng.choice(scores) for key in RATED})
                ended = now - timedelta(days=1 + n * 1.4, hours=rng.randrange(0, 8))
                channel = "office_visit" if n % 3 == 0 else "call"
                survey = seeder.survey(
                    operator, answers, ended, channel=channel, office="central" if n % 2 else None
                )
                if n == 0:
                    ids[external_id] = survey.interaction_id
                    session.add(
                        Answer(
                            session_id=survey.id,
                            question_key="comment",
                            recording_url="https://api.twilio.com/2010-04-01/Accounts/AC0/"
                            "Recordings/RE" + "1" * 32,
                            recording_duration=9,
                            answered_at=ended,
                        )
                    )
                if answers["overall"] <= 2:
                    open_incident(session, survey, answers["overall"], ended)
        session.commit()
    return ids


def test_supervisor_finds_the_apis_figures_and_drills_down_to_a_contact(
    dashboard, live_app: Flask, live_key, live_account, recent_weeks
) -> None:
    key = live_key("supervisor", "Север", "Ольга")
    dashboard.sign_in(live_account("supervisor", "Север", "Ольга"))
    assert dashboard.path.startswith("/dashboard/operators")
    assert "Вы вошли как Ольга." in dashboard.flashes()
    dashboard.screenshot("01-operators")

    rows = dashboard.table("ranking")
    today = utcnow().astimezone(live_app.config["SETTINGS"].report_zone).date()
    api = (
        live_app.test_client()
        .get(
            "/api/v1/reports/operators",
            query_string={"from": (today - timedelta(days=29)).isoformat(), "to": str(today)},
            headers={"Authorization": f"Bearer {key}"},
        )
        .json["operators"]
    )
    assert [r["Оператор"].splitlines()[0] for r in rows] == [r["operator"]["name"] for r in api]
    for shown, figures in zip(rows, api, strict=True):
        assert shown["responses"] == str(figures["responses"])
        assert shown["csat"] == f"{figures['csat'] * 100:.1f}%".replace(".", ",")
        politeness = figures["parameters"]["politeness"]
        assert shown["parameter_politeness"] == f"{politeness:.2f}".replace(".", ",")

    dashboard.click_link("Анна Петрова")
    assert dashboard.path.startswith("/dashboard/operators/op-1")
    chart = dashboard.driver.find_element("id", "trend-chart")
    assert chart.get_attribute("data-drawn") == "true"  # Chart.js drew it, under the CSP
    audio = dashboard.driver.find_elements("css selector", "audio[controls]")
    assert audio and audio[0].get_attribute("src").endswith(
        f"/dashboard/recordings/{_first_comment(live_app)}"
    )
    dashboard.screenshot("02-operator")

    dashboard.click(
        dashboard.driver.find_element(
            "css selector", f"a[href='/dashboard/interactions/{recent_weeks['op-1']}']"
        )
    )
    steps = dashboard.driver.find_elements("css selector", "#steps li")
    assert [s.get_attribute("data-question") for s in steps][:5] == ["overall", *RATED]
    dashboard.screenshot("03-interaction")

    for path, name in (("/dashboard/teams", "04-teams"), ("/dashboard/company", "05-company")):
        dashboard.open(path)
        assert all(
            f.get_attribute("data-drawn") == "true"
            for f in dashboard.driver.find_elements("css selector", "figure.chart")
        )
        dashboard.screenshot(name)
    dashboard.open("/dashboard/incidents")
    dashboard.screenshot("06-incidents")
    dashboard.open("/dashboard/operators?from=2026-09-30&to=2026-09-01")
    assert "Поменяйте даты местами" in dashboard.text
    dashboard.screenshot("07-error")
    dashboard.phone().open("/dashboard/operators")
    dashboard.screenshot("08-operators-phone")


def _first_comment(app: Flask) -> int:
    from sqlalchemy import select

    with app.app_context():
        session = app.extensions["database"].session()
        return int(session.scalar(select(Answer.id).where(Answer.question_key == "comment")))


def test_the_language_switch_holds_and_another_team_is_refused(
    dashboard, live_account, recent_weeks
):
    dashboard.open("/dashboard/login")
    dashboard.click_link("English")
    assert "Sign in" in dashboard.text
    dashboard.sign_in(live_account("supervisor", "Юг", "Yuri"))
    assert "Operators’ ranking" in dashboard.text and "Office visit" in dashboard.text
    assert "Анна Петрова" not in dashboard.text  # another team's operator
    dashboard.screenshot("09-operators-english")

    dashboard.open("/dashboard/operators/op-1")
    assert "There is no operator “op-1” among those you can see." in dashboard.text
    assert "Анна Петрова" not in dashboard.text


def test_an_operator_sees_only_their_own_figures(dashboard, live_account, recent_weeks):
    dashboard.sign_in(live_account("operator", name="Анна", operator="op-1"))
    dashboard.open("/dashboard/operators")
    rows = dashboard.table("ranking")
    assert [r["Оператор"].splitlines()[0] for r in rows] == ["Анна Петрова"]
    assert "Борис Иванов" not in dashboard.text and "Инциденты" not in dashboard.text
    dashboard.screenshot("10-operator-own-figures")
    dashboard.open("/dashboard/operators/op-2")
    assert "Среди доступных вам операторов нет оператора «op-2»" in dashboard.text
    dashboard.open(f"/dashboard/interactions/{recent_weeks['op-1']}")
    terms = [dt.text for dt in dashboard.driver.find_elements("css selector", "dt")]
    assert terms and "Клиент" not in terms  # never the customer, not even masked


def _alert(dashboard: Any) -> str:
    """The sign-in page's error, once the page that shows it has settled."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(dashboard.driver, 20, ignored_exceptions=(WebDriverException,))
    return str(wait.until(lambda d: d.find_element("css selector", "[role=alert]").text))


def test_wrong_passwords_lock_the_account_with_a_time_to_retry(
    dashboard, live_app: Flask, live_account
):
    username = live_account("supervisor", "Север", "Ольга")
    for _ in range(live_app.config["SETTINGS"].login_max_failures):
        dashboard.sign_in(username, "not my password")
    assert "заблокирована до" in _alert(dashboard)
    dashboard.screenshot("11-locked")
    dashboard.sign_in(username)  # the right password, refused while the lock holds
    assert "заблокирована до" in _alert(dashboard)
    assert dashboard.path.startswith("/dashboard/login")
