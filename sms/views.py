"""Twilio Messaging webhooks: /sms/inbound and /sms/status."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sms", __name__, url_prefix="/sms")
