"""The SMS channel's settings, read from the environment."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_settings


def test_sms_settings_have_their_defaults() -> None:
    settings = load_settings({})
    assert settings.default_timezone == "Europe/Moscow"
    assert settings.sms_retry_base_seconds == 30
    assert settings.provider_probe_seconds == 60


def test_sms_settings_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "DEFAULT_TIMEZONE": "Asia/Vladivostok",
            "PROVIDER_PROBE_SECONDS": "15",
            "SMS_RETRY_BASE_SECONDS": "10",
        }
    )
    assert (
        settings.default_timezone,
        settings.provider_probe_seconds,
        settings.sms_retry_base_seconds,
    ) == ("Asia/Vladivostok", 15, 10)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DEFAULT_TIMEZONE": "Mars/Olympus"}, "DEFAULT_TIMEZONE"),
        ({"SMS_RETRY_BASE_SECONDS": "0"}, "SMS_RETRY_BASE_SECONDS"),
        ({"PROVIDER_PROBE_SECONDS": "soon"}, "PROVIDER_PROBE_SECONDS"),
    ],
)
def test_a_bad_sms_setting_stops_start_up_naming_it(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(environ)
