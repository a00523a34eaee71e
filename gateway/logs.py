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
    """Rewrites each record's final message with phone numbers and recordings masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Install the masking filter on the root handlers; idempotent."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())
