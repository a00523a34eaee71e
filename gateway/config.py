"""Configuration, read in one place and one order: defaults, environment, test mapping.

Nothing here runs at import time; `load_settings()` is called by the app factory.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app

from gateway.business_calendar import (
    BusinessCalendar,
    CalendarError,
    parse_holidays,
    parse_hours,
    parse_weekdays,
)
from ivr_flows.loader import FLOWS_DIR


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local time in which no survey starts; may wrap midnight."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        text = text.strip()
        if not text:
            return None
        try:
            start_text, end_text = (part.strip() for part in text.split("-"))
            start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
        except ValueError as exc:
            raise ConfigError(f"QUIET_HOURS must look like 21:00-09:00, got {text!r}") from exc
        if start == end:
            raise ConfigError("QUIET_HOURS start and end are equal; leave it empty to disable")
        return cls(start, end)


def _var_dir() -> Path:
    configured = os.environ.get("SURVEY_GATEWAY_VAR_DIR")
    return Path(configured) if configured else default_var_dir()


def default_var_dir() -> Path:
    """`var/` of the project the gateway runs from, whatever the current directory, so that
    the command line finds what `make run` keeps there; `./var` for an installed package."""
    project = Path(__file__).resolve().parents[1]
    if (project / "pyproject.toml").is_file():
        return project / "var"
    return Path.cwd() / "var"


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = ""
    redis_url: str | None = None
    port: int = 8000
    public_base_url: str = ""
    var_dir: Path = field(default_factory=_var_dir)
    log_level: str = "INFO"
    secret_key: str | None = None  # signs the dashboard's login cookie
    # Largest request body accepted (bytes); webhooks and sign-in forms get a smaller limit.
    max_content_length: int = 2 * 1024 * 1024

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = 10.0
    # Development only: webhooks are accepted unsigned. The app warns at start-up.
    insecure_skip_twilio_signature: bool = False

    # SMS through an aggregator instead of Twilio (sms.smsc): `twilio`, `smsc` or `console`;
    # empty: `twilio` with Twilio credentials, else `console`.
    sms_provider: str = ""
    smsc_login: str | None = None
    smsc_password: str | None = None  # the account's password, or an API key with no login
    # Sender name registered with the operators (up to 11 Latin letters and digits), or the
    # dedicated number replies come back to; empty: the account's default sender.
    smsc_sender: str | None = None
    smsc_api_base_url: str = "https://smsc.ru"
    smsc_timeout_seconds: float = 10.0
    # The last segment of the handler URL set in SMSC's account settings: what proves a
    # status or an incoming SMS comes from SMSC.
    smsc_callback_secret: str | None = None
    # Set, every SMSC callback must carry the md5 checksum SMSC makes with it (the handler URL
    # then carries `md5=<this>`, sms.smsc.callback_checksum); a wrong or missing one is refused.
    smsc_checksum_secret: str | None = None

    default_region: str = "RU"
    default_language: str = "ru"

    sms_survey_delay_minutes: int = 60
    sms_survey_max_lateness_hours: int = 24
    sms_survey_expiry_hours: int = 24
    sms_rate_per_second: float = 1.0
    # Retries of a survey's first SMS after a transient provider error (429, 5xx, connection
    # failures): exponential backoff from the base (up to 32 times it), with jitter, until the
    # survey would be later than SMS_SURVEY_MAX_LATENESS_HOURS after the contact.
    sms_retry_base_seconds: float = 30.0
    # An account-level refusal (401, 20003, a suspended sender) pauses the provider; one due
    # survey probes it this often until it is accepted again.
    provider_probe_seconds: float = 60.0
    # After a send of unknown outcome (a read timeout), the provider's message list is asked
    # this long after the attempt: long enough for any message it accepted to be listed.
    sms_reconcile_after_seconds: float = 120.0
    quiet_hours: QuietHours | None = QuietHours(time(21, 0), time(9, 0))
    survey_cooldown_days: int = 7
    office_timezones: Mapping[str, str] = field(default_factory=dict)
    # Local time of a customer when neither an office nor the number's range tells it.
    default_timezone: str = "Europe/Moscow"

    ivr_callback_delay_minutes: int = 5
    ivr_callback_max_attempts: int = 3
    ivr_callback_retry_minutes: int = 30
    ivr_max_concurrent_calls: int = 10
    ivr_session_timeout_minutes: int = 120  # an active call survey with no status callback
    audio_base_url: str | None = None
    # The SIP voice channel (`survey-gateway sip`): unset SIP_LISTEN leaves it off.
    sip_listen: str | None = None  # host:port of the SIP user agent (UDP)
    sip_advertised_address: str | None = None  # address in Contact and SDP; default: listen host
    sip_allowed_peers: tuple[str, ...] = ("127.0.0.1",)  # PBX addresses or networks (CIDR)
    sip_max_calls: int = 50
    sip_rtp_ports: tuple[int, int] = (20000, 20999)
    sip_rtp_timeout_seconds: float = 30.0  # a call whose caller sends no RTP this long ends
    # Call-back surveys through the PBX: the agent registers there and dials out through it.
    sip_registrar: str | None = None  # host:port of the PBX's registrar (and outbound proxy)
    sip_username: str | None = None  # the gateway's account (extension) on the PBX
    sip_password: str | None = None  # its digest password
    sip_domain: str | None = None  # the domain of From, To and the AOR; default: registrar host
    sip_register_expires: int = 300  # asked for; re-REGISTER at 90 % of what the PBX grants
    sip_ring_seconds: float = 40.0  # a call-back ringing this long is cancelled (no answer)
    # Root of the prompt library (manifest.json, prompts/<lang>/...); None: the packaged one.
    audio_dir: Path | None = None
    # The survey flows (`*.yaml`) the gateway runs; each is checked when the app starts.
    flows_dir: Path = FLOWS_DIR

    dispatch_interval_seconds: float = 5.0
    dispatch_lease_seconds: int = 300
    dispatch_batch_size: int = 500
    # Several gateways on one Redis: their queues are told apart by this prefix.
    task_queue_prefix: str = ""
    # /metrics asks for `Authorization: Bearer <it>`; unset, it answers loopback clients only.
    metrics_token: str | None = None

    # Outgoing webhooks (gateway.webhooks): a delivery is retried with doubling waits from
    # the base, at most an hour apart, for WEBHOOK_RETRY_HOURS; then its subscription pauses.
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: int = 30
    webhook_retry_hours: int = 24
    webhook_batch_size: int = 50
    # Plain http:// receivers beyond loopback; unset: allowed in development and test only.
    webhook_allow_http: bool | None = None

    # Outgoing mail (email survey invitations): SMTP_HOST unset logs messages instead.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "surveys@localhost"

    # Web survey links (gateway.websurvey) and email invitations.
    web_survey_expiry_days: int = 7
    web_survey_lock_completed: bool = True  # a completed survey cannot be changed from its page

    low_score_threshold: int = 2
    # Incidents (gateway.incidents): due this many business hours after they open, in the
    # calendar below (local time of REPORT_TIMEZONE); resolved with one of these causes.
    incident_due_hours: float = 24.0
    business_hours: str = "09:00-18:00"
    business_days: str = "1-5"  # ISO weekdays, Monday is 1
    holidays: str = ""  # comma-separated dates
    incident_causes: tuple[str, ...] = (
        "operator_conduct",
        "wrong_information",
        "long_wait",
        "tariff_or_price",
        "technical_fault",
        "process",
        "customer_expectation",
        "other",
    )
    # Alerts to supervisors (gateway.alerts), sent with the SMTP settings above: the team's
    # addresses in ALERT_EMAILS ("Hotline=a@x.ru;b@x.ru,Front office=c@x.ru"), else ALERT_TO.
    alert_from: str | None = None  # default: MAIL_FROM
    alert_to: str | None = None
    alert_emails: Mapping[str, str] = field(default_factory=dict)
    # Contacts older than this are anonymised by the privacy sweep (phones, names, SMS texts,
    # recordings); their scores stay. 0 keeps personal data until it is erased by request.
    personal_data_retention_days: int = 365
    # Day, week and month boundaries of every report; empty: DEFAULT_TIMEZONE.
    report_timezone: str = ""
    report_min_responses: int = 30
    # An NPS from fewer answers is not shown as a figure (its counts are).
    report_min_nps_responses: int = 30
    # By default an operator's CSI and ranking leave out what the operator does not control
    # (the tariff); true counts every parameter, as the company's CSI does.
    report_operator_csi_all_parameters: bool = False
    # A dashboard account is locked for LOGIN_LOCKOUT_MINUTES after this many wrong passwords
    # in a row.
    login_max_failures: int = 5
    login_lockout_minutes: int = 15

    @property
    def business_calendar(self) -> BusinessCalendar:
        """The incident calendar: BUSINESS_HOURS on BUSINESS_DAYS but HOLIDAYS, local time."""
        opens, closes = parse_hours(self.business_hours)
        return BusinessCalendar(
            self.report_zone,
            opens,
            closes,
            parse_weekdays(self.business_days),
            parse_holidays(self.holidays),
        )

    def alert_recipients(self, team: str | None) -> list[str]:
        """Whom to tell about an incident of this team: its ALERT_EMAILS, else ALERT_TO."""
        text = (self.alert_emails.get(team) if team else None) or self.alert_to or ""
        return [a.strip() for a in text.replace(",", ";").split(";") if a.strip()]

    @property
    def provider(self) -> str:
        """`twilio` when credentials are set, else the `console` development provider."""
        return "twilio" if self.twilio_account_sid and self.twilio_auth_token else "console"

    @property
    def callback_provider(self) -> str:
        """Who places call-back surveys: `sip` (the PBX, SIP_REGISTRAR set), else `provider`."""
        return "sip" if self.sip_registrar else self.provider

    @property
    def sms_provider_name(self) -> str:
        """Who sends SMS: SMS_PROVIDER, or the voice provider's choice when it is empty."""
        return self.sms_provider or self.provider

    @property
    def report_zone(self) -> ZoneInfo:
        """REPORT_TIMEZONE: where every report's days, weeks and months begin."""
        return ZoneInfo(self.report_timezone)

    @property
    def broker_url(self) -> str:
        """Redis in production; with no Redis, kombu's filesystem transport under var/."""
        # The host is named only to keep kombu from warning that none was given.
        return self.redis_url or "filesystem://localhost//"

    def session_secret(self) -> str:
        """Signs the dashboard's login cookie: SECRET_KEY, or a local one in development."""
        return self.secret_key or _development_secret(self.var_dir, "dev-secret-key")

    def webhooks_may_use_http(self) -> bool:
        """Whether a subscription may name a plain http:// URL beyond loopback."""
        if self.webhook_allow_http is not None:
            return self.webhook_allow_http
        return self.env != "production"

    def webhook_auth_token(self) -> str:
        """The token webhooks are signed with: Twilio's, or a local one in development."""
        if self.twilio_auth_token:
            return self.twilio_auth_token
        return development_auth_token(self.var_dir)


def development_auth_token(var_dir: Path) -> str:
    """A random token kept under var/ so the simulator and every local worker share it."""
    return _development_secret(var_dir, "dev-twilio-auth-token")


def _development_secret(var_dir: Path, name: str) -> str:
    """A random value created once under var/ and shared by every local process."""
    path = var_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        var_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        try:
            with path.open("x") as handle:
                handle.write(token)
        except FileExistsError:
            return path.read_text().strip()
        return token


def _parse_listen(text: str) -> str:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"SIP_LISTEN must look like 0.0.0.0:5060, got {text!r}")
    return text.strip()


def _parse_registrar(text: str) -> str:
    """`SIP_REGISTRAR=pbx.example.ru:5060` (the port may be left out: 5060)."""
    text = text.strip()
    host, _, port = text.rpartition(":")
    if not host or (":" in host and not host.endswith("]")):  # no port, or a bare IPv6
        host, port = text, "5060"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"SIP_REGISTRAR must look like pbx.example.ru:5060, got {text!r}")
    return f"{host}:{port}"


def _parse_peers(text: str) -> tuple[str, ...]:
    """`SIP_ALLOWED_PEERS=10.0.0.5,10.0.1.0/24`: addresses or networks the PBX calls from."""
    peers = tuple(filter(None, (part.strip() for part in text.split(","))))
    for peer in peers:
        try:
            ipaddress.ip_network(peer, strict=False)
        except ValueError as exc:
            raise ConfigError(f"SIP_ALLOWED_PEERS: {peer!r} is not an address or network") from exc
    return peers


def _parse_port_range(text: str) -> tuple[int, int]:
    low, _, high = text.strip().partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError as exc:
        raise ConfigError(f"SIP_RTP_PORTS must look like 20000-20999, got {text!r}") from exc
    if not 1024 <= first < last < 65536:
        raise ConfigError(f"SIP_RTP_PORTS must be a range within 1024-65535, got {text!r}")
    return first, last


def _as_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _parse_causes(text: str) -> tuple[str, ...]:
    causes = tuple(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    if not causes or any(len(c) > 50 or not c.replace("_", "").isalnum() for c in causes):
        raise ConfigError(
            "INCIDENT_CAUSES must be comma-separated codes of letters, digits and _, "
            f"e.g. operator_conduct,tariff_or_price,other; got {text!r}"
        )
    return causes


def _parse_alert_emails(text: str) -> dict[str, str]:
    teams: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        team, _, addresses = item.partition("=")
        if not team.strip() or "@" not in addresses:
            raise ConfigError(
                f"ALERT_EMAILS: write Team=address[;address],..., got {item.strip()!r}"
            )
        teams[team.strip()] = addresses.strip()
    return teams


def _parse_office_timezones(text: str) -> dict[str, str]:
    """`OFFICE_TIMEZONES=central=Europe/Moscow,port=Asia/Vladivostok`."""
    zones: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, _, zone = item.partition("=")
        if not code or not zone:
            raise ConfigError(f"OFFICE_TIMEZONES item {item!r} must be office=Area/City")
        try:
            ZoneInfo(zone.strip())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"OFFICE_TIMEZONES: unknown time zone {zone!r}") from exc
        zones[code.strip()] = zone.strip()
    return zones


_CONVERTERS: dict[str, Any] = {
    "port": int,
    "max_content_length": int,
    "twilio_timeout_seconds": float,
    "smsc_timeout_seconds": float,
    "insecure_skip_twilio_signature": _as_bool,
    "sms_survey_delay_minutes": int,
    "sms_survey_max_lateness_hours": int,
    "sms_survey_expiry_hours": int,
    "sms_rate_per_second": float,
    "sms_retry_base_seconds": float,
    "provider_probe_seconds": float,
    "sms_reconcile_after_seconds": float,
    "quiet_hours": QuietHours.parse,
    "survey_cooldown_days": int,
    "office_timezones": _parse_office_timezones,
    "ivr_callback_delay_minutes": int,
    "ivr_callback_max_attempts": int,
    "ivr_callback_retry_minutes": int,
    "ivr_max_concurrent_calls": int,
    "ivr_session_timeout_minutes": int,
    "sip_listen": _parse_listen,
    "sip_allowed_peers": _parse_peers,
    "sip_max_calls": int,
    "sip_rtp_ports": _parse_port_range,
    "sip_rtp_timeout_seconds": float,
    "sip_registrar": _parse_registrar,
    "sip_register_expires": int,
    "sip_ring_seconds": float,
    "dispatch_interval_seconds": float,
    "dispatch_lease_seconds": int,
    "dispatch_batch_size": int,
    "webhook_timeout_seconds": float,
    "webhook_retry_base_seconds": int,
    "webhook_retry_hours": int,
    "webhook_batch_size": int,
    "webhook_allow_http": _as_bool,
    "smtp_port": int,
    "smtp_starttls": _as_bool,
    "smtp_timeout_seconds": float,
    "web_survey_expiry_days": int,
    "web_survey_lock_completed": _as_bool,
    "low_score_threshold": int,
    "incident_due_hours": float,
    "incident_causes": _parse_causes,
    "alert_emails": _parse_alert_emails,
    "personal_data_retention_days": int,
    "report_min_responses": int,
    "report_min_nps_responses": int,
    "report_operator_csi_all_parameters": _as_bool,
    "login_max_failures": int,
    "login_lockout_minutes": int,
    "var_dir": Path,
    "audio_dir": Path,
    "flows_dir": Path,
}

_ENV_NAMES = {
    "env": "GATEWAY_ENV",
    "var_dir": "SURVEY_GATEWAY_VAR_DIR",
}


def _env_name(field_name: str) -> str:
    return _ENV_NAMES.get(field_name, field_name.upper())


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from the environment, then `overrides` (a test's mapping)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(Settings):
        raw = environ.get(_env_name(spec.name))
        if raw is None or (raw == "" and spec.name != "quiet_hours"):
            continue
        convert = _CONVERTERS.get(spec.name, str)
        try:
            values[spec.name] = convert(raw)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{_env_name(spec.name)}: {exc}") from exc
    values.update(overrides or {})

    settings = Settings(**values)
    var_dir = settings.var_dir
    defaults: dict[str, Any] = {}
    if not settings.database_url:
        defaults["database_url"] = f"sqlite:///{var_dir / 'survey-gateway.sqlite3'}"
    if not settings.public_base_url:
        defaults["public_base_url"] = f"http://127.0.0.1:{settings.port}"
    if not settings.report_timezone:
        defaults["report_timezone"] = settings.default_timezone
    settings = dataclasses.replace(settings, **defaults)
    _validate(settings)
    return settings


KNOWN_ENVIRONMENTS = ("development", "test", "production")
# A production SECRET_KEY: long and not a repeated or trivial string.
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_DISTINCT = 12


def _strong_secret(secret: str | None) -> bool:
    return (
        secret is not None
        and len(secret) >= MIN_SECRET_KEY_LENGTH
        and len(set(secret)) >= MIN_SECRET_KEY_DISTINCT
    )


def _validate(settings: Settings) -> None:
    if settings.env not in KNOWN_ENVIRONMENTS:
        # A near miss ("Production", "prod") must not start with production's guards off.
        raise ConfigError(
            f"GATEWAY_ENV must be one of {', '.join(KNOWN_ENVIRONMENTS)}, got {settings.env!r}"
        )
    if settings.personal_data_retention_days < 0:
        raise ConfigError("PERSONAL_DATA_RETENTION_DAYS must be 0 (keep) or a number of days")
    if settings.max_content_length < 64 * 1024:
        raise ConfigError("MAX_CONTENT_LENGTH must be at least 65536 bytes")
    if settings.default_language not in {"ru", "en"}:
        raise ConfigError("DEFAULT_LANGUAGE must be ru or en")
    if not 0 < settings.incident_due_hours <= 24 * 365:
        raise ConfigError("INCIDENT_DUE_HOURS must be a positive number of business hours")
    if not 1 <= settings.low_score_threshold <= 5:
        raise ConfigError("LOW_SCORE_THRESHOLD must be between 1 and 5")
    _validate_sms_provider(settings)
    if settings.sms_rate_per_second <= 0:
        raise ConfigError("SMS_RATE_PER_SECOND must be positive")
    if settings.sms_retry_base_seconds <= 0:
        raise ConfigError("SMS_RETRY_BASE_SECONDS must be positive")
    if settings.provider_probe_seconds <= 0:
        raise ConfigError("PROVIDER_PROBE_SECONDS must be positive")
    if settings.web_survey_expiry_days < 1:
        raise ConfigError("WEB_SURVEY_EXPIRY_DAYS must be at least 1")
    if settings.login_max_failures < 1 or settings.login_lockout_minutes < 1:
        raise ConfigError("LOGIN_MAX_FAILURES and LOGIN_LOCKOUT_MINUTES must be at least 1")
    if settings.webhook_retry_hours < 1 or settings.webhook_retry_base_seconds < 1:
        raise ConfigError("WEBHOOK_RETRY_HOURS and WEBHOOK_RETRY_BASE_SECONDS must be at least 1")
    if settings.sip_max_calls < 1:
        raise ConfigError("SIP_MAX_CALLS must be at least 1")
    if settings.sip_rtp_timeout_seconds <= 0:
        raise ConfigError("SIP_RTP_TIMEOUT_SECONDS must be positive")
    if settings.sip_ring_seconds <= 0:
        raise ConfigError("SIP_RING_SECONDS must be positive")
    if settings.sip_registrar:
        if not settings.sip_listen:
            raise ConfigError("SIP_REGISTRAR needs SIP_LISTEN: the agent that registers and dials")
        if not settings.sip_username or not settings.sip_password:
            raise ConfigError("SIP_REGISTRAR needs SIP_USERNAME and SIP_PASSWORD (digest auth)")
        if settings.sip_register_expires < 60:
            raise ConfigError("SIP_REGISTER_EXPIRES must be at least 60 seconds")
    low, high = settings.sip_rtp_ports
    if (high - low + 1) // 2 < settings.sip_max_calls:
        # Each call holds an even RTP port and the odd one above it for RTCP.
        raise ConfigError(
            f"SIP_RTP_PORTS {low}-{high} holds {(high - low + 1) // 2} calls, "
            f"fewer than SIP_MAX_CALLS={settings.sip_max_calls}"
        )
    try:
        ZoneInfo(settings.default_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"DEFAULT_TIMEZONE: unknown time zone {settings.default_timezone!r}"
        ) from exc
    try:
        ZoneInfo(settings.report_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"REPORT_TIMEZONE: unknown time zone {settings.report_timezone!r}"
        ) from exc
    try:
        settings.business_calendar  # noqa: B018  (parses and checks the three settings)
    except CalendarError as exc:
        raise ConfigError(str(exc)) from exc
    if settings.env == "production":
        _validate_production(settings)


SMS_PROVIDERS = ("twilio", "smsc", "console")
# A sender name as Russian operators register it: Latin letters, digits and a few signs, at
# most 11 characters, at least one letter; or a number (a dedicated one, for replies).
_ALPHA_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 .\-_!]{1,11}")
_NUMERIC_SENDER = re.compile(r"\+?[0-9]{10,15}")
MIN_CALLBACK_SECRET_LENGTH = 16


def sender_is_number(sender: str | None) -> bool:
    """Whether SMSC_SENDER is a phone number, which customers can reply to."""
    return bool(sender) and bool(_NUMERIC_SENDER.fullmatch(str(sender)))


def _validate_sms_provider(settings: Settings) -> None:
    if settings.sms_provider and settings.sms_provider not in SMS_PROVIDERS:
        raise ConfigError(
            f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, got {settings.sms_provider!r}"
        )
    if settings.sms_provider_name == "twilio" and settings.provider != "twilio":
        raise ConfigError("SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    if settings.sms_provider_name != "smsc":
        return
    if not settings.smsc_password:
        raise ConfigError("SMS_PROVIDER=smsc needs SMSC_PASSWORD (with SMSC_LOGIN) or an API key")
    sender = settings.smsc_sender
    if sender and not (_ALPHA_SENDER.fullmatch(sender) or _NUMERIC_SENDER.fullmatch(sender)):
        raise ConfigError(
            "SMSC_SENDER must be a sender name of at most 11 Latin letters, digits, spaces or "
            f"'.-_!' with at least one letter, or a number of 10-15 digits; got {sender!r}"
        )
    for name, secret in (
        ("SMSC_CALLBACK_SECRET", settings.smsc_callback_secret),
        ("SMSC_CHECKSUM_SECRET", settings.smsc_checksum_secret),
    ):
        if secret is not None and (
            len(secret) < MIN_CALLBACK_SECRET_LENGTH or not re.fullmatch(r"[A-Za-z0-9_\-]+", secret)
        ):
            raise ConfigError(
                f"{name} must be at least {MIN_CALLBACK_SECRET_LENGTH} letters, "
                "digits, '-' or '_' (it is part of a URL)"
            )


def _validate_production(settings: Settings) -> None:
    """GATEWAY_ENV=production: every service and secret set, nothing left open. SMS through
    SMSC needs its callback secret instead of Twilio's settings."""
    needed = [
        ("DATABASE_URL", settings.database_url.startswith("postgresql")),
        ("REDIS_URL", settings.redis_url),
    ]
    if settings.sms_provider_name == "smsc":
        needed.append(("SMSC_CALLBACK_SECRET", settings.smsc_callback_secret))
    else:
        needed += [
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            (
                "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
                settings.twilio_from_number or settings.twilio_messaging_service_sid,
            ),
        ]
    needed.append(("SECRET_KEY", settings.secret_key))
    missing = [name for name, value in needed if not value]
    if missing:
        raise ConfigError(
            "GATEWAY_ENV=production needs "
            + ", ".join(missing)
            + " (DATABASE_URL must be PostgreSQL)"
        )
    if settings.insecure_skip_twilio_signature:
        raise ConfigError("INSECURE_SKIP_TWILIO_SIGNATURE is refused in production")
    if not settings.public_base_url.startswith("https://"):
        raise ConfigError("GATEWAY_ENV=production needs an https:// PUBLIC_BASE_URL")
    if not _strong_secret(settings.secret_key):
        raise ConfigError(
            f"GATEWAY_ENV=production needs a SECRET_KEY of at least {MIN_SECRET_KEY_LENGTH} "
            "random characters (e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )


def current_settings() -> Settings:
    """The current app's settings (inside an app context: a request, a task, a command)."""
    return cast(Settings, current_app.config["SETTINGS"])
