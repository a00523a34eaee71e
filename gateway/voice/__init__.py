"""The IVR survey over Twilio Voice: webhooks, call-back calls."""
