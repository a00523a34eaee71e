"""Phone numbers: parsed, validated and formatted by Google's libphonenumber port."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as number_timezone

_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number; the message says why, for a person."""


@lru_cache(maxsize=16384)
def normalize_phone(text: str, default_region: str) -> str:
    """E.164 form of `text`, reading numbers without a country code in `default_region`.

    "8 (916) 123-45-67" in RU is "+79161234567". Parsing costs about a tenth of a
    millisecond and a number is read several times on its way in (validation, look-up,
    storage): the answers are kept, as for any pure function (an error is not kept).
    """
    if not text or not text.strip():
        raise InvalidPhoneNumber("the phone number is empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        reason = _REASONS.get(exc.error_type, "not a phone number")
        raise InvalidPhoneNumber(f"{text!r} is {reason}") from exc
    if not phonenumbers.is_valid_number(number):
        where = "" if text.strip().startswith("+") else f" (read as a {default_region} number)"
        raise InvalidPhoneNumber(f"{text!r} is not a valid phone number{where}")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@lru_cache(maxsize=16384)
def is_mobile(e164: str) -> bool:
    """True for numbers that can receive SMS: mobile, or fixed-line-or-mobile ranges."""
    number = phonenumbers.parse(e164, None)
    return phonenumbers.number_type(number) in {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }


@lru_cache(maxsize=16384)
def unambiguous_timezone(e164: str) -> str | None:
    """The number's time zone when its range names exactly one, else None."""
    number = phonenumbers.parse(e164, None)
    zones = [z for z in number_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else None


_DIGITS = re.compile(r"\d")


def mask_phone(text: str | None) -> str:
    """Keep the country code and the last two digits: +7916*****67 becomes +7*******67."""
    if not text:
        return ""
    digits = _DIGITS.findall(text)
    if len(digits) <= 4:
        return "*" * len(digits)
    keep_head = 1 if text.startswith("+") else 0
    masked = digits[:keep_head] + ["*"] * (len(digits) - keep_head - 2) + digits[-2:]
    return ("+" if text.startswith("+") else "") + "".join(masked)
