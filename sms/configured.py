"""The SMS provider the settings name (SMS_PROVIDER), chosen apart from the providers so that
each provider's module imports the shared interface and nothing imports back."""

from __future__ import annotations

from gateway.config import Settings
from sms.providers import ConsoleSmsProvider, SmsProvider, TwilioSmsProvider
from sms.smsc import SmscSmsProvider


def provider_for(settings: Settings) -> SmsProvider:
    """The configured provider (SMS_PROVIDER): `smsc`, `twilio` (by default with Twilio
    credentials), else `console`."""
    name = settings.sms_provider_name
    if name == "smsc":
        return SmscSmsProvider(settings)
    if name == "twilio":
        return TwilioSmsProvider(settings)
    return ConsoleSmsProvider()
