"""Twilio Voice webhooks: /voice/survey and /voice/status."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("voice", __name__, url_prefix="/voice")
