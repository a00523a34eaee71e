"""A voice comment plays in the dashboard: the gateway fetches it from Twilio with the
account's credentials (the browser has none); another team's comment, or one deleted at
Twilio, is a page saying it cannot be played."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.models import Answer
from tests.dashboard_client import sign_in
from tests.fake_twilio import RECORDING_MEDIA, FakeTwilio
from tests.reports.factories import Seeder, at


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as running:
        yield running


@pytest.fixture
def settings_overrides(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_from_number": "+15005550006",
        "twilio_timeout_seconds": 2.0,
    }


def _comment(session, fake: FakeTwilio, sid: str, team: str, *, held: bool = True) -> int:
    seeder = Seeder(session)
    survey = seeder.survey(seeder.operator(f"op-{team}", team), {"overall": 2}, at("2026-09-02"))
    url = f"https://api.twilio.com/2010-04-01/Accounts/{fake.account_sid}/Recordings/{sid}"
    answer = Answer(
        session_id=survey.id,
        question_key="comment",
        recording_url=fake.add_recording(sid, audio=b"ID3 " + sid.encode()) if held else url,
        recording_duration=5,
    )
    session.add(answer)
    session.commit()
    return answer.id


def test_a_voice_comment_plays_through_the_gateway(client, session, fake, make_account):
    own = _comment(session, fake, "RE" + "a" * 32, "North")
    other = _comment(session, fake, "RE" + "b" * 32, "South")
    sign_in(client, make_account("supervisor", team="North"))

    played = client.get(f"/dashboard/recordings/{own}")
    assert played.status_code == 200 and played.mimetype == "audio/mpeg"
    assert played.data == b"ID3 RE" + b"a" * 32
    fetched = fake.requests_to(RECORDING_MEDIA)
    assert len(fetched) == 1 and fetched[0].authenticated  # with the account's credentials

    refused = client.get(f"/dashboard/recordings/{other}")
    assert refused.status_code == 404 and refused.mimetype == "text/html"
    assert len(fake.requests_to(RECORDING_MEDIA)) == 1  # another team's: never fetched


def test_a_comment_gone_from_twilio_says_it_cannot_be_played(client, session, fake, make_account):
    answer_id = _comment(session, fake, "RE" + "c" * 32, "North", held=False)
    sign_in(client, make_account("admin"))
    response = client.get(f"/dashboard/recordings/{answer_id}")
    assert response.status_code == 404
    assert "Запись не воспроизвести" in response.get_data(as_text=True)


def test_a_comment_the_gateway_recorded_itself_plays_from_the_database(
    client, session, fake, make_account
):
    from gateway.recordings import store_recording

    seeder = Seeder(session)
    survey = seeder.survey(seeder.operator("op-north", "North"), {"overall": 2}, at("2026-09-02"))
    url, seconds = store_recording(session, survey.id, "comment", b"\x10\x00" * 8000)
    answer = Answer(
        session_id=survey.id, question_key="comment", recording_url=url, recording_duration=seconds
    )
    session.add(answer)
    session.commit()
    sign_in(client, make_account("supervisor", team="North"))

    played = client.get(f"/dashboard/recordings/{answer.id}")

    assert played.status_code == 200 and played.mimetype == "audio/wav"
    assert played.data[:4] == b"RIFF" and len(played.data) == 44 + 16000  # 1 s at 8 kHz
    assert fake.requests_to(RECORDING_MEDIA) == []  # nothing asked of Twilio
