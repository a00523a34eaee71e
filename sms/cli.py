"""Command-line commands of this domain, added to `survey-gateway` by gateway.cli.

`survey-gateway simulate sms`: a texter in the terminal. It drives a RUNNING gateway exactly
as Twilio Messaging would: each reply is an inbound webhook (form post signed with the auth
token), and the gateway's answer is the TwiML <Message> it returns, printed as received.

The survey's FIRST message is not an answer to anything: the worker sends it through the
provider (with the console provider, the worker prints it). So that the simulator shows it too
without widening the gateway's HTTP surface, it reads that message, read-only, from the
gateway's database when it runs with the gateway's settings (same machine, same DATABASE_URL,
as with `make run`), waiting up to `--wait` seconds for the sweep to send it. With no survey
SMS, or no database to read, it stops with a message and a non-zero exit: replies would only
be answered "no survey here"; a survey not due yet (the delay after the visit, quiet hours) is
named with the local time it is due. `--no-database` sends them all the same.

With SMS_PROVIDER=smsc the texter plays SMSC instead: each reply is posted to the handler URL
(`/sms/smsc/<SMSC_CALLBACK_SECRET>`) as SMSC posts an incoming SMS, and the gateway's answer,
which it sends through SMSC's API rather than in the response, is read from its database.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import click
import requests

from gateway.simulation import DEMO_ACCOUNT_SID, post_signed
from sms.smsc import callback_checksum

DEFAULT_SURVEY_NUMBER = "+15005550006"
INBOUND_PATH = "/sms/inbound"
# A few sweeps (DISPATCH_INTERVAL_SECONDS, 5 by default) and the worker's send.
DEFAULT_WAIT_SECONDS = 30.0


@dataclass
class SimulatedTexter:
    """One customer's phone: Twilio's side of an SMS conversation with the gateway."""

    base_url: str
    auth_token: str
    phone: str
    survey_number: str = DEFAULT_SURVEY_NUMBER
    account_sid: str = DEMO_ACCOUNT_SID
    out: Callable[[str], None] = click.echo
    http: requests.Session = field(default_factory=requests.Session)

    def params(self, body: str) -> dict[str, str]:
        """The form Twilio posts for an inbound SMS."""
        sid = "SM" + uuid.uuid4().hex
        return {
            "ToCountry": "",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "",
            "To": self.survey_number,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": self.phone,
            "ApiVersion": "2010-04-01",
        }

    def send(self, body: str) -> list[str]:
        """Text `body` to the gateway; returns (and prints) the messages it answers with."""
        url = self.base_url.rstrip("/") + INBOUND_PATH
        root = post_signed(self.http, url, self.params(body), self.auth_token)
        replies = [message.text or "" for message in root.iter("Message")]
        for reply in replies:
            self.out(_framed("gateway", reply))
        if not replies:
            self.out("(no reply)")
        return replies


class Texter(Protocol):
    """A customer's phone as the simulator drives it (Twilio's side or SMSC's)."""

    @property
    def out(self) -> Callable[[str], None]: ...

    def send(self, body: str) -> list[str]: ...


# (phone, the last message id seen) -> (the gateway's new messages to it, the last id now)
ReadReplies = Callable[[str, int], tuple[list[str], int]]


@dataclass
class SmscTexter:
    """One customer's phone with SMS_PROVIDER=smsc: SMSC's side of the conversation."""

    base_url: str
    secret: str
    phone: str
    survey_number: str
    read_replies: ReadReplies | None = None
    last_id: int = 0
    out: Callable[[str], None] = click.echo
    http: requests.Session = field(default_factory=requests.Session)
    checksum_secret: str | None = None  # SMSC_CHECKSUM_SECRET: the form carries SMSC's md5

    def params(self, body: str) -> dict[str, str]:
        """The form SMSC posts to the handler for an incoming SMS (numbers without '+')."""
        form = {
            "sms_id": str(secrets.randbelow(10**9) + 1),
            "phone": self.phone.lstrip("+"),
            "mes": body,
            "to": self.survey_number.lstrip("+"),
            "sent": str(int(time.time())),
        }
        if self.checksum_secret:
            form["md5"] = callback_checksum(form, self.checksum_secret)
        return form

    def send(self, body: str) -> list[str]:
        """Post `body` as an incoming SMS; returns (and prints) the gateway's answers."""
        url = f"{self.base_url.rstrip('/')}/sms/smsc/{self.secret}?charset=utf-8"
        response = self.http.post(url, data=self.params(body), timeout=10)
        if response.status_code != 200:
            raise click.ClickException(
                f"the gateway answered {response.status_code} to the SMSC handler: "
                f"{response.text[:200]}"
            )
        if self.read_replies is None:
            self.out("(the gateway answers through SMSC's API; without --no-database it shows)")
            return []
        replies, self.last_id = self.read_replies(self.phone, self.last_id)
        for reply in replies:
            self.out(_framed("gateway", reply))
        if not replies:
            self.out("(no reply)")
        return replies


def replies_from_database(phone: str, after_id: int) -> tuple[list[str], int]:
    """The gateway's messages to `phone` stored after message `after_id` (read-only): with
    SMSC they are stored in the callback's transaction, before a worker sends them."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from gateway.config import load_settings
    from gateway.db import make_engine
    from gateway.models import Message

    engine = make_engine(load_settings().database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(Message.id, Message.body)
                .where(
                    Message.direction == "outbound",
                    Message.phone == phone,
                    Message.id > after_id,
                )
                .order_by(Message.id)
            ).all()
            session.rollback()
    finally:
        engine.dispose()
    return [row.body for row in rows], max([after_id, *(row.id for row in rows)])


def _framed(who: str, text: str) -> str:
    lines = text.splitlines() or [""]
    return "\n".join([f"{who}> {lines[0]}", *(" " * (len(who) + 2) + line for line in lines[1:])])


def scheduled_survey_due(phone: str) -> str | None:
    """When the number's SMS survey that has not gone out yet is due (the visit's delay, or
    the end of quiet hours it was deferred to), in the gateway's local time; None if none."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from gateway.config import load_settings
    from gateway.db import make_engine
    from gateway.models import Customer, SurveyChannel, SurveySession, SurveyStatus

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            due = session.scalar(
                select(func.min(SurveySession.due_at)).where(
                    SurveySession.channel == SurveyChannel.SMS,
                    SurveySession.status == SurveyStatus.SCHEDULED,
                    SurveySession.customer_id.in_(
                        select(Customer.id).where(Customer.phone == phone)
                    ),
                )
            )
    finally:
        engine.dispose()
    if due is None:
        return None
    zone = settings.report_zone
    return f"{due.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"


def first_message_from_database(phone: str, wait_seconds: float) -> str | None:
    """The first message of the number's open SMS survey, read from the gateway's database
    (read-only), waiting up to `wait_seconds` for it to go out; None if there is none."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from gateway.cli_context import check_database
    from gateway.config import load_settings
    from gateway.db import make_engine
    from gateway.models import Customer, Message, SurveyChannel, SurveySession, SurveyStatus

    settings = load_settings()
    check_database(settings)
    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            with Session(engine) as session:
                body = session.scalar(
                    select(Message.body)
                    .join(SurveySession, SurveySession.id == Message.session_id)
                    .where(
                        Message.direction == "outbound",
                        Message.provider_sid == SurveySession.provider_id,
                        SurveySession.channel == SurveyChannel.SMS,
                        SurveySession.status == SurveyStatus.ACTIVE,
                        SurveySession.customer_id.in_(
                            select(Customer.id).where(Customer.phone == phone)
                        ),
                    )
                    .order_by(Message.id.desc())
                    .limit(1)
                )
                session.rollback()
            if body is not None or time.monotonic() >= deadline:
                return body
            time.sleep(1.0)
    finally:
        engine.dispose()


def run_texter(texter: Texter, replies: Iterable[str] | None) -> None:
    """Send the scripted replies, or read them from the terminal until an empty line."""
    if replies is not None:
        for reply in replies:
            texter.out(_framed("you", reply))
            texter.send(reply)
        return
    texter.out("Type a reply and press Enter; an empty line or Ctrl-D ends.")
    while True:
        try:
            reply = input("you> ")
        except EOFError:
            return
        if not reply.strip():
            return
        texter.send(reply)


def register(main: click.Group) -> None:
    """Add this domain's commands to the groups of `main`."""
    simulate = main.commands["simulate"]
    if not isinstance(simulate, click.Group):
        raise TypeError("'simulate' must be a command group")

    @simulate.command("sms")
    @click.option("--phone", required=True, help="the customer's number, e.g. +79161234567")
    @click.option(
        "--url",
        "base_url",
        default=None,
        help="the gateway's PUBLIC_BASE_URL (default: from the settings)",
    )
    @click.option(
        "--auth-token",
        default=None,
        help="the token webhooks are signed with (default: TWILIO_AUTH_TOKEN, else "
        "the development token under var/)",
    )
    @click.option(
        "--replies",
        default=None,
        help='replies to send without asking, comma-separated: "5,4,3,5,4" is five '
        'SMS (a reply with spaces, "4 5 3", is one SMS answering several questions)',
    )
    @click.option(
        "--to",
        "survey_number",
        default=None,
        help="the survey's number the customer texts (default: TWILIO_FROM_NUMBER)",
    )
    @click.option(
        "--wait",
        "wait_seconds",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        show_default=True,
        help="seconds to wait for the survey's first SMS to go out",
    )
    @click.option(
        "--no-database",
        is_flag=True,
        help="send the replies without looking for the survey's first SMS in the gateway's "
        "database",
    )
    def simulate_sms(
        phone: str,
        base_url: str | None,
        auth_token: str | None,
        replies: str | None,
        survey_number: str | None,
        wait_seconds: float,
        no_database: bool,
    ) -> None:
        """Text a running gateway as a customer would: shows its messages, sends your replies."""
        from gateway.config import ConfigError, load_settings
        from gateway.phones import InvalidPhoneNumber, normalize_phone

        try:
            settings = load_settings()
            number = normalize_phone(phone, settings.default_region)
        except (ConfigError, InvalidPhoneNumber) as exc:
            raise click.ClickException(str(exc)) from exc
        url = (base_url or settings.public_base_url).rstrip("/")
        texter: SimulatedTexter | SmscTexter
        if settings.sms_provider_name == "smsc":
            if not settings.smsc_callback_secret:
                raise click.ClickException(
                    "SMS_PROVIDER=smsc: set SMSC_CALLBACK_SECRET, the secret of the handler URL "
                    "the simulator posts the replies to as SMSC does"
                )
            texter = SmscTexter(
                base_url=url,
                secret=settings.smsc_callback_secret,
                phone=number,
                survey_number=survey_number or settings.smsc_sender or DEFAULT_SURVEY_NUMBER,
                read_replies=None if no_database else replies_from_database,
                checksum_secret=settings.smsc_checksum_secret,
            )
        else:
            texter = SimulatedTexter(
                base_url=url,
                auth_token=auth_token or settings.webhook_auth_token(),
                phone=number,
                survey_number=survey_number or settings.twilio_from_number or DEFAULT_SURVEY_NUMBER,
            )
        if not no_database:
            if wait_seconds > 0:
                click.echo(f"waiting up to {wait_seconds:g} s for the survey SMS to {number}...")
            try:
                first = first_message_from_database(number, wait_seconds)
            except click.ClickException:
                raise
            except Exception as exc:
                raise click.ClickException(
                    f"the gateway's database is not readable from here ({exc}); run this "
                    "where the gateway runs, with its settings, or add --no-database"
                ) from exc
            due = scheduled_survey_due(number) if first is None else None
            if due is not None:
                raise click.ClickException(
                    f"the survey SMS to {number} has not gone out yet: it is due at {due}, "
                    "SMS_SURVEY_DELAY_MINUTES after the visit or at the end of QUIET_HOURS. "
                    "Run this again then; `survey-gateway surveys dispatch-due` sends what is "
                    "due now"
                )
            if first is None:
                raise click.ClickException(
                    f"no survey SMS is waiting for a reply from {number} (waited "
                    f"{wait_seconds:g} s). Record an office visit of this number that ended "
                    "over SMS_SURVEY_DELAY_MINUTES ago and let the sweep send its SMS "
                    "(`survey-gateway surveys dispatch-due` runs one sweep now); "
                    "--no-database sends the replies anyway"
                )
            click.echo(_framed("gateway", first))
            if isinstance(texter, SmscTexter):
                _shown, texter.last_id = replies_from_database(number, 0)
        scripted = None if replies is None else [r.strip() for r in replies.split(",")]
        try:
            run_texter(texter, scripted)
        finally:
            texter.http.close()
