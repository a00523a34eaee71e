"""Sending email: SMTP in production, the log in development (SMTP_HOST unset). Used by the web
survey's invitations and by incident alerts alike."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from gateway.config import Settings

logger = logging.getLogger(__name__)


def mask_email(address: str) -> str:
    """`i***@example.ru`: enough to tell messages apart in a log, not to read the address."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


class MailError(Exception):
    """Sending failed; `permanent` when retrying cannot help (the mailbox does not exist)."""

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.permanent = permanent


class Mailer(Protocol):
    name: str

    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """SMTP with STARTTLS (or implicit TLS on port 465) and login when configured."""

    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        host = s.smtp_host or "localhost"
        try:
            if s.smtp_port == 465:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, s.smtp_port, timeout=s.smtp_timeout_seconds,
                    context=ssl.create_default_context(),
                )  # fmt: skip
            else:
                client = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout_seconds)
            with client:
                if s.smtp_port != 465 and s.smtp_starttls:
                    client.starttls(context=ssl.create_default_context())
                if s.smtp_username:
                    client.login(s.smtp_username, s.smtp_password or "")
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            raise MailError(f"recipient refused ({codes})", permanent=permanent) from exc
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:200], permanent=exc.smtp_code >= 500
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}"[:200], permanent=False) from exc


class ConsoleMailer:
    """Development: the message is logged, not sent (SMTP_HOST unset)."""

    name = "console"

    def send(self, message: EmailMessage) -> None:
        text = message.get_body(("plain",))
        logger.info(
            "email to %s (console, not sent): %s\n%s",
            mask_email(str(message["To"])),
            message["Subject"],
            text.get_content() if text is not None else "",
        )


def mailer_for(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else ConsoleMailer()
