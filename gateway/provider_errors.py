"""Errors of a provider (Twilio) classified by who must act, for SMS and calls alike:

* TRANSIENT (refused, retry safe; nobody acts): the message was certainly not accepted and may
  be sent again later (HTTP 429 / 20429, 5xx, a refused or timed-out connection, delivery
  errors 30001 queue overflow, 30003 unreachable handset, 30022 / 63017 a rate limit).
  Retried with backoff until the survey would be too late (SMS_SURVEY_MAX_LATENESS_HOURS).
* ACCOUNT (refused, retry safe; the operator of the gateway acts): the provider refuses every
  message of this account or sender (401, 403, 20003 authentication, 10001 / 20005 account
  not active, 30002 account suspended, 60728 / 63038 the account's hourly or daily limit,
  21606 / 21212 / 21659 a sender it will not send from), whether it says so when asked to
  send or later, in a delivery status callback. Sending pauses for the whole provider
  (gateway.circuit) and resumes when a probe succeeds; no survey fails because of it.
* PERMANENT (for this customer): sending again cannot help (21211 invalid number, 21614 not
  a mobile, 21610 unsubscribed, 30006 landline, 30007 filtered, any other 4xx).
* UNKNOWN: the request may have been accepted and the answer lost (a read timeout, a
  connection dropped after the request was written). Never re-sent blindly: the provider's
  message list is asked first (sms.reconcile).
"""

from __future__ import annotations

import enum


class FailureKind(enum.StrEnum):
    """The error classes, as logs, attempts and metrics name them."""

    TRANSIENT = "transient"
    ACCOUNT = "account"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


# Twilio error codes: https://www.twilio.com/docs/api/errors
PERMANENT_CODES: dict[int, str] = {
    21211: "invalid phone number",
    21214: "number cannot be reached",
    21408: "sending to this region is not enabled",
    21610: "the recipient unsubscribed (STOP)",
    21612: "number not reachable by SMS",
    21614: "not a mobile number",
    30004: "message blocked",
    30005: "unknown or inactive handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
}
TRANSIENT_CODES: dict[int, str] = {
    14107: "sending rate exceeded",
    20429: "too many requests",
    20500: "provider internal error",
    20503: "provider unavailable",
    21611: "the sender's queue of messages is full",
    30001: "provider queue overflow",
    30003: "unreachable handset",
    30022: "the carriers' rate limit for this sender exceeded",
    63017: "the account's sending rate exceeded",
}
# Refusals of the whole account or sender: no customer is at fault, and no message of this
# account would go out until someone fixes the credentials, the account or the sender.
ACCOUNT_CODES: dict[int, str] = {
    10001: "the account is not active",
    20003: "authentication failed (account SID or auth token)",
    20005: "the account is not active",
    20008: "test credentials cannot send",
    20404: "the account was not found",
    21212: "the sender number is invalid",
    21606: "the sender number cannot send SMS to this destination",
    21659: "the sender is not a number of this account",
    21704: "the messaging service has no sender",
    30002: "the account is suspended",
    30032: "the toll-free sender is not verified",
    30034: "the sender is not registered (A2P 10DLC)",
    60728: "the account's hourly message limit is reached",
    63038: "the account's daily message limit is reached",
}
ACCOUNT_HTTP_STATUSES = frozenset({401, 403})
UNSUBSCRIBED = 21610


def classify(http_status: int | None, code: int | None) -> FailureKind:
    """The error class from Twilio's error code, else from the HTTP status.

    Any other 4xx is permanent for this customer; 429 and 5xx are transient; 401 and 403
    are the account's.
    """
    if code in TRANSIENT_CODES:
        return FailureKind.TRANSIENT
    if code in ACCOUNT_CODES:
        return FailureKind.ACCOUNT
    if code in PERMANENT_CODES:
        return FailureKind.PERMANENT
    if http_status in ACCOUNT_HTTP_STATUSES:
        return FailureKind.ACCOUNT
    if http_status is not None and (http_status == 429 or http_status >= 500):
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def describe(code: int | None, fallback: str = "") -> str:
    """A short reason for a person: "twilio 21211: invalid phone number"."""
    known = code or 0
    text = (
        PERMANENT_CODES.get(known)
        or TRANSIENT_CODES.get(known)
        or ACCOUNT_CODES.get(known)
        or fallback
    )
    return f"twilio {code}: {text}" if code else text or "provider error"
