"""What the PBX says about a call it transfers to the survey: the INVITE's headers and URI.

docs/telephony.md shows the Asterisk and FreeSWITCH dialplans that set them; the tests read
those snippets and check that they send exactly what is read here.

    INVITE sip:post_call@gateway;lang=ru SIP/2.0       flow (user part), optional lang
    From: <sip:+79161234567@pbx>                        the caller: the customer's number
    X-Operator: op-17                                   the operator who took the call
    X-Call-Id: 1700000000.42                            the hotline call's id in the PBX

The same values are accepted as request-URI parameters (`;operator=op-17;interaction=...`)
for a PBX that cannot add headers. Without a call id the SIP Call-ID names the interaction.
"""

from __future__ import annotations

import hashlib

from aiosipua import SipRequest, parse_address, parse_uri

from gateway.phone_surveys import HandedOverCall

OPERATOR_HEADER = "X-Operator"
CALL_ID_HEADER = "X-Call-Id"
FLOW_HEADER = "X-Survey-Flow"
LANG_HEADER = "X-Survey-Lang"
HEADERS = (OPERATOR_HEADER, CALL_ID_HEADER, FLOW_HEADER, LANG_HEADER)
# URI parameters a PBX may use instead of the headers.
OPERATOR_PARAM = "operator"
CALL_ID_PARAM = "interaction"
LANG_PARAM = "lang"
MAX_VALUE_LENGTH = 64  # an interaction's external id and an operator's id fit in it
PROVIDER_PREFIX = "sip:"
MAX_INSTANCE_LENGTH = 30  # "sip:" + instance + "/" + 24 hex digits fit the column's 64


def instance_of(advertised: str, port: int) -> str:
    """The name of one SIP process: the address the PBX reaches it at (one per machine+port)."""
    name = f"{advertised}:{port}"
    if len(name) > MAX_INSTANCE_LENGTH:
        return hashlib.sha256(name.encode()).hexdigest()[:MAX_INSTANCE_LENGTH]
    return name


def held_by(instance: str) -> str:
    """The start of every provider id of the calls `instance` holds."""
    return f"{PROVIDER_PREFIX}{instance}/"


def provider_id(instance: str, sip_call_id: str) -> str:
    """How a SIP call is named in the survey's row (Twilio's are CallSids: no clash).

    It names the process holding the call, so that this process, restarted after a crash,
    knows which surveys were its own to close (SipServer.start); the Call-ID is hashed to fit.
    """
    digest = hashlib.sha256(sip_call_id.encode("utf-8", "replace")).hexdigest()[:24]
    return f"{held_by(instance)}{digest}"


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:MAX_VALUE_LENGTH] if value else None


def handed_over_call(invite: SipRequest, instance: str) -> HandedOverCall:
    """The call as the PBX named it in its INVITE, held by the SIP process `instance`."""
    uri_params: dict[str, str | None] = {}
    flow: str | None = None
    try:
        uri = parse_uri(invite.uri)
        uri_params = uri.params
        flow = uri.user
    except ValueError:
        pass
    sip_call_id = invite.call_id or ""
    return HandedOverCall(
        provider_id=provider_id(instance, sip_call_id),
        external_id=_clean(invite.get_header(CALL_ID_HEADER))
        or _clean(uri_params.get(CALL_ID_PARAM))
        or sip_call_id[:MAX_VALUE_LENGTH],
        operator=_clean(invite.get_header(OPERATOR_HEADER))
        or _clean(uri_params.get(OPERATOR_PARAM)),
        caller=caller_of(invite),
        flow=_clean(invite.get_header(FLOW_HEADER)) or _clean(flow),
        lang=_clean(invite.get_header(LANG_HEADER)) or _clean(uri_params.get(LANG_PARAM)),
    )


def caller_of(invite: SipRequest) -> str | None:
    """The customer's number: P-Asserted-Identity when the PBX sets it, else From's user."""
    for header in ("P-Asserted-Identity", "From"):
        raw = invite.get_header(header)
        if not raw:
            continue
        try:
            user = parse_address(raw).uri.user
        except ValueError:
            continue
        if user:
            return user
    return None
