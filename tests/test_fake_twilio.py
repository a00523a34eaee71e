"""The fake Twilio, driven by the real Twilio SDK as the gateway builds it (make_twilio_client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.message import MessageInstance

from gateway.twilio_client import TWILIO_API_BASE_URL, make_twilio_client
from tests.fake_twilio import (
    DEFAULT_ACCOUNT_SID,
    FakeTwilio,
    num_segments,
    twilio_client_for,
)

CUSTOMER = "+79161234567"
SENDER = "+15005550006"
SERVICE = "MG" + "1" * 32
STATUS_URL = "https://surveys.example.com/sms/status"
VOICE_URL = "https://surveys.example.com/voice/survey"
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return twilio_client_for(fake)


def send(client: Client, **overrides: object) -> MessageInstance:
    kwargs: dict[str, object] = {"to": CUSTOMER, "from_": SENDER, "body": "Оцените визит: 1-5"}
    kwargs.update(overrides)
    return client.messages.create(**kwargs)


def call(client: Client, **overrides: object) -> CallInstance:
    kwargs: dict[str, object] = {"to": CUSTOMER, "from_": SENDER, "url": VOICE_URL}
    kwargs.update(overrides)
    return client.calls.create(**kwargs)


# -- make_twilio_client ------------------------------------------------------------------------


def test_make_twilio_client_points_the_api_domain_at_the_base_url_and_sets_a_timeout():
    client = make_twilio_client(DEFAULT_ACCOUNT_SID, "token", "http://127.0.0.1:9/", 2.5)
    try:
        assert client.api.base_url == "http://127.0.0.1:9"
        assert client.api.v2010.absolute_url("Accounts/AC1/Messages.json") == (
            "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages.json"
        )
        assert isinstance(client.http_client, TwilioHttpClient)
        assert client.http_client.timeout == 2.5
        assert client.account_sid == DEFAULT_ACCOUNT_SID
    finally:
        client.http_client.session.close()


def test_make_twilio_client_leaves_twilios_own_host_by_default():
    client = make_twilio_client(DEFAULT_ACCOUNT_SID, "token")
    try:
        assert client.api.base_url == TWILIO_API_BASE_URL == "https://api.twilio.com"
        assert client.http_client.timeout == 10.0
    finally:
        client.http_client.session.close()


@pytest.mark.parametrize("base_url", ["api.twilio.com", "ftp://example.com", "http://"])
def test_make_twilio_client_refuses_a_base_url_without_scheme_or_host(base_url):
    with pytest.raises(ValueError, match="api_base_url"):
        make_twilio_client(DEFAULT_ACCOUNT_SID, "token", base_url)


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_make_twilio_client_refuses_a_timeout_that_is_not_positive(timeout):
    with pytest.raises(ValueError, match="timeout_seconds"):
        make_twilio_client(DEFAULT_ACCOUNT_SID, "token", timeout_seconds=timeout)


def test_edge_and_region_from_the_environment_do_not_reroute_a_custom_base_url(fake, monkeypatch):
    # Without clearing them the SDK would send this to "127.sydney.au1.0.1:PORT".
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    client = twilio_client_for(fake)

    assert send(client).sid.startswith("SM")


def _clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_proxy_the_environment_names_carries_the_clients_requests(fake, monkeypatch):
    # The client reads the proxy variables once, when it is built (not at every request):
    # every request goes through that proxy. The fake answers as the proxy here (a proxied
    # request names the whole URL), for a host that does not exist.
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("http_proxy", fake.base_url)
    client = fake.track_client(
        make_twilio_client(fake.account_sid, fake.auth_token, "http://api.twilio.invalid", 5.0)
    )

    assert send(client).sid.startswith("SM")
    assert send(client).sid.startswith("SM")
    assert [m.params["To"] for m in fake.messages()] == [CUSTOMER, CUSTOMER]


def test_a_host_no_proxy_names_is_reached_directly(fake, monkeypatch):
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    client = twilio_client_for(fake)

    assert send(client).sid.startswith("SM")


def test_without_no_proxy_the_proxy_is_used_even_for_the_fakes_host(fake, monkeypatch):
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    client = twilio_client_for(fake, timeout_seconds=2.0)

    with pytest.raises(requests.exceptions.ProxyError):
        send(client)
    assert fake.messages() == []


# -- messages ----------------------------------------------------------------------------------


def test_a_message_is_recorded_and_answered_as_twilio_answers(fake, client):
    message = send(client, status_callback=STATUS_URL)

    assert isinstance(message, MessageInstance)
    assert message.sid.startswith("SM") and len(message.sid) == 34
    int(message.sid[2:], 16)
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (CUSTOMER, SENDER, "Оцените визит: 1-5")
    assert message.account_sid == DEFAULT_ACCOUNT_SID
    assert message.direction == "outbound-api"
    assert message.num_segments == "1"
    assert message.messaging_service_sid is None
    assert message.uri == f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/{message.sid}.json"
    assert message.date_created.tzinfo is not None  # parsed from RFC 2822 by the SDK
    assert abs((datetime.now(UTC) - message.date_created).total_seconds()) < 60

    [sent] = fake.messages()
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    assert sent.params == {
        "To": CUSTOMER,
        "From": SENDER,
        "Body": "Оцените визит: 1-5",
        "StatusCallback": STATUS_URL,
    }
    assert sent.auth_user == DEFAULT_ACCOUNT_SID and sent.authenticated
    assert sent.header("content-type") == "application/x-www-form-urlencoded"
    assert sent.header("User-Agent").startswith("twilio-python/")
    assert (sent.status, sent.sid) == (201, message.sid)
    assert fake.resource(message.sid)["date_created"].endswith("+0000")


def test_a_message_through_a_messaging_service_is_accepted_without_a_sender(fake, client):
    message = client.messages.create(to=CUSTOMER, messaging_service_sid=SERVICE, body="hi")

    assert message.status == "accepted"  # Twilio's status while the service picks a sender
    assert message.from_ is None
    assert message.messaging_service_sid == SERVICE
    assert "From" not in fake.messages()[0].form


def test_a_message_can_be_fetched_back(client):
    sid = send(client).sid

    assert client.messages(sid).fetch().body == "Оцените визит: 1-5"


def test_unknown_message_is_404(client):
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "f" * 32).fetch()

    assert (caught.value.status, caught.value.code) == (404, 20404)


@pytest.mark.parametrize(
    ("text", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("{" * 80, 1), ("я" * 70, 1), ("я" * 71, 2)],
)
def test_segments_are_counted_as_twilio_bills_them(text, segments):
    assert num_segments(text) == segments


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"to": ""}, 21604, "A 'To' phone number is required."),
        ({"from_": None}, 21603, "A 'From' phone number is required."),
        ({"body": None}, 21602, "Message body is required."),
    ],
)
def test_a_message_without_a_required_parameter_is_refused_with_twilios_error(
    fake, client, overrides, code, message
):
    with pytest.raises(TwilioRestException) as caught:
        send(client, **overrides)

    assert (caught.value.status, caught.value.code) == (400, code)
    assert caught.value.msg == f"Unable to create record: {message}"
    assert fake.messages()[0].response == {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


# -- calls -------------------------------------------------------------------------------------


def test_a_call_records_machine_detection_and_each_status_callback_event(fake, client):
    created = call(
        client,
        status_callback="https://surveys.example.com/voice/status",
        status_callback_event=CALL_EVENTS,
        machine_detection="Enable",
        async_amd="true",
        timeout=25,
    )

    assert isinstance(created, CallInstance)
    assert created.sid.startswith("CA") and len(created.sid) == 34
    # The SDK spells it `from_` on MessageInstance but `_from` on CallInstance.
    assert (created.status, created.to, created._from) == ("queued", CUSTOMER, SENDER)
    assert (created.from_formatted, created.to_formatted) == ("(500) 555-0006", CUSTOMER)
    assert created.direction == "outbound-api"
    [request] = fake.calls()
    assert request.form["StatusCallbackEvent"] == CALL_EVENTS  # the key, repeated
    assert request.params["StatusCallbackEvent"] == "initiated"
    assert request.params["MachineDetection"] == "Enable"
    assert request.params["AsyncAmd"] == "true"
    assert request.params["Timeout"] == "25"
    assert request.params["Url"] == VOICE_URL


def test_the_sdk_sends_async_amd_as_given_so_a_python_bool_arrives_capitalised(fake, client):
    # AsyncAmd is a string parameter in the SDK: pass "true", not True.
    call(client, machine_detection="Enable", async_amd=True)

    assert fake.calls()[0].params["AsyncAmd"] == "True"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"to": ""}, 21201), ({"from_": ""}, 21213), ({"url": None}, 21205)],
)
def test_a_call_without_a_required_parameter_is_refused(client, overrides, code):
    with pytest.raises(TwilioRestException) as caught:
        call(client, **overrides)

    assert (caught.value.status, caught.value.code) == (400, code)


def test_a_call_with_twiml_instead_of_a_url_is_created(fake, client):
    created = call(client, url=None, twiml="<Response><Say>Hi</Say></Response>")

    assert created.status == "queued"
    assert "Url" not in fake.calls()[0].form


def test_hanging_up_a_call_updates_it(fake, client):
    sid = call(client).sid
    fake.set_call_status(sid, "in-progress", answered_by="human")

    updated = client.calls(sid).update(status="completed")

    assert isinstance(updated, CallInstance)
    assert updated.status == "completed"
    assert updated.end_time is not None
    assert fake.call_updates()[0].params == {"Status": "completed"}
    assert client.calls(sid).fetch().status == "completed"


def test_canceling_an_answered_call_changes_nothing_but_completing_it_hangs_up(fake, client):
    sid = call(client).sid
    fake.set_call_status(sid, "in-progress")

    assert client.calls(sid).update(status="canceled").status == "in-progress"
    assert client.calls(sid).update(status="completed").status == "completed"


def test_redirecting_a_finished_call_is_refused_with_21220(fake, client):
    sid = call(client).sid
    client.calls(sid).update(status="completed")

    with pytest.raises(TwilioRestException) as caught:
        client.calls(sid).update(twiml="<Response><Hangup/></Response>")

    assert (caught.value.status, caught.value.code) == (400, 21220)


def test_updating_an_unknown_call_is_404(client):
    with pytest.raises(TwilioRestException) as caught:
        client.calls("CA" + "e" * 32).update(status="completed")

    assert (caught.value.status, caught.value.code) == (404, 20404)


# -- scripted failures -------------------------------------------------------------------------


def test_scripted_21610_surfaces_as_twilio_rest_exception(fake, client):
    fake.fail_next("messages", 400, 21610)

    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert caught.value.status == 400
    assert caught.value.code == 21610
    assert caught.value.msg == "Unable to create record: Attempt to send to unsubscribed recipient"
    assert caught.value.method == "POST"
    assert caught.value.uri == f"/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    assert fake.messages()[0].status == 400
    assert send(client).status == "queued"  # one failure, then back to normal


def test_queued_failures_are_used_in_order_one_per_request(fake, client):
    fake.fail_next("messages", 400, 21610)
    fake.fail_next("messages", 400, 21211)
    fake.fail_next("messages", 500)
    fake.fail_next("messages", 429, 20429)
    seen = []
    for _ in range(4):
        with pytest.raises(TwilioRestException) as caught:
            send(client)
        seen.append((caught.value.status, caught.value.code))

    # Without a code in the body the SDK reports the HTTP status as the code.
    assert seen == [(400, 21610), (400, 21211), (500, 500), (429, 20429)]
    assert fake.pending("messages") == 0
    assert send(client).sid is not None


def test_failures_are_per_endpoint(fake, client):
    fake.fail_next("calls", 400, 21215)

    assert send(client).status == "queued"
    with pytest.raises(TwilioRestException) as caught:
        call(client)
    assert caught.value.code == 21215
    assert caught.value.msg.endswith("Geo Permission configuration is not permitting call")


def test_a_500_surfaces_as_twilio_rest_exception_with_status_500(fake, client):
    fake.fail_next("calls", 500)

    with pytest.raises(TwilioRestException) as caught:
        call(client)

    assert caught.value.status == 500
    assert fake.calls()[0].response == {"message": "Internal Server Error", "status": 500}


def test_a_non_json_error_body_still_surfaces_as_twilio_rest_exception(fake, client):
    fake.fail_next("messages", 502, body="<html><body>Bad Gateway</body></html>")

    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert (caught.value.status, caught.value.code) == (502, 502)
    assert caught.value.msg == "Unable to create record"


def test_failure_headers_are_sent(fake):
    fake.fail_next("messages", 429, 20429, headers={"Retry-After": "7"})

    answer = requests.post(
        f"{fake.base_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        data={"To": CUSTOMER, "From": SENDER, "Body": "x"},
        auth=(fake.account_sid, fake.auth_token),
        timeout=5,
    )

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["message"] == "Too Many Requests"


def test_unknown_endpoint_names_are_refused(fake):
    with pytest.raises(ValueError, match="unknown endpoint"):
        fake.fail_next("sms", 400, 21610)
    with pytest.raises(ValueError, match="unknown endpoint"):
        fake.hold_next("Messages")


# -- authentication ----------------------------------------------------------------------------


def test_wrong_credentials_are_refused_with_401_and_consume_no_script(fake):
    fake.fail_next("messages", 400, 21610)
    wrong = make_twilio_client(DEFAULT_ACCOUNT_SID, "wrong-token", fake.base_url, 5.0)
    fake.track_client(wrong)

    with pytest.raises(TwilioRestException) as caught:
        send(wrong)

    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert caught.value.msg == "Unable to create record: Authenticate"
    [refused] = fake.messages()
    assert (refused.status, refused.authenticated) == (401, False)
    assert refused.auth_user == DEFAULT_ACCOUNT_SID
    assert refused.response is not None and refused.response["message"] == "Authenticate"
    assert fake.pending("messages") == 1


def test_a_request_without_basic_auth_is_refused(fake):
    answer = requests.post(
        f"{fake.base_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        data={"To": CUSTOMER, "From": SENDER, "Body": "x"},
        timeout=5,
    )

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert answer.json() == {
        "code": 20003,
        "detail": "Your AccountSid or AuthToken was incorrect.",
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert fake.requests[0].auth_user is None


def test_another_accounts_path_is_not_found(fake):
    other = "AC" + "9" * 32
    answer = requests.post(
        f"{fake.base_url}/2010-04-01/Accounts/{other}/Messages.json",
        data={"To": CUSTOMER, "From": SENDER, "Body": "x"},
        auth=(fake.account_sid, fake.auth_token),
        timeout=5,
    )

    assert (answer.status_code, answer.json()["code"]) == (404, 20404)


# -- slow answers ------------------------------------------------------------------------------


def test_a_held_answer_makes_the_sdk_time_out_with_requests_read_timeout(fake):
    impatient = twilio_client_for(fake, timeout_seconds=0.2)
    release = fake.hold_next("messages")

    with pytest.raises(requests.exceptions.ReadTimeout) as caught:
        send(impatient)

    # The SDK does not wrap it: a requests Timeout, not a TwilioRestException.
    assert isinstance(caught.value, requests.exceptions.Timeout)
    assert not isinstance(caught.value, TwilioRestException)
    [held] = fake.messages()
    assert held.status is None  # recorded, not answered yet

    release.set()
    assert fake.wait_idle(timeout=5)
    # As with Twilio, the request the client gave up on was still carried out.
    assert held.status == 201 and held.sid is not None
    assert fake.resource(held.sid)["status"] == "queued"


def test_a_held_answer_is_answered_normally_once_released(fake, client):
    release = fake.hold_next("calls")
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(call, client)
        [held] = fake.wait_for_requests("calls", timeout=5)
        assert held.status is None
        assert not pending.done()
        release.set()
        created = pending.result(timeout=5)

    assert created.status == "queued"


def test_a_hold_and_a_failure_make_one_slow_failing_answer(fake):
    impatient = twilio_client_for(fake, timeout_seconds=5)
    release = fake.hold_next("messages")
    fake.fail_next("messages", 400, 21211)
    release.set()  # released before the request: answered at once

    with pytest.raises(TwilioRestException) as caught:
        send(impatient)

    assert caught.value.code == 21211
    assert fake.pending("messages") == 0


def test_stop_cuts_a_long_delay_short():
    fake = FakeTwilio().start()
    try:
        impatient = twilio_client_for(fake, timeout_seconds=0.1)
        fake.delay_next("messages", 60)
        with pytest.raises(requests.exceptions.Timeout):
            send(impatient)
    finally:
        started = time.monotonic()
        fake.stop()

    assert time.monotonic() - started < 5
    assert fake.messages()[0].status == 201


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_requests_are_all_recorded_with_distinct_sids(fake):
    def send_one(n: int) -> str:
        own = twilio_client_for(fake)
        return str(send(own, body=f"message {n}").sid)

    with ThreadPoolExecutor(max_workers=8) as pool:
        sids = list(pool.map(send_one, range(40)))

    assert len(set(sids)) == 40
    assert sorted(r.params["Body"] for r in fake.messages()) == sorted(
        f"message {n}" for n in range(40)
    )
    assert {r.sid for r in fake.messages()} == set(sids)


def test_reset_forgets_requests_and_scripts(fake, client):
    send(client)
    fake.fail_next("messages", 400, 21610)

    fake.reset()

    assert fake.requests == []
    assert fake.pending("messages") == 0
    assert send(client).status == "queued"
