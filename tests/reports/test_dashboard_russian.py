"""Every page of figures, rendered in Russian, shows no English: labels, codes, the reasons a
survey was not sent, who excluded a rating; only what people typed stays as they typed it."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import SurveySession, SurveyStatus
from tests.dashboard_client import sign_in
from tests.factories import interaction_payload
from tests.untranslated import untranslated

# What people entered in the seeded month: a reason typed in English stays English.
TYPED = ("the customer rated the tariff, not the call (appeal 17)", "Front office")


def test_the_figures_pages_in_russian_show_no_english(
    client, month, make_account, make_api_key, session
):
    crm = {"Authorization": f"Bearer {make_api_key('integration', name='crm')}"}
    payload = interaction_payload(channel="office_visit", survey="sms")
    payload["customer"].pop("phone", None)
    payload["customer"]["external_id"] = "no-phone-1"
    unsent = client.post("/api/v1/interactions", json=payload, headers=crm)
    assert unsent.status_code == 201, unsent.json
    assert unsent.json["survey"]["status"] == "not_sent"

    sign_in(client, make_account("admin"))
    period = f"from={month.start}&to={month.end}"
    excluded = session.get(SurveySession, month.excluded_survey_id)
    failed = session.scalar(
        select(SurveySession.interaction_id).where(SurveySession.status == SurveyStatus.NOT_SENT)
    )
    pages = [
        f"/dashboard/operators?{period}",
        f"/dashboard/operators/op-d?{period}&measure=nps",
        f"/dashboard/operators/op-c?{period}",
        f"/dashboard/teams?{period}",
        f"/dashboard/company?{period}",
        f"/dashboard/interactions/{excluded.interaction_id}",
        f"/dashboard/interactions/{unsent.json['id']}",
        f"/dashboard/interactions/{failed}",
        "/dashboard/operators?from=2026-09-30&to=2026-09-01",  # an error page
        "/dashboard/nowhere",
    ]
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        assert '<html lang="ru">' in html, path
        assert untranslated(html, TYPED) == [], path
    unsent_page = client.get(f"/dashboard/interactions/{unsent.json['id']}").get_data(as_text=True)
    assert "у клиента нет номера телефона" in unsent_page


def test_the_check_finds_the_english_of_a_page_rendered_in_english(client, month, make_account):
    sign_in(client, make_account("admin"))
    client.get("/dashboard/language/en", query_string={"next": "/dashboard/teams"})
    english = client.get(f"/dashboard/operators?from={month.start}&to={month.end}")
    html = english.get_data(as_text=True)
    assert '<html lang="en">' in html and "Operators’ ranking" in untranslated(html)


def test_a_providers_refusal_is_framed_in_russian_with_its_code(
    client, month, make_account, session
):
    survey = session.scalar(
        select(SurveySession).where(SurveySession.status == SurveyStatus.NOT_SENT)
    )
    survey.status = SurveyStatus.FAILED
    survey.not_sent_reason = "twilio 21408: Permission to send an SMS has not been enabled"
    session.commit()
    sign_in(client, make_account("admin"))
    html = client.get(f"/dashboard/interactions/{survey.interaction_id}").get_data(as_text=True)
    assert "отклонено провайдером Twilio, ошибка 21408" in html
