"""The fake Twilio and the SDK's requests, held against Twilio's OpenAPI description.

Requests the real SDK sends through the fake must be ones Twilio's description allows, and the
fake must answer with the fields of Twilio's response schemas. The checker itself is shown to
catch what it is meant to catch. Skipped when ../shared/twilio-oai is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from twilio.rest import Client

from tests.fake_twilio import DEFAULT_ACCOUNT_SID, FakeTwilio, RecordedRequest, twilio_client_for
from tests.twilio_openapi import (
    TwilioOpenApi,
    assert_matches_twilio_openapi,
    openapi_problems,
    require_twilio_openapi,
    response_problems,
)

CUSTOMER = "+79161234567"
SENDER = "+15005550006"
SERVICE = "MG" + "1" * 32
BASE = "https://surveys.example.com"
MESSAGES_PATH = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
CALLS_PATH = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Calls.json"


@pytest.fixture(scope="module")
def twilio_api() -> TwilioOpenApi:
    return require_twilio_openapi()


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return twilio_client_for(fake)


def _scheduled(client: Client) -> object:
    return client.messages.create(
        to=CUSTOMER,
        messaging_service_sid=SERVICE,
        body="Оцените визит",
        schedule_type="fixed",
        send_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _hang_up(client: Client) -> object:
    sid = client.calls.create(to=CUSTOMER, from_=SENDER, url=f"{BASE}/voice/survey").sid
    return client.calls(sid).update(status="completed")


def _redirect(client: Client) -> object:
    sid = client.calls.create(to=CUSTOMER, from_=SENDER, url=f"{BASE}/voice/survey").sid
    return client.calls(sid).update(twiml="<Response><Hangup/></Response>")


def _fetch_both(client: Client) -> object:
    message = client.messages.create(to=CUSTOMER, from_=SENDER, body="x")
    call = client.calls.create(to=CUSTOMER, from_=SENDER, url=f"{BASE}/voice/survey")
    return client.messages(message.sid).fetch(), client.calls(call.sid).fetch()


SDK_USES: dict[str, Callable[[Client], object]] = {
    "sms from a number with status callback": lambda c: c.messages.create(
        to=CUSTOMER, from_=SENDER, body="Оцените визит: 1-5", status_callback=f"{BASE}/sms/status"
    ),
    "sms through a messaging service": lambda c: c.messages.create(
        to=CUSTOMER, messaging_service_sid=SERVICE, body="hi", validity_period=3600
    ),
    "mms with media only": lambda c: c.messages.create(
        to=CUSTOMER, from_=SENDER, media_url=[f"{BASE}/a.png", f"{BASE}/b.png"]
    ),
    "scheduled sms": _scheduled,
    "call with answering machine detection and all events": lambda c: c.calls.create(
        to=CUSTOMER,
        from_=SENDER,
        url=f"{BASE}/voice/survey",
        method="POST",
        status_callback=f"{BASE}/voice/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        status_callback_method="POST",
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=f"{BASE}/voice/amd",
        machine_detection_timeout=30,
        timeout=25,
        record=False,
        time_limit=600,
    ),
    "call with twiml": lambda c: c.calls.create(
        to=CUSTOMER, from_=SENDER, twiml="<Response><Say>Здравствуйте</Say></Response>"
    ),
    "call hang-up": _hang_up,
    "call redirect": _redirect,
    "fetches": _fetch_both,
}


@pytest.mark.parametrize("use", SDK_USES.values(), ids=SDK_USES.keys())
def test_what_the_sdk_sends_through_the_fake_is_allowed_by_twilio(fake, client, twilio_api, use):
    use(client)

    assert fake.requests
    for record in fake.requests:
        assert record.status is not None and record.status < 300, record.response
        assert_matches_twilio_openapi(record, twilio_api)


@pytest.mark.parametrize("use", SDK_USES.values(), ids=SDK_USES.keys())
def test_the_fake_answers_with_the_fields_of_twilios_schemas(fake, client, twilio_api, use):
    use(client)

    for record in fake.requests:
        assert response_problems(record, twilio_api) == [], record.path


def test_assert_matches_twilio_openapi_loads_the_description_itself(fake, client, twilio_api):
    client.messages.create(to=CUSTOMER, from_=SENDER, body="x")

    assert_matches_twilio_openapi(fake.messages()[0])


def test_a_python_bool_for_async_amd_breaks_the_contract(fake, client, twilio_api):
    client.calls.create(
        to=CUSTOMER,
        from_=SENDER,
        url=f"{BASE}/voice/survey",
        machine_detection="Enable",
        async_amd=True,
    )

    problems = openapi_problems(fake.calls()[0], twilio_api)

    assert problems == ["AsyncAmd='True' is not one of ['true', 'false'] (per its description)"]


def record(
    form: dict[str, list[str]], path: str = MESSAGES_PATH, method: str = "POST"
) -> RecordedRequest:
    return RecordedRequest(
        method=method,
        path=path,
        query={},
        form=form,
        headers={},
        auth_user=DEFAULT_ACCOUNT_SID,
        authenticated=True,
        endpoint=None,
        received_at=datetime.now(UTC),
    )


SMS = {"To": [CUSTOMER], "From": [SENDER], "Body": ["x"]}
CALL = {"To": [CUSTOMER], "From": [SENDER], "Url": [f"{BASE}/voice"]}


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (record({**SMS, "Foo": ["bar"]}), "parameter 'Foo' is not declared"),
        (record({**SMS, "to": [CUSTOMER]}), "parameter 'to' is not declared"),
        (record({"From": [SENDER], "Body": ["x"]}), "required parameter 'To' is missing"),
        (record({**SMS, "To": [""]}), "required parameter 'To' is missing"),
        (record({"To": [CUSTOMER], "Body": ["x"]}), "one of ['From', 'MessagingServiceSid']"),
        (record({"To": [CUSTOMER], "From": [SENDER]}), "one of ['Body', 'MediaUrl', 'ContentSid']"),
        (record({**SMS, "Body": ["a", "b"]}), "'Body' is not an array but was sent 2x"),
        (record({**SMS, "StatusCallback": ["/sms/status"]}), "is not an absolute http(s) URL"),
        (record({**SMS, "MessagingServiceSid": ["MG123"]}), "does not match ^MG[0-9a-fA-F]{32}$"),
        (record({**SMS, "SmartEncoded": ["True"]}), "is not a boolean"),
        (record({**SMS, "ValidityPeriod": ["1h"]}), "is not an integer"),
        (record({**SMS, "SendAt": ["tomorrow"]}), "is not an ISO 8601 date-time"),
        (record({**SMS, "ScheduleType": ["later"]}), "ScheduleType='later' is not one of"),
        (record({"To": [CUSTOMER], "From": [SENDER]}, CALLS_PATH), "one of ['Url', 'Twiml'"),
        (record({**CALL, "StatusCallbackMethod": ["PUT"]}, CALLS_PATH), "is not one of ['GET'"),
        (record({**CALL, "MachineDetection": ["true"]}, CALLS_PATH), "MachineDetection='true'"),
        (
            record({**CALL, "StatusCallbackEvent": ["answered", "hungup"]}, CALLS_PATH),
            "StatusCallbackEvent='hungup' is not one of",
        ),
        (record({**CALL, "Timeout": ["soon"]}, CALLS_PATH), "Timeout='soon' is not an integer"),
        (
            record(SMS, "/2010-04-01/Accounts/ACnot-a-sid/Messages.json"),
            "AccountSid='ACnot-a-sid' does not match",
        ),
        (
            record(SMS, f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Texts.json"),
            "no operation POST",
        ),
        (record(SMS, MESSAGES_PATH, method="PUT"), "no operation PUT"),
    ],
)
def test_the_checker_finds_what_twilio_would_refuse(twilio_api, request_, problem):
    problems = openapi_problems(request_, twilio_api)

    assert any(problem in found for found in problems), problems
    with pytest.raises(AssertionError, match="breaks Twilio's API contract"):
        assert_matches_twilio_openapi(request_, twilio_api)


def test_the_checker_reads_query_parameters_of_a_list(twilio_api):
    listing = record({}, MESSAGES_PATH, method="GET")
    listing.query = {"To": [CUSTOMER], "PageSize": ["50"]}
    assert openapi_problems(listing, twilio_api) == []

    listing.query = {"PageSize": ["fifty"], "Colour": ["red"]}
    assert openapi_problems(listing, twilio_api) == [
        "PageSize='fifty' is not an integer",
        "query parameter 'Colour' is not declared",
    ]


def test_a_well_formed_request_has_no_problems(twilio_api):
    assert openapi_problems(record(SMS), twilio_api) == []
    assert openapi_problems(record(CALL, CALLS_PATH), twilio_api) == []
