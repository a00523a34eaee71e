"""Configuration: defaults, environment, and a fast failure on what production must have."""

from __future__ import annotations

from datetime import time

import pytest

from gateway.config import ConfigError, QuietHours, load_settings


def test_defaults_run_embedded_with_the_console_provider(tmp_path):
    settings = load_settings({"SURVEY_GATEWAY_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'survey-gateway.sqlite3'}"
    assert settings.redis_url is None
    assert settings.broker_url == "filesystem://localhost//"
    assert settings.provider == "console"
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert (settings.default_region, settings.default_language) == ("RU", "ru")
    assert settings.quiet_hours == QuietHours(time(21), time(9))


def test_environment_overrides_defaults_and_test_mapping_overrides_both():
    settings = load_settings(
        {
            "PORT": "9000",
            "QUIET_HOURS": "",
            "SURVEY_COOLDOWN_DAYS": "0",
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_AUTH_TOKEN": "t",
        },
        {"survey_cooldown_days": 3},
    )
    assert settings.public_base_url == "http://127.0.0.1:9000"
    assert settings.quiet_hours is None
    assert settings.survey_cooldown_days == 3
    assert settings.provider == "twilio"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QUIET_HOURS": "9pm-9am"}, "QUIET_HOURS"),
        ({"PORT": "eighty"}, "PORT"),
        ({"DEFAULT_LANGUAGE": "de"}, "DEFAULT_LANGUAGE"),
        ({"OFFICE_TIMEZONES": "central=Mars/Olympus"}, "OFFICE_TIMEZONES"),
        ({"GATEWAY_ENV": "production"}, "TWILIO_AUTH_TOKEN"),
        ({"SIP_REGISTRAR": "pbx.example.ru:5060"}, "SIP_LISTEN"),
        (
            {"SIP_REGISTRAR": "pbx.example.ru", "SIP_LISTEN": "0.0.0.0:5060"},
            "SIP_USERNAME and SIP_PASSWORD",
        ),
        ({"SIP_REGISTRAR": "pbx.example.ru:sip", "SIP_LISTEN": "0.0.0.0:5060"}, "SIP_REGISTRAR"),
        ({"QUIET_HOURS": "09:00-09:00"}, "QUIET_HOURS start and end are equal"),
        ({"PERSONAL_DATA_RETENTION_DAYS": "-1"}, "PERSONAL_DATA_RETENTION_DAYS"),
        ({"MAX_CONTENT_LENGTH": "1000"}, "MAX_CONTENT_LENGTH must be at least 65536"),
        ({"INCIDENT_DUE_HOURS": "0"}, "INCIDENT_DUE_HOURS"),
        ({"LOW_SCORE_THRESHOLD": "6"}, "LOW_SCORE_THRESHOLD must be between 1 and 5"),
        ({"SMS_RATE_PER_SECOND": "0"}, "SMS_RATE_PER_SECOND must be positive"),
        ({"SMS_RETRY_BASE_SECONDS": "0"}, "SMS_RETRY_BASE_SECONDS must be positive"),
        ({"PROVIDER_PROBE_SECONDS": "0"}, "PROVIDER_PROBE_SECONDS must be positive"),
        ({"WEB_SURVEY_EXPIRY_DAYS": "0"}, "WEB_SURVEY_EXPIRY_DAYS must be at least 1"),
        ({"LOGIN_LOCKOUT_MINUTES": "0"}, "LOGIN_MAX_FAILURES and LOGIN_LOCKOUT_MINUTES"),
        ({"WEBHOOK_RETRY_HOURS": "0"}, "WEBHOOK_RETRY_HOURS and WEBHOOK_RETRY_BASE_SECONDS"),
        ({"WEBHOOK_ALLOW_HTTP": "maybe"}, "WEBHOOK_ALLOW_HTTP: expected true or false"),
        ({"SIP_MAX_CALLS": "0"}, "SIP_MAX_CALLS must be at least 1"),
        ({"SIP_RTP_TIMEOUT_SECONDS": "0"}, "SIP_RTP_TIMEOUT_SECONDS must be positive"),
        ({"SIP_RING_SECONDS": "0"}, "SIP_RING_SECONDS must be positive"),
        ({"SIP_RTP_PORTS": "20000-20009"}, "holds 5 calls, fewer than SIP_MAX_CALLS=50"),
        ({"SIP_RTP_PORTS": "low-high"}, "SIP_RTP_PORTS must look like 20000-20999"),
        ({"SIP_RTP_PORTS": "80-90"}, "SIP_RTP_PORTS must be a range within 1024-65535"),
        ({"SIP_LISTEN": "5060"}, "SIP_LISTEN must look like 0.0.0.0:5060"),
        ({"SIP_ALLOWED_PEERS": "pbx.local"}, "SIP_ALLOWED_PEERS: 'pbx.local' is not an address"),
        ({"INCIDENT_CAUSES": "rude operator"}, "INCIDENT_CAUSES must be comma-separated codes"),
        ({"ALERT_EMAILS": "Hotline"}, "ALERT_EMAILS: write Team=address"),
        ({"OFFICE_TIMEZONES": "central"}, "OFFICE_TIMEZONES item 'central' must be"),
        ({"DEFAULT_TIMEZONE": "Europe/Atlantis"}, "DEFAULT_TIMEZONE: unknown time zone"),
        ({"REPORT_TIMEZONE": "Europe/Atlantis"}, "REPORT_TIMEZONE: unknown time zone"),
    ],
)
def test_bad_or_missing_settings_fail_with_the_setting_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_a_registrar_sends_call_backs_through_the_pbx_whatever_the_voice_provider():
    settings = load_settings(
        {
            "SIP_LISTEN": "0.0.0.0:5060",
            "SIP_REGISTRAR": "pbx.example.ru",
            "SIP_USERNAME": "survey-gw",
            "SIP_PASSWORD": "secret",
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_AUTH_TOKEN": "t",
        }
    )
    assert settings.sip_registrar == "pbx.example.ru:5060"
    assert settings.callback_provider == "sip"
    assert settings.provider == "twilio"  # SMS may still go through Twilio


STRONG_SECRET = "9f2c4e1a7b3d8e6f0a5c2b9d4e7f1a3c6b8d0e2f4a6c8e0b"


def production_env() -> dict[str, str]:
    return {
        "GATEWAY_ENV": "production",
        "DATABASE_URL": "postgresql://db/sg",
        "REDIS_URL": "redis://r:6379/0",
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_FROM_NUMBER": "+15005550006",
        "SECRET_KEY": STRONG_SECRET,
        "PUBLIC_BASE_URL": "https://surveys.example.com",
    }


@pytest.mark.parametrize("name", ["Production", "prod", "PRODUCTION", "live", "dev"])
def test_an_unknown_gateway_env_refuses_to_start(name):
    # A near miss of "production" once started with signature checks off and no SECRET_KEY.
    with pytest.raises(ConfigError, match="GATEWAY_ENV must be one of"):
        load_settings({**production_env(), "GATEWAY_ENV": name})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"PUBLIC_BASE_URL": "http://surveys.example.com"}, "https:// PUBLIC_BASE_URL"),
        ({"SECRET_KEY": "x"}, "SECRET_KEY of at least 32"),
        ({"SECRET_KEY": "a" * 64}, "SECRET_KEY of at least 32"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ],
)
def test_production_needs_an_https_url_and_a_strong_secret(change, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({**production_env(), **change})
    assert load_settings(production_env()).env == "production"


def test_production_refuses_unsigned_webhooks():
    env = {**production_env(), "INSECURE_SKIP_TWILIO_SIGNATURE": "true"}
    with pytest.raises(ConfigError, match="INSECURE_SKIP_TWILIO_SIGNATURE"):
        load_settings(env)
    del env["INSECURE_SKIP_TWILIO_SIGNATURE"]
    assert load_settings(env).env == "production"


def test_production_with_smsc_needs_its_callback_secret_and_no_twilio_settings():
    env = {
        name: value for name, value in production_env().items() if not name.startswith("TWILIO_")
    }
    env.update(SMS_PROVIDER="smsc", SMSC_PASSWORD="p")
    with pytest.raises(ConfigError, match=r"needs SMSC_CALLBACK_SECRET \("):
        load_settings(env)
    env["SMSC_CALLBACK_SECRET"] = "callback-secret-of-smsc-42"
    assert load_settings(env).sms_provider_name == "smsc"
    with pytest.raises(ConfigError, match="https:// PUBLIC_BASE_URL"):
        load_settings({**env, "PUBLIC_BASE_URL": "http://surveys.example.com"})
    with pytest.raises(ConfigError, match="SECRET_KEY of at least 32"):
        load_settings({**env, "SECRET_KEY": "x"})


@pytest.mark.parametrize(
    ("window", "inside", "outside"),
    [
        ("21:00-09:00", [time(21), time(23, 59), time(3), time(8, 59)], [time(9), time(20, 59)]),
        ("13:00-14:00", [time(13), time(13, 30)], [time(14), time(12, 59)]),
    ],
)
def test_quiet_hours_window_wraps_midnight(window, inside, outside):
    quiet = QuietHours.parse(window)
    assert quiet is not None
    assert all(quiet.contains(t) for t in inside)
    assert not any(quiet.contains(t) for t in outside)


def test_development_token_is_shared_through_var_dir(tmp_path):
    first = load_settings({"SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}).webhook_auth_token()
    second = load_settings({"SURVEY_GATEWAY_VAR_DIR": str(tmp_path)}).webhook_auth_token()
    assert first == second and len(first) == 32
