"""Logging set-up with personal data masked: phone numbers and recording URLs never reach logs."""

from __future__ import annotations

import logging
import re

from gateway.phones import mask_phone

# Not inside words, paths or ids (a UUID's digit runs are not phone numbers).
_PHONE = re.compile(r"(?<![\w/-])\+?\d[\d\-\s().]{8,}\d(?![\w/-])")
_RECORDING = re.compile(r"https?://\S*/Recordings/\S+", re.IGNORECASE)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = sum(char.isdigit() for char in found)
    if digits < 10 or _DATE.match(found):
        return found
    return mask_phone(found)


def mask_personal_data(text: str) -> str:
    text = _RECORDING.sub("<recording>", text)
    return _PHONE.sub(_mask_match, text)


class PersonalDataFilter(logging.Filter):
    """Masks each record before any handler formats it: the message, and the traceback and
    stack, which hold exception messages and local values (a failed insert's parameters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal_data(record.stack_info)
        return True


# The tasks beat sends every few seconds (gateway.tasking's schedule takes their names here).
SWEEP_TASK = "gateway.tasks.dispatch_due_surveys"
WEBHOOKS_TASK = "gateway.webhooks.tasks.deliver_webhooks"
PRIVACY_TASK = "gateway.tasks.privacy_sweep"
ALERTS_TASK = "gateway.tasks.send_incident_alerts"
# SMSC answers an incoming SMS's callback with nothing: the replies are stored pending and
# sent by this task, queued by each callback and, should that be lost, by the beat.
SMS_REPLIES_TASK = "sms.tasks.send_pending_replies"
PERIODIC_TASKS = (SWEEP_TASK, WEBHOOKS_TASK, PRIVACY_TASK, ALERTS_TASK, SMS_REPLIES_TASK)
_CELERY_ROUTINE = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class RoutineSweepFilter(logging.Filter):
    """Drops Celery's own INFO lines about the periodic tasks (sent, received, succeeded:
    three lines each every few seconds). Each task logs what it did when it did something, so
    a gateway at rest is quiet and what the console provider prints stays visible."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.name not in _CELERY_ROUTINE:
            return True
        message = record.getMessage()
        return not any(task in message for task in PERIODIC_TASKS)


_PLAIN = logging.Formatter()


class MaskingFormatter(logging.Formatter):
    """Wraps a handler's formatter and masks the whole formatted record, whatever its format
    puts in (a custom format, a library's extra fields, a traceback formatted late)."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter(_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return mask_personal_data(self.inner.format(record))


_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def mask_handler(handler: logging.Handler) -> None:
    """Make `handler` write masked records only; idempotent."""
    if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
        handler.addFilter(PersonalDataFilter())
    if not isinstance(handler.formatter, MaskingFormatter):
        handler.setFormatter(MaskingFormatter(handler.formatter))


def configure_logging(level: str = "INFO") -> None:
    """Mask personal data in every root handler, message and traceback alike, and drop the
    routine lines of the periodic sweep; idempotent."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=_FORMAT)
    root.setLevel(level)
    for handler in root.handlers:
        mask_handler(handler)
        if not any(isinstance(f, RoutineSweepFilter) for f in handler.filters):
            handler.addFilter(RoutineSweepFilter())
