"""The one-tap link in a real browser: headless Chromium, phone-sized, against a live server
(the browser plugin's, shared with the dashboard's tests)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.factories import interaction_payload


def test_a_customer_taps_four_in_a_phone_browser_finishes_and_cannot_change_it(
    live_app: Flask, dashboard: Any
) -> None:
    """The issue's check, as an integrator would try it: the link from the API, tapped on a
    phone; 4 is recorded, the rest of the flow follows, and once completed nothing changes."""
    from gateway.apikeys import create_api_key
    from gateway.db import utcnow
    from gateway.models import ApiRole

    with live_app.app_context():
        session = live_app.extensions["database"].session()
        _row, key = create_api_key(session, "crm", ApiRole.INTEGRATION, None, utcnow())
        session.commit()
    client = live_app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    payload = interaction_payload(channel="request", survey="web")
    resource = client.post("/api/v1/interactions", json=payload, headers=auth).get_json()
    link = "/r/" + resource["survey"]["link"]["url"].rsplit("/", 1)[1]  # on the live server

    phone = dashboard.phone()
    driver = phone.driver
    phone.open(link + "/4")  # the email's or messenger's "4" button
    for key_, score in (("cost", 3), ("speed", 5), ("politeness", 5), ("quality", 4)):
        assert driver.find_elements("css selector", f'input[name="question"][value="{key_}"]')
        phone.click(driver.find_element("css selector", f'button[name="value"][value="{score}"]'))
    driver.find_element("tag name", "textarea").send_keys("Спасибо")  # the thank-you page
    phone.click(driver.find_element("css selector", "button.primary"))
    locked = phone.open(link + "/1").driver.page_source  # later: locked
    again = phone.open(link).driver.page_source

    assert 'name="value"' not in locked and 'name="value"' not in again
    body = client.get(f"/api/v1/interactions/{resource['id']}", headers=auth).get_json()
    assert body["survey"]["status"] == "completed"
    assert body["scores"] == {"overall": 4, "cost": 3, "speed": 5, "politeness": 5, "quality": 4}
