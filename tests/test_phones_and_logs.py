"""Phone numbers parse to E.164 against the default region; logs never show them whole."""

from __future__ import annotations

import io
import logging

import pytest

from gateway.logs import (
    MaskingFormatter,
    PersonalDataFilter,
    configure_logging,
    mask_handler,
    mask_personal_data,
)
from gateway.phones import InvalidPhoneNumber, is_mobile, mask_phone, normalize_phone
from tests.conftest import unmasked_numbers


@pytest.mark.parametrize(
    ("written", "region", "e164"),
    [
        ("8 (916) 123-45-67", "RU", "+79161234567"),
        ("+7 916 123 45 67", "RU", "+79161234567"),
        ("79161234567", "RU", "+79161234567"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("+44 20 7946 0958", "RU", "+442079460958"),
    ],
)
def test_numbers_are_stored_in_e164(written, region, e164):
    assert normalize_phone(written, region) == e164


@pytest.mark.parametrize("text", ["", "123", "hello", "+7 916 123", "+999 123 456 789"])
def test_invalid_numbers_say_why(text):
    with pytest.raises(InvalidPhoneNumber) as raised:
        normalize_phone(text, "RU")
    assert str(raised.value)


def test_mobile_and_landline_are_told_apart():
    assert is_mobile("+79161234567")
    assert not is_mobile("+74959876543")


def test_masking_keeps_country_code_and_last_two_digits():
    assert mask_phone("+79161234567") == "+7********67"
    masked = mask_personal_data(
        "sent to +79161234567, recording https://api.twilio.com/2010-04-01/Accounts/AC1/"
        "Recordings/RE0123 at 2026-11-23 10:00:00 for interaction 4521"
    )
    assert "9161234567" not in masked and "RE0123" not in masked
    assert "2026-11-23 10:00:00" in masked and "4521" in masked


def test_ids_with_digit_runs_are_not_taken_for_phone_numbers():
    task = "Task sms.tasks.send_survey_sms[5af79e0d-5f75-476e-a413-123456789064] received"
    assert mask_personal_data(task) == task


def test_log_records_are_masked_by_the_filter(caplog):
    logger = logging.getLogger("tests.masking")
    caplog.handler.addFilter(PersonalDataFilter())
    with caplog.at_level(logging.INFO, logger="tests.masking"):
        logger.info("SMS to %s queued", "+79161234567")
    assert "+7********67" in caplog.text
    assert "9161234567" not in caplog.text


def _logged_exception(handler: logging.Handler, message: str) -> str:
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger = logging.getLogger("tests.masking.traceback")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(message)
        except RuntimeError:
            logger.exception("insert failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_tracebacks_are_masked_like_messages():
    handler = logging.StreamHandler()
    mask_handler(handler)
    text = _logged_exception(handler, "duplicate key: {'phone': '+79161234567', 'name': 'Anna'}")
    assert "Traceback" in text and "RuntimeError" in text
    assert "+7********67" in text
    assert unmasked_numbers(text) == []


def test_a_handler_with_its_own_format_still_writes_masked_lines():
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s | %(exc_info)s"))
    mask_handler(handler)
    text = _logged_exception(handler, "no survey for 8 (916) 123-45-67")
    assert unmasked_numbers(text) == []
    assert "ERROR insert failed" in text


def test_configure_logging_masks_every_root_handler():
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    level = root.level
    try:
        configure_logging("WARNING")
        assert isinstance(handler.formatter, MaskingFormatter)
        configure_logging("WARNING")  # idempotent: wrapped once
        assert not isinstance(handler.formatter.inner, MaskingFormatter)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_the_suite_wide_check_finds_numbers_in_any_writing():
    assert unmasked_numbers("SMS to +79161234567") == ["+79161234567"]
    assert unmasked_numbers("caller 8 (916) 123-45-67 hung up") == ["8 (916) 123-45-67"]
    assert unmasked_numbers("SMS to +7********67; survey 4412 at 2026-03-10T18:00:00") == []
